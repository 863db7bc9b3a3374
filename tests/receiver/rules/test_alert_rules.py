"""The alert rules: rendered from the settings' thresholds, valid for Prometheus, proven by promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from receiver.rules import RULE_FILE, SCRAPE_JOB, render_rules, stale_rule_files, write_rules
from receiver.settings import THRESHOLD_SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[3]
RULES_DIR = ROOT / "alert_rules"
SCENARIOS = sorted((Path(__file__).parent / "promtool").glob("*.yml"))
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOK_URL = re.compile(r"\{\{ \$externalLabels\.runbook_base_url \}\}/(docs/runbooks/[\w-]+\.md)#([\w-]+)")
SIGNALS = {"latency", "errors", "saturation", "traffic"}

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not on PATH (Debian package `prometheus`)"
)
needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool not on PATH (Debian package `prometheus-alertmanager`)"
)


def default_settings() -> Settings:
    return Settings.model_construct()  # field defaults only, whatever the environment says


# Every threshold the rules use away from its default, as an operator would set them.
OTHER_SETTINGS = Settings(
    _env_file=None,
    latency_p95_threshold_ms=250,
    latency_p99_threshold_ms=1234,
    error_rate_5xx_threshold_pct=2.5,
    error_rate_5xx_critical_pct=12,
    error_rate_4xx_threshold_pct=30,
    memory_usage_threshold_pct=90,
    min_requests_per_minute=30,
    traffic_spike_factor=4,
)


def alerts(text: str) -> list[dict]:
    return [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"] if "alert" in rule]


def find_alert(text: str, name: str, severity: str) -> dict:
    (rule,) = [r for r in alerts(text) if r["alert"] == name and r["labels"]["severity"] == severity]
    return rule


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], cwd=ROOT, capture_output=True, text=True, timeout=120)


def committed_rules() -> str:
    return (RULES_DIR / RULE_FILE).read_text(encoding="utf-8")


# Rendering


def test_committed_rule_files_are_the_rendering_of_the_default_settings():
    committed = {path.name: path.read_text(encoding="utf-8") for path in RULES_DIR.glob("*.yml")}
    assert committed == render_rules(default_settings().thresholds, setting_names=THRESHOLD_SETTINGS), (
        "alert_rules/ has drifted from the settings: run `incident-copilot rules --out alert_rules`"
    )


# Where each threshold of OTHER_SETTINGS shows: (alert, severity) -> (in the expression, in the
# summary, in the description). The traffic floor of 30 requests/min shows in the expressions too.
OTHER_THRESHOLDS_SHOWN = {
    ("BackendLatencyHigh", "warning"): ("p95_rate1m > 0.25\n", "above 250ms", "the warning threshold is 250ms."),
    ("BackendLatencyHigh", "critical"): ("p99_rate1m > 1.234\n", "above 1.234s", "the critical threshold is 1.234s."),
    ("Backend5xxRateHigh", "warning"): ("5xx:ratio_rate1m > 0.025\n", "above 2.5%", "the warning threshold is 2.5%."),
    ("Backend5xxRateHigh", "critical"): ("5xx:ratio_rate1m > 0.12\n", "above 12%", "the critical threshold is 12%."),
    ("Backend4xxRateHigh", "warning"): ("4xx:ratio_rate1m > 0.3\n", "above 30%", "the warning threshold is 30%."),
    ("RedisMemoryHigh", "warning"): ("usage_ratio > 0.9", "above 90% of maxmemory", "the warning threshold is 90%."),
    ("BackendTrafficSpike", "warning"): ("(backend:haproxy_log_requests:rate1h_offset5m >= 30 / 60)\n> 4\n",
                                         "above 4x its baseline", "the warning factor is 4x."),
    ("BackendTrafficDropped", "critical"): ("rate1h_offset5m * 60 >= 30\n", "no requests for 5 minutes",
                                            "averaged at least 30 requests/min."),
}
FLOORED = {"BackendLatencyHigh", "Backend5xxRateHigh", "Backend4xxRateHigh"}


def test_thresholds_and_floors_come_from_the_settings():
    text = render_rules(OTHER_SETTINGS.thresholds, setting_names=THRESHOLD_SETTINGS)[RULE_FILE]

    for (name, severity), (expr, summary, description) in OTHER_THRESHOLDS_SHOWN.items():
        rule = find_alert(text, name, severity)
        assert expr in rule["expr"], (name, severity, rule["expr"])
        if name in FLOORED:
            assert rule["expr"].endswith("\nbackend:haproxy_log_requests:rate1m >= 30 / 60"), rule["expr"]
        assert summary in rule["annotations"]["summary"], (name, severity)
        assert description in rule["annotations"]["description"], (name, severity)
    header = text.split("\ngroups:", 1)[0]
    for setting in THRESHOLD_SETTINGS:
        assert f"{setting}={getattr(OTHER_SETTINGS, setting):g}" in header.split(), setting


def test_a_zero_traffic_floor_still_needs_some_traffic_before_a_drop_or_a_spike():
    text = render_rules(Settings(_env_file=None, min_requests_per_minute=0).thresholds)[RULE_FILE]

    assert "rate1h_offset5m * 60 > 0\n" in find_alert(text, "BackendTrafficDropped", "critical")["expr"]
    assert "(backend:haproxy_log_requests:rate1h_offset5m > 0)" in find_alert(
        text, "BackendTrafficSpike", "warning")["expr"]


def test_write_rules_then_check_them(tmp_path: Path):
    thresholds = default_settings().thresholds
    target = tmp_path / "rules"
    assert stale_rule_files(thresholds, target, setting_names=THRESHOLD_SETTINGS) == [RULE_FILE]

    assert write_rules(thresholds, target, setting_names=THRESHOLD_SETTINGS) == [target / RULE_FILE]
    assert stale_rule_files(thresholds, target, setting_names=THRESHOLD_SETTINGS) == []
    assert sorted(p.name for p in target.iterdir()) == [RULE_FILE]  # no temporary file left behind

    (target / RULE_FILE).write_text(committed_rules().replace("> 0.5\n", "> 0.6\n"), encoding="utf-8")
    assert stale_rule_files(thresholds, target, setting_names=THRESHOLD_SETTINGS) == [RULE_FILE]


# What a receiver of each alert gets


@pytest.mark.parametrize(
    "rule", alerts(committed_rules()), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}"
)
def test_every_alert_has_severity_signal_summary_description_and_a_runbook(rule: dict):
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["labels"]["signal"] in SIGNALS
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert "$value" in annotations["description"] or "$labels.instance" in annotations["description"]

    match = RUNBOOK_URL.fullmatch(annotations["runbook_url"])
    assert match, annotations["runbook_url"]
    page, anchor = match.groups()
    runbook = ROOT / page
    assert runbook.is_file(), f"{page} is missing"
    assert anchor in heading_anchors(runbook.read_text(encoding="utf-8")), f"{page} has no #{anchor}"


def heading_anchors(markdown: str) -> set[str]:
    """The anchors a Markdown renderer gives the headings (GitHub's and GitLab's rule)."""
    anchors = set()
    for line in markdown.splitlines():
        if match := re.match(r"#{1,6} +(.+?) *#*$", line):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


# Deployment files agree with the rules


def test_prometheus_config_matches_what_the_rules_assume():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))

    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "15s"
    assert "runbook_base_url" in config["global"]["external_labels"]
    assert {"action": "labeldrop", "regex": "runbook_base_url"} in config["alerting"]["alert_relabel_configs"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == SCRAPE_JOB
    assert job["metrics_path"] == "/prometheus/metrics"


# promtool and amtool


@pytest.mark.promtool
@needs_promtool
@pytest.mark.parametrize("rule_file", sorted(RULES_DIR.glob("*.yml")), ids=lambda p: p.name)
def test_promtool_accepts_the_rule_file(rule_file: Path):
    result = run("promtool", "check", "rules", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
@needs_promtool
@pytest.mark.parametrize("settings", [OTHER_SETTINGS, Settings(_env_file=None, min_requests_per_minute=0)],
                         ids=["other-thresholds", "no-traffic-floor"])
def test_promtool_accepts_the_rules_rendered_with_other_thresholds(settings: Settings, tmp_path: Path):
    (path,) = write_rules(settings.thresholds, tmp_path, setting_names=THRESHOLD_SETTINGS)
    result = run("promtool", "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
@needs_promtool
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_promtool_scenario(scenario: Path):
    result = run("promtool", "test", "rules", scenario)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
@needs_promtool
def test_promtool_accepts_the_prometheus_config():
    result = run("promtool", "check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
@needs_amtool
def test_amtool_accepts_the_alertmanager_config():
    result = run("amtool", "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_scenario_where_it_fires_and_one_where_it_stays_silent():
    fires, silent = set(), set()
    for path in SCENARIOS:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in group.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alerts(committed_rules())}
    assert names - fires == set()
    assert names - silent == set()
