"""What a message says and how it is laid out: within each service's limits whatever the incident holds,
and no untrusted string able to link, mention or mark up."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from receiver.notify import IncidentEvent, IncidentSnapshot, Link, signature
from receiver.notify.msteams import MAX_MESSAGE_BYTES
from receiver.notify.msteams import payload as teams_payload
from receiver.notify.slack import blocks, fallback_text
from receiver.notify.webhook import document
from tests.support.chat_receivers import HMAC_SECRET, Invalid, validate_blocks, validate_card_message, verify
from tests.support.incidents import T0, make_report

from .conftest import PUBLIC_URL, allowed_link

HOSTILE = "<!channel> <http://evil.example|click here> <@U123> &amp; *bold* [link](http://evil.example) \x07"


def event(kind: str = "opened", **changes) -> IncidentEvent:
    report = make_report()
    fields = dict(
        incident_id="inc-20260314-0123abcd", status="resolved" if kind == "resolved" else "open",
        severity="critical", assessed_severity="critical", title=report.title, diagnosis=report.diagnosis,
        culprit="api: errors", recommendations=report.recommendations, findings=report.findings, mode="rules",
        alertnames=["Backend5xxRateHigh"], labels={"backend": "api"}, onset_at=T0 - timedelta(seconds=90),
        notified_at=T0, diagnosed_at=T0 + timedelta(seconds=3), updated_at=T0 + timedelta(seconds=3),
        ended_at=T0 + timedelta(minutes=12) if kind == "resolved" else None,
        recheck="Signals back to normal over the last 5 min." if kind == "resolved" else None,
        links=[Link(label="Post-mortem", url=f"{PUBLIC_URL}/incidents/inc-20260314-0123abcd/postmortem"),
               Link(label="Incident", url=f"{PUBLIC_URL}/incidents/inc-20260314-0123abcd"),
               Link(label="Runbook", url="https://git.example.com/runbooks/errors.md")],
    )
    fields.update(changes)
    return IncidentEvent(key=f"inc-20260314-0123abcd:1:{kind}", kind=kind, sequence=1, triggered_at=T0,
                         enqueued_at=T0, incident=IncidentSnapshot(**fields))


def mrkdwn_texts(layout: list[dict]) -> str:
    return orjson.dumps(layout).decode()


def test_the_slack_message_carries_severity_title_culprit_numbers_steps_times_and_links() -> None:
    layout = blocks(event())
    assert layout[0] == {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                    "text": "🔴 CRITICAL · 5xx errors on backend api"}}
    assert layout[1]["text"]["text"].startswith("*Culprit:* api: errors\nBackend api answers 5xx")
    facts = [f["text"] for f in layout[2]["fields"]]
    assert facts[:3] == ["*Status*\nopen", "*Severity*\ncritical (assessed critical)",
                         "*Started*\n2026-03-14 09:40:30 UTC"]
    assert "*Detected in*\n1 min 30 s" in facts and "*Diagnosed in*\n3 s" in facts
    assert layout[3]["text"]["text"] == ("*Headline numbers*\n• `error_rate_5xx_pct` 23.4% (threshold 5%) on backend=api"
                                         "\n• `error_rate_4xx_pct` 1.2% (threshold 20%) on backend=api")
    assert layout[4]["text"]["text"].startswith("*Next steps*\n1. Check the last deploy")
    assert [b["text"]["text"] for b in layout[5]["elements"]] == ["Post-mortem", "Incident", "Runbook"]
    assert fallback_text(event()) == "[CRITICAL] Incident opened: 5xx errors on backend api (api: errors)"
    validate_blocks(layout, allowed_link=allowed_link)


def test_a_resolution_says_so_with_its_times_and_the_check_after() -> None:
    layout = blocks(event("resolved"))
    assert layout[0]["text"]["text"] == "✅ RESOLVED · 5xx errors on backend api"
    text = mrkdwn_texts(layout)
    assert "*Resolved after*\\n13 min 30 s" in text
    assert "*After the resolution:* Signals back to normal over the last 5 min." in text


def test_untrusted_text_can_neither_link_nor_mention_in_slack() -> None:
    layout = blocks(event(title=HOSTILE, diagnosis=HOSTILE, culprit=HOSTILE, recommendations=[HOSTILE]))
    validate_blocks(layout, allowed_link=allowed_link)  # no <…> control sequence survives
    text = mrkdwn_texts(layout)
    assert "&lt;!channel&gt;" in text and "&amp;amp;" in text and "\\u0007" not in text


def test_a_long_diagnosis_is_cut_with_a_link_to_the_rest() -> None:
    layout = blocks(event(diagnosis="The backend fails. " * 400))
    text = layout[1]["text"]["text"]
    assert len(text) <= 3000
    assert text.endswith(f"… <{PUBLIC_URL}/incidents/inc-20260314-0123abcd/postmortem|full report>")
    validate_blocks(layout, allowed_link=allowed_link)


def test_links_not_of_http_are_dropped() -> None:
    layout = blocks(event(links=[Link(label="Runbook", url="javascript:alert(1)"),
                                 Link(label="Source", url="http://prometheus:9090/graph?x=1 2")]))
    assert not any(b["type"] == "actions" for b in layout)


untrusted = st.text(st.characters(blacklist_categories=("Cs",)), max_size=5000)


@given(title=untrusted, diagnosis=untrusted, culprit=untrusted, recommendation=untrusted, label=untrusted)
@example(title="\x00", diagnosis="\x00", culprit="\x1f", recommendation="\x00", label="\x00")
def test_any_incident_fits_slack_and_teams(title, diagnosis, culprit, recommendation, label) -> None:
    e = event(title=title or "t", diagnosis=diagnosis, culprit=culprit or None,
              recommendations=[recommendation] * 5, severity=label[:100] or "critical",
              alertnames=[label[:300]] * 4)
    validate_blocks(blocks(e), allowed_link=allowed_link)
    body = teams_payload(e)
    assert len(body) <= MAX_MESSAGE_BYTES
    validate_card_message(body)


def test_the_teams_card_has_the_same_content_with_markdown_escaped() -> None:
    card = validate_card_message(teams_payload(event(culprit=HOSTILE)))
    texts = [b.get("text", "") for b in card["body"]]
    assert texts[0] == "CRITICAL · 5xx errors on backend api"
    assert texts[1] == ("**Culprit:** \\<!channel\\> \\<http://evil.example\\|click here\\> \\<@U123\\> &amp; "
                        "\\*bold\\* \\[link\\]\\(http://evil.example\\)")
    assert [a["title"] for a in card["actions"]] == ["Post-mortem", "Incident", "Runbook"]
    facts = {f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]}
    assert facts["Detected in"] == "1 min 30 s"


def test_a_huge_diagnosis_is_shortened_to_fit_teams() -> None:
    body = teams_payload(event(diagnosis="x" * 100_000, recommendations=["y" * 20_000] * 3))
    assert len(body) <= MAX_MESSAGE_BYTES
    validate_card_message(body)


def test_the_webhook_document_is_versioned_and_its_signature_verifies() -> None:
    doc = document(event())
    assert doc["version"] == "1" and doc["event"] == "opened" and doc["key"] == "inc-20260314-0123abcd:1:opened"
    assert doc["incident"]["links"]["post_mortem"].startswith(PUBLIC_URL)
    evidence = doc["incident"]["findings"][0]["evidence"][0]  # every field the analysis gives, these among them
    assert {k: evidence[k] for k in ("metric", "value", "threshold", "unit", "window_minutes", "scope")} == {
        "metric": "error_rate_5xx_pct", "value": 23.4, "threshold": 5.0, "unit": "%", "window_minutes": 10,
        "scope": "backend=api"}
    body = orjson.dumps(doc)
    import time
    header = signature(HMAC_SECRET, body, int(time.time()))
    assert verify(HMAC_SECRET, body, header)
    assert not verify(HMAC_SECRET, body + b" ", header)
    assert not verify(b"other", body, header)
    assert not verify(HMAC_SECRET, body, signature(HMAC_SECRET, body, int(time.time()) - 3600))  # replayed late


def test_the_fake_slack_refuses_what_slack_refuses() -> None:
    """The receivers these tests deliver to are strict enough to fail a message Slack would."""
    with pytest.raises(Invalid):
        validate_blocks([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}])
    with pytest.raises(Invalid):
        validate_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}])
    with pytest.raises(Invalid):
        validate_blocks([{"type": "divider"}] * 51)
    with pytest.raises(Invalid):
        validate_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": "<!here>"}}])


def test_the_documented_recipe_verifies_a_signature() -> None:
    """The five lines of docs/notifications.md, run as a receiver would paste them."""
    import re
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[3] / "docs" / "notifications.md").read_text()
    [recipe] = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    namespace: dict = {}
    exec(compile(recipe, "docs/notifications.md", "exec"), namespace)  # noqa: S102 - our own documentation
    body = orjson.dumps(document(event()))
    now = int(__import__("time").time())
    assert namespace["verify"](HMAC_SECRET, body, signature(HMAC_SECRET, body, now))
    assert not namespace["verify"](HMAC_SECRET, body.replace(b"critical", b"warning"), signature(HMAC_SECRET, body, now))
    assert not namespace["verify"](HMAC_SECRET, body, signature(HMAC_SECRET, body, now - 600))
