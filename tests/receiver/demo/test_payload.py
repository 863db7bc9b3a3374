"""The alert the demo posts when Prometheus is not installed is the one the rendered rules would fire."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml
from agents import Thresholds

from receiver.demo import alertmanager_payload
from receiver.incidents import Notification
from receiver.rules import RULE_FILE, render_rules

ROOT = Path(__file__).resolve().parents[3]
AT = datetime(2026, 3, 2, 9, 15, tzinfo=timezone.utc)


def payload(thresholds: Thresholds) -> dict:
    return alertmanager_payload("firing", backend="api", starts_at=AT, ends_at=None, external_url="http://am",
                                p99_seconds=1.52, thresholds=thresholds)


def recorded_series(thresholds: Thresholds) -> set[str]:
    groups = yaml.safe_load(render_rules(thresholds)[RULE_FILE])["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def test_the_generator_url_queries_series_the_rules_record() -> None:
    [alert] = payload(Thresholds())["alerts"]
    expr = parse_qs(urlsplit(alert["generatorURL"]).query)["g0.expr"][0]
    series = set(re.findall(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", expr))
    assert "backend:haproxy_log_request_duration_seconds:p99_rate1m" in series
    assert series <= recorded_series(Thresholds())


def test_the_threshold_and_runbook_come_from_the_rules() -> None:
    body = payload(Thresholds(latency_p99_ms=1500))
    [alert] = body["alerts"]
    assert alert["labels"] == {"alertname": "BackendLatencyHigh", "backend": "api", "severity": "critical",
                               "signal": "latency"}
    assert alert["annotations"]["summary"] == "Backend api: P99 latency above 1.5s"
    assert "1.52s" in alert["annotations"]["description"]
    assert "> 1.5\n" in parse_qs(urlsplit(alert["generatorURL"]).query)["g0.expr"][0]
    page, _, anchor = alert["annotations"]["runbook_url"].lstrip("/").partition("#")
    assert (ROOT / page).is_file() and anchor
    assert Notification.model_validate(body).firing  # a notification the webhook accepts
