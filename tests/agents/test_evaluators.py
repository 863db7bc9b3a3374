"""The deterministic evaluators on hand-built views: thresholds, floors and the breakdowns they name."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agents.config import Thresholds
from agents.errors import evaluate_errors
from agents.latency import evaluate_latency
from agents.saturation import evaluate_saturation
from agents.traffic import complete_minutes, evaluate_traffic, split_recent
from tests.support.agents import (
    AT,
    Signals,
    auth_regression,
    backend_row,
    deploy_regression,
    route,
    rps,
    saturation,
)

T = Thresholds()


def evidence(assessment, metric, scope=None):
    return next(e for e in assessment.evidence if e.metric == metric and (scope is None or e.scope == scope))


# Latency


@pytest.mark.parametrize(
    ("p95", "p99", "expected"),
    [
        (180.0, 320.0, "ok"),
        (500.0, 999.0, "ok"),  # thresholds are strict: at the limit is not above it
        (501.0, 900.0, "warning"),
        (400.0, 1001.0, "critical"),
        (1400.0, 1800.0, "critical"),
    ],
)
def test_latency_thresholds(p95, p99, expected):
    signals = Signals(backends=[backend_row("api", 6000, p95_ms=p95, p99_ms=p99)], p95=p95, p99=p99)

    assert evaluate_latency(signals.snapshot(), T).severity.value == expected


def test_latency_below_the_traffic_floor_does_not_alert():
    signals = Signals(backends=[backend_row("api", 50, p95_ms=3000.0, p99_ms=5000.0)], p95=3000.0, p99=5000.0)

    result = evaluate_latency(signals.snapshot(), T)

    assert result.severity.value == "ok"
    assert "below the floor" in result.summary
    assert evidence(result, "requests_per_minute").threshold == T.min_requests_per_minute


def test_latency_names_the_slow_backend_even_when_the_mix_hides_it():
    slow = backend_row("search", 1200, p95_ms=900.0, p99_ms=2400.0, mean_response_ms=700.0)
    signals = Signals(backends=[backend_row("api", 9000), slow], p95=300.0, p99=700.0)

    result = evaluate_latency(signals.snapshot(), T)

    assert result.severity.value == "critical"
    assert result.backend == "search"
    assert result.headline == "P99 2.4 s"
    assert evidence(result, "latency_p99_ms", "backend=search").value == 2400.0
    assert [c.kind for c in result.causes] == ["slow_server"]


def test_latency_tells_server_timeouts_from_slow_servers():
    result = evaluate_latency(deploy_regression().snapshot(), T)

    assert result.causes[0].kind == "server_timeout"
    assert result.causes[0].label == "sH server timeouts"
    assert result.causes[0].backend == "api"
    assert "time is spent in the servers, not in queues" in result.details
    assert "GET /api/products" in result.details
    assert evidence(result, "mean_response_ms", "backend=api").value == 900.0


def test_latency_tells_queueing_from_server_time():
    queued = backend_row("api", 6000, p95_ms=800.0, p99_ms=950.0, queued_requests=2500, mean_queue_ms=400.0,
                         mean_response_ms=60.0)
    signals = Signals(backends=[queued], p95=800.0, p99=950.0)

    result = evaluate_latency(signals.snapshot(), T)

    assert result.severity.value == "warning"
    assert result.causes[0].kind == "queueing"
    assert "lacks capacity" in result.details
    assert result.headline == "P95 800 ms"


def test_latency_with_no_requests_is_ok_and_says_so():
    result = evaluate_latency(Signals(backends=[]).snapshot(), T)

    assert result.severity.value == "ok"
    assert "No requests" in result.summary


# Errors


@pytest.mark.parametrize(
    ("errors_5xx", "errors_4xx", "expected"),
    [
        (0, 0, "ok"),
        (300, 0, "ok"),  # 5 % exactly
        (301, 0, "warning"),
        (601, 0, "critical"),
        (0, 1200, "ok"),  # 20 % exactly
        (0, 1300, "warning"),
        (700, 1300, "critical"),
    ],
)
def test_error_thresholds(errors_5xx, errors_4xx, expected):
    row = backend_row("api", 6000, errors_5xx=errors_5xx, errors_4xx=errors_4xx,
                      status_codes={"200": 6000 - errors_5xx - errors_4xx, "500": errors_5xx, "400": errors_4xx})
    signals = Signals(backends=[row], routes=[])

    assert evaluate_errors(signals.snapshot(), T).severity.value == expected


def test_error_rates_below_the_traffic_floor_do_not_alert():
    row = backend_row("api", 60, errors_5xx=30, status_codes={"200": 30, "500": 30})

    result = evaluate_errors(Signals(backends=[row], routes=[]).snapshot(), T)

    assert result.severity.value == "ok"
    assert "below the floor" in result.summary


def test_errors_name_backend_codes_and_termination_states():
    result = evaluate_errors(deploy_regression().snapshot(), T)

    assert result.severity.value == "critical"
    assert result.backend == "api"
    assert result.headline == "12 % 5xx"
    assert [(c.kind, c.backend) for c in result.causes] == [("server_timeout", "api"), ("connection_refused", "api")]
    assert result.causes[0].codes[0] == "504"
    assert "504 \u00d7520" in result.details
    assert "ended SC" in result.details
    assert evidence(result, "error_rate_5xx_pct", "backend=api").value == 12.0


def test_errors_a_quiet_backend_failing_hard_is_named():
    failing = backend_row("payments", 600, errors_5xx=180, status_codes={"200": 420, "500": 180})
    result = evaluate_errors(Signals(backends=[backend_row("api", 9000), failing], routes=[]).snapshot(), T)

    assert result.severity.value == "critical"
    assert result.backend == "payments"
    assert result.causes[0].kind == "application_errors"
    assert result.causes[0].label == "500 application errors"
    assert "the application itself answered 500" in result.details


def test_errors_name_the_route_and_code_of_an_auth_regression():
    result = evaluate_errors(auth_regression().snapshot(), T)

    assert result.severity.value == "warning"
    cause = result.causes[0]
    assert (cause.kind, cause.route, cause.codes, cause.backend) == ("auth_failures", "POST /api/checkout",
                                                                     ("401",), "api")
    assert result.headline == "60 % 401 on POST /api/checkout"
    assert evidence(result, "status_401_pct", "route=POST /api/checkout").value == 60.0


def test_errors_on_a_route_below_the_floor_do_not_alert():
    quiet = route("POST /api/admin", 50, errors_4xx=50, status_codes={"403": 50})
    result = evaluate_errors(Signals(routes=[quiet, route()]).snapshot(), T)

    assert result.severity.value == "ok"


def test_errors_note_client_aborts_as_a_symptom():
    signals = deploy_regression()
    signals.states = {"--": 5000, "sH": 520, "CD": 300}

    result = evaluate_errors(signals.snapshot(), T)

    assert "ended CD: clients gave up" in result.details


# Saturation


@pytest.mark.parametrize(
    ("memory_pct", "rejected", "queued", "expected"),
    [
        (40.0, 0, 0, "ok"),
        (None, 0, 0, "ok"),
        (80.0, 0, 0, "ok"),
        (85.0, 0, 0, "warning"),
        (96.0, 0, 0, "critical"),
        (40.0, 3, 0, "warning"),
        (96.0, 3, 0, "critical"),
        (40.0, 0, 1200, "warning"),
    ],
)
def test_saturation_thresholds(memory_pct, rejected, queued, expected):
    signals = Signals(sat=saturation(memory_pct, rejected, queued, mean_queue_ms=120.0 if queued else 0.0))

    assert evaluate_saturation(signals.snapshot(), T).severity.value == expected


def test_saturation_names_its_causes():
    signals = Signals(sat=saturation(91.0, rejected=2))

    result = evaluate_saturation(signals.snapshot(), T)

    assert [c.kind for c in result.causes] == ["redis_memory", "redis_rejected"]
    assert result.headline == "Redis memory 91 % and 2 Redis connections rejected"
    assert evidence(result, "redis_memory_used_pct").value == 91.0


def test_saturation_queueing_below_the_floor_does_not_alert():
    signals = Signals(sat=saturation(40.0, queued=40, requests=50))

    assert evaluate_saturation(signals.snapshot(), T).severity.value == "ok"


# Traffic


@pytest.mark.parametrize(
    ("counts", "expected", "cause"),
    [
        ([600] * 30, "ok", None),
        ([600] * 27 + [0, 0, 0], "critical", "traffic_drop"),
        ([600] * 27 + [100, 120, 90], "warning", "traffic_drop"),
        ([600] * 27 + [2000, 2100, 1900], "warning", "traffic_spike"),
        ([600] * 27 + [1500, 1600, 1700], "ok", None),  # under 3x
        ([0] * 25 + [5, 5, 0, 0, 0], "ok", None),  # too little history for a baseline
        ([5] * 27 + [0, 0, 0], "ok", None),  # below the floor: silence is not an outage
        ([0] * 20 + [100] * 7 + [900, 1000, 950], "warning", "traffic_spike"),  # leading zeros are not history
    ],
)
def test_traffic_against_its_baseline(counts, expected, cause):
    result = evaluate_traffic(Signals(counts=counts).snapshot(), T)

    assert result.severity.value == expected
    assert [c.kind for c in result.causes] == ([cause] if cause else [])


def test_traffic_spike_factor_is_configurable():
    signals = Signals(counts=[600] * 27 + [1500, 1600, 1700])

    assert evaluate_traffic(signals.snapshot(), replace(T, traffic_spike_factor=2.0)).severity.value == "warning"


def test_traffic_ignores_the_minute_in_progress():
    series = rps([600] * 30, partial_last=True)

    assert complete_minutes(series, AT + timedelta(seconds=20)) == [600] * 30
    assert complete_minutes(series, AT + timedelta(minutes=1)) == [600] * 30 + [3]


def test_split_recent_starts_history_at_the_first_traffic():
    assert split_recent([0, 0, 4, 5, 6, 7, 8], 2) == ([4, 5, 6], [7, 8])


def test_traffic_stop_reports_when_it_stopped():
    result = evaluate_traffic(Signals(counts=[600] * 25 + [0] * 5).snapshot(), T)

    assert result.headline == "traffic stopped"
    assert "The last request was 5 min ago." in result.details
    assert evidence(result, "baseline_requests_per_minute").value == 600.0


# Every evaluator


@pytest.mark.parametrize("evaluate", [evaluate_latency, evaluate_errors, evaluate_saturation, evaluate_traffic])
def test_evidence_carries_units_windows_and_scopes(evaluate):
    result = evaluate(deploy_regression().snapshot(), T)

    assert result.evidence
    for item in result.evidence:
        assert item.unit and item.window_minutes > 0 and item.scope


@pytest.mark.parametrize("evaluate", [evaluate_latency, evaluate_errors, evaluate_saturation, evaluate_traffic])
def test_a_healthy_service_is_ok_on_every_signal(evaluate):
    result = evaluate(Signals().snapshot(), T)

    assert result.severity.value == "ok"
    assert result.causes == ()
