"""Simulated incidents through the real ingestion and queries (fakeredis), analysed on rules alone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import fakeredis
import pytest
from redis.asyncio import Redis

from agents import AlertContext, AnalysisConfig, AnalysisRequest, analyze, format_report
from agents.evaluation import load_scenario
from ingestion import Batch, MetricsQueries, MetricsStore, TimeBounds
from ingestion.simulate import scenario_timeline
from tests.support.records import record

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
MINUTES = 12
RPS = 10.0
_loaded: dict[str, fakeredis.FakeServer] = {}


async def redis_with(scenario: str) -> Redis:
    """A client on a fake server holding `scenario`; each scenario is ingested once per module."""
    server = _loaded.get(scenario)
    if server is None:
        server = fakeredis.FakeServer()
        loader = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
        await load_scenario(loader, scenario, start=START, minutes=MINUTES, rps=RPS, seed=3)
        await loader.aclose()
        _loaded[scenario] = server
    return fakeredis.FakeAsyncRedis(server=server, decode_responses=True)


async def analysed(scenario: str, *, at: datetime | None = None, **request):
    at = at or START + timedelta(minutes=MINUTES)
    redis = await redis_with(scenario)
    try:
        report = await analyze(MetricsQueries(redis, now=at.timestamp), AnalysisRequest(at=at, **request),
                               config=AnalysisConfig(), now=lambda: at)
    finally:
        await redis.aclose()
    return report, {f.specialist: f for f in report.findings}


async def test_baseline_is_ok_on_all_four_signals():
    report, findings = await analysed("baseline")

    assert {name: f.severity.value for name, f in findings.items()} == dict.fromkeys(findings, "ok")
    assert report.overall_severity.value == "ok"
    assert report.synthesis.mode == "rules" and report.synthesis.fallback_reason is None
    assert report.recommendations == ["No action needed now: all four golden signals are within their thresholds."]


async def test_deploy_regression_names_the_backend_and_the_server_timeouts():
    report, findings = await analysed("deploy-regression")

    assert findings["latency"].severity.value == "critical"
    assert findings["errors"].severity.value in ("warning", "critical")
    assert findings["latency"].summary.startswith("P99 ") and " since 09:04 (api). api is slow" in findings[
        "latency"].summary
    assert findings["errors"].summary.startswith("5xx 0.")
    assert " since 09:04 (api). api returns" in findings["errors"].summary
    assert report.onset is not None and report.onset.at == START + timedelta(minutes=4)
    assert report.window_start == report.onset.at and report.baseline_end == report.onset.at
    assert findings["errors"].severity.value == "critical"  # since the onset, not diluted by the minutes before
    assert "ended sH" in findings["errors"].details and "ended SC" in findings["errors"].details
    assert report.title.startswith("api: P99 2.0 s and ")
    assert report.title.endswith("5xx (sH server timeouts)")
    assert report.recommendations[0].startswith("Roll back the latest deploy of api")
    assert any("api's servers are up" in r for r in report.recommendations)
    assert {f.provenance.mode for f in report.findings} == {"rules"}


async def test_auth_regression_names_the_route_and_the_401():
    report, findings = await analysed("auth-regression")

    errors = findings["errors"]
    assert errors.severity.value == "warning"
    assert "POST /api/checkout" in errors.summary and "401" in errors.summary
    assert report.title.startswith("checkout: ") and "401 on POST /api/checkout" in report.title
    assert "POST /api/checkout (backend checkout)" in report.recommendations[0]
    assert findings["latency"].severity.value == "ok"


async def test_outage_is_critical_on_traffic():
    report, findings = await analysed("outage")

    assert findings["traffic"].severity.value == "critical"
    assert report.overall_severity.value == "critical"
    assert report.title == "all backends: traffic stopped"
    assert "DNS" in report.recommendations[0]


async def test_traffic_spike_is_a_traffic_warning():
    at = scenario_timeline("traffic-spike", START, MINUTES).end

    report, findings = await analysed("traffic-spike", at=at)

    assert findings["traffic"].severity.value == "warning"
    assert "Traffic spike" in findings["traffic"].summary


async def test_an_alert_narrows_the_analysis_to_its_backend():
    alert = {"alertname": "HighErrorRate", "labels": {"backend": "api"}, "starts_at": START + timedelta(minutes=6)}

    report, findings = await analysed("deploy-regression", alerts=[alert])

    assert report.backend == "api"
    assert findings["errors"].evidence[0].scope == "backend=api"
    assert findings["errors"].severity.value == "critical"


@pytest.mark.parametrize("scenario", ["deploy-regression", "auth-regression"])
async def test_the_terminal_report_reads_well(scenario):
    report, _ = await analysed(scenario)

    text = format_report(report)

    assert text.splitlines()[0].startswith("CRITICAL  api:" if scenario == "deploy-regression" else "WARNING  ")
    assert "Recommendations\n  1. " in text
    assert all(len(line) <= 100 for line in text.splitlines())


async def test_a_burst_shorter_than_a_minute_under_a_firing_alert_is_not_ok_and_shows_both_numbers():
    at = START + timedelta(minutes=MINUTES)
    redis = await redis_with("baseline")
    burst = Batch()
    bounds = TimeBounds(now=at.timestamp(), retention_seconds=3600, skew_seconds=60)
    for i in range(60):  # 60 refused requests within the last 15 seconds
        burst.add(record(at.timestamp() - 15 + i / 4, backend="api", status=503, ta=3000, term="SC--"), bounds)
    await MetricsStore(redis, now=at.timestamp).write(burst.buckets)  # this module's copy of baseline only
    alert = AlertContext(
        alertname="Backend5xxRateHigh", severity="critical", labels={"backend": "api", "severity": "critical"},
        annotations={"description": "41.2% of the requests to backend api were answered 5xx over the last minute; "
                                    "the critical threshold is 10%."}, starts_at=at - timedelta(seconds=5))
    try:
        report = await analyze(MetricsQueries(redis, now=at.timestamp), AnalysisRequest(at=at, alerts=[alert]),
                               config=AnalysisConfig(), now=lambda: at)
    finally:
        await redis.aclose()
        _loaded.pop("baseline", None)

    errors = next(f for f in report.findings if f.specialist == "errors")
    assert errors.severity.value == "critical"
    assert "Backend5xxRateHigh fires on api at 41 %" in errors.summary
    logged = next(e for e in errors.evidence if e.metric == "error_rate_5xx_pct" and e.scope == "backend=api")
    assert 0 < logged.value < 10  # the logs' own figure, diluted by the healthy minutes, is shown beside it
    assert {e.metric for e in errors.evidence} >= {"error_rate_5xx_pct", "alert_error_rate_5xx_pct"}
    assert report.overall_severity.value == "critical"
