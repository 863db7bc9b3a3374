"""The notifications file: Alertmanager's shape, errors that name their line, secrets from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.cli import main
from receiver.notify import ConfigError, load_config
from receiver.notify.config import Matcher, parse_config

GOOD = """\
route:
  receiver: team
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['backend=~"pay.*"', 'signal!="traffic"']
      receiver: payments
receivers:
  - name: team
    slack_configs:
      - api_url: https://hooks.slack.com/services/T0/B0/secret
  - name: pager
    webhook_configs:
      - url: https://pager.example.com/hook
        send_resolved: false
  - name: payments
    msteams_configs:
      - webhook_url: https://example.logic.azure.com/workflows/1
        notify: [opened, resolved]
"""


def receivers_for(labels: dict[str, str]) -> list[str]:
    return parse_config(GOOD).route.receivers_for(labels)


@pytest.mark.parametrize(("labels", "expected"), [
    ({}, ["team"]),
    ({"severity": "warning", "backend": "api"}, ["team"]),
    # A child matched, so the parent's receiver is not used, `continue` or not (dispatch/route.go).
    ({"severity": "critical", "backend": "api"}, ["pager"]),
    ({"severity": "critical", "backend": "payments"}, ["pager", "payments"]),
    ({"severity": "warning", "backend": "payments", "signal": "traffic"}, ["team"]),
    ({"backend": "xpay"}, ["team"]),  # a regex matches the whole value
])
def test_routes_pick_receivers_as_alertmanager_does(labels, expected) -> None:
    assert receivers_for(labels) == expected


def test_each_integration_chooses_its_events() -> None:
    config = parse_config(GOOD)
    targets = {t.id: t for t in config.targets({"severity": "critical", "backend": "payments"})}
    assert set(targets) == {"pager/webhook/0", "payments/msteams/0"}
    assert not targets["pager/webhook/0"].config.wants("resolved")
    assert targets["payments/msteams/0"].config.wants("resolved")
    assert not targets["payments/msteams/0"].config.wants("updated")


@pytest.mark.parametrize(("text", "op", "value"), [
    ('severity="critical"', "=", "critical"),
    ("severity = critical", "=", "critical"),
    ('backend!~"api|web"', "!~", "api|web"),
    (r'summary="say \"hi\""', "=", 'say "hi"'),
])
def test_matchers_read_alertmanagers_syntax(text, op, value) -> None:
    matcher = Matcher.model_validate(text)
    assert (matcher.op, matcher.value) == (op, value)


@pytest.mark.parametrize(("change", "message"), [
    (("receiver: pager", "receiver: nobody"), "<f>:5: route.routes[0].receiver: no receiver is named 'nobody'"),
    (('backend=~"pay.*"', 'backend=~"pay("'), "<f>:7: route.routes[1].matchers[0]: invalid regular expression"),
    (("https://pager.example.com/hook", "ftp://pager"), "<f>:15: receivers[1].webhook_configs[0].url: "
                                                         "url is not an http(s) URL"),
    (("send_resolved: false", "send_resolvd: false"), "<f>:16: receivers[1].webhook_configs[0].send_resolvd: "
                                                      "Extra inputs are not permitted"),
    (("notify: [opened, resolved]", "notify: [opened, closed]"), "<f>:20: receivers[2].msteams_configs[0].notify[1]"),
    (("  - name: pager", "  - name: team"), "<f>:13: receivers[1].name: a second receiver named 'team'"),
    (("route:\n  receiver: team", "route:\n  receiver:"), "<f>:1: route: the top route needs a receiver"),
])
def test_errors_name_the_line(change, message) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD.replace(*change), source="<f>")
    assert str(caught.value).startswith(message)


def test_an_invalid_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD.replace("https://hooks.slack.com/services/T0/B0/secret", "hooks.slack.com/secret"))
    assert "api_url is not an http(s) URL" in str(caught.value) and "secret" not in str(caught.value)


def test_yaml_errors_name_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^<f>:3: not valid YAML"):
        parse_config("route:\n  receiver: a\n   routes: []\nreceivers: []\n", source="<f>")


def test_secrets_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("xoxb-1\n")
    config = parse_config(f"""\
route: {{receiver: r}}
receivers:
  - name: r
    slack_configs:
      - token_file: {tmp_path / "token"}
        channel: "#ops"
""")
    slack = config.receivers[0].slack_configs[0]
    assert slack.token.get_secret_value() == "xoxb-1" and "xoxb" not in repr(slack)


@pytest.mark.parametrize(("config", "message"), [
    ("token_file: /nonexistent/token\n        channel: '#ops'", "token_file: cannot read /nonexistent/token"),
    ("token: xoxb-1", "a bot token needs a channel"),
    ("api_url: https://h/x\n        token: xoxb-1\n        channel: c", "give either api_url"),
    ("channel: '#ops'", "give either api_url"),
])
def test_a_slack_receiver_is_a_webhook_or_a_bot(config: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(f"route: {{receiver: r}}\nreceivers:\n  - name: r\n    slack_configs:\n      - {config}\n")


@pytest.mark.parametrize(("value", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("250ms", 0.25), (30, 30)])
def test_durations_read_like_prometheus(value, seconds) -> None:
    config = parse_config(f"global: {{give_up_after: {value}}}\nroute: {{receiver: r}}\nreceivers: [{{name: r}}]\n")
    assert config.global_.give_up_after == seconds


def test_notify_check_says_what_the_file_does_without_its_secrets(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.yml"
    good.write_text(GOOD)
    assert main(["notify", "--check", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "receiver team: Slack webhook" in out and "receiver pager: webhook, unsigned" in out
    assert "secret" not in out and "hooks.slack.com" not in out

    bad = tmp_path / "bad.yml"
    bad.write_text(GOOD.replace("receiver: pager", "receiver: nobody"))
    assert main(["notify", "--check", "--config", str(bad)]) == 1
    assert f"{bad}:5:" in capsys.readouterr().err


def test_a_missing_file_fails_plainly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yml")
