"""A firing alert is never contradicted: the finding takes its severity and shows both numbers."""

from __future__ import annotations

from agents.alert_floor import alert_signal, alert_value, hold_to_alerts
from agents.assessment import Assessment
from agents.report import Evidence, Severity
from agents.request import AlertContext


def errors_ok(rate: float = 1.6) -> Assessment:
    return Assessment("errors", Severity.ok, f"Error rates within thresholds: 5xx {rate} %, 4xx 2.0 %.",
                      "5xx warning above 5 %.",
                      (Evidence(metric="error_rate_5xx_pct", value=rate, threshold=5.0, unit="%", window_minutes=10,
                                scope="backend=api"),))


def alert(name: str = "Backend5xxRateHigh", severity: str = "critical", backend: str | None = "api",
          status: str = "firing", **annotations: str) -> AlertContext:
    labels = {"alertname": name, "severity": severity}
    if backend:
        labels["backend"] = backend
    return AlertContext(alertname=name, status=status, severity=severity, labels=labels, annotations=annotations)


def test_an_ok_finding_under_a_firing_alert_takes_the_alerts_severity_and_shows_both_numbers():
    held = hold_to_alerts(errors_ok(), [alert(value="0.1017")], "api")

    assert held.severity is Severity.critical
    assert "Backend5xxRateHigh fires on api at 10 %" in held.summary
    assert "1.6 %" in held.summary
    assert "disagree" in held.details
    shown = {e.metric: e.value for e in held.evidence}
    assert shown == {"error_rate_5xx_pct": 1.6, "alert_error_rate_5xx_pct": 10.17}
    assert held.headline and "Backend5xxRateHigh" in held.headline


def test_a_finding_as_bad_as_the_alert_is_left_as_it_is():
    bad = Assessment("errors", Severity.critical, "api returns 12 % 5xx.", "...")

    assert hold_to_alerts(bad, [alert(value="0.12")], "api") is bad


def test_a_warning_alert_raises_an_ok_finding_to_warning_only():
    held = hold_to_alerts(errors_ok(), [alert(severity="warning")], "api")

    assert held.severity is Severity.warning
    assert " at " not in held.summary.split(",")[0]  # no value annotation: no number invented


def test_alerts_on_other_signals_other_backends_or_resolved_ones_change_nothing():
    base = errors_ok()
    others = [alert("BackendLatencyHigh"), alert(backend="web"), alert(status="resolved")]

    assert hold_to_alerts(base, others, "api") is base


def test_the_signal_label_names_the_signal_of_any_alert_and_values_need_a_known_rule():
    theirs = AlertContext(alertname="CheckoutErrors", labels={"signal": "errors"}, annotations={"value": "0.3"})

    assert alert_signal(theirs) == "errors"
    assert alert_value(theirs) is None
    assert alert_signal(AlertContext(alertname="NodeDiskFull")) is None
    assert alert_value(alert(value="not a number")) is None
    assert alert_value(alert(value="nan")) is None


def test_untrusted_alert_names_are_bounded():
    held = hold_to_alerts(errors_ok(), [alert(name="X" * 200, backend="b" * 500)], None)

    assert len(held.summary) < 400


def test_the_shipped_rules_descriptions_give_the_alerts_value():
    latency = alert("BackendLatencyHigh", description="P99 latency (HAProxy Ta) of backend api is 1.8s over the last "
                                                      "minute; the critical threshold is 1s.")
    errors = alert(description="10.17% of the requests to backend api were answered 5xx over the last minute; "
                               "the critical threshold is 10%.")

    assert (alert_value(latency).value, alert_value(latency).unit) == (1800.0, "ms")
    assert (alert_value(errors).value, alert_value(errors).scope) == (10.17, "backend=api")
    assert alert_value(alert(description="the threshold is crossed")) is None
