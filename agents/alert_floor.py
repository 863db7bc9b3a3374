"""A firing alert is a measurement too: no finding says `ok` about a signal that has one.

When the logs' figures and the alert disagree (a burst shorter than the analysed window, a
Prometheus scraping another HAProxy replica, clocks that differ), the finding says so, shows
both numbers, and takes at least the alert's severity.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

from . import wording
from .assessment import Assessment, Cause
from .report import Evidence, Severity, Specialist
from .request import AlertContext

SIGNALS: frozenset[str] = frozenset({"latency", "errors", "saturation", "traffic"})
# The signal of an alert without a `signal` label, for the rules this service ships.
_KNOWN_ALERTS: dict[str, str] = {
    "BackendLatencyHigh": "latency",
    "Backend5xxRateHigh": "errors",
    "Backend4xxRateHigh": "errors",
    "BackendTrafficSpike": "traffic",
    "BackendTrafficDropped": "traffic",
    "IngestionDown": "traffic",
    "RedisMemoryHigh": "saturation",
    "RedisRejectingConnections": "saturation",
}
# The `value` annotation of those rules, as a person reads it: (evidence metric, unit, scale).
_VALUES: dict[str, tuple[str, str, float]] = {
    "BackendLatencyHigh": ("alert_latency_ms", "ms", 1000.0),
    "Backend5xxRateHigh": ("alert_error_rate_5xx_pct", "%", 100.0),
    "Backend4xxRateHigh": ("alert_error_rate_4xx_pct", "%", 100.0),
    "BackendTrafficSpike": ("alert_traffic_factor", "\u00d7", 1.0),
    "RedisMemoryHigh": ("alert_memory_used_pct", "%", 100.0),
}
# How those rules' descriptions print the value: humanizePercentage, humanizeDuration, humanize + "x".
_PRINTED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(%|ms|s|x)(?![\w])")
_PRINTED_SCALE = {"%": 1.0, "ms": 1.0, "s": 1000.0, "x": 1.0}
_SEVERITIES = {"critical": Severity.critical, "page": Severity.critical, "error": Severity.critical,
               "high": Severity.critical, "warning": Severity.warning, "medium": Severity.warning,
               "low": Severity.warning, "info": Severity.warning}
_MAX_NAME = 80


def alert_signal(alert: AlertContext) -> Specialist | None:
    """The golden signal an alert is about: its `signal` label, else what the shipped rules mean."""
    label = alert.labels.get("signal", "").strip().lower()
    if label in SIGNALS:
        return label  # type: ignore[return-value]
    return _KNOWN_ALERTS.get(alert.alertname)  # type: ignore[return-value]


def alert_severity(alert: AlertContext) -> Severity:
    """What the alert's severity means here; an alert without a known one still means at least a warning."""
    named = (alert.severity or alert.labels.get("severity") or "").strip().lower()
    return _SEVERITIES.get(named, Severity.warning)


def alert_value(alert: AlertContext) -> Evidence | None:
    """The measurement of an alert of the shipped rules: a `value` annotation, else the one its description prints.

    None for any other alert, or when neither holds a number: no figure is shown without a source.
    """
    shape = _VALUES.get(alert.alertname)
    if shape is None:
        return None
    metric, unit, scale = shape
    value = _annotated(alert.annotations.get("value", ""), scale)
    if value is None:
        value = _printed(alert.annotations.get("description", ""), unit)
    if value is None or not math.isfinite(value):
        return None
    backend = alert.labels.get("backend")
    return Evidence(metric=metric, value=round(value, 3), unit=unit, window_minutes=1,
                    scope=f"backend={_clip(backend)}" if backend else "all")


def _annotated(raw: str, scale: float) -> float | None:
    raw = raw.strip()
    if not raw or len(raw) > 40:
        return None
    try:
        return float(raw) * scale
    except ValueError:
        return None


def _printed(description: str, unit: str) -> float | None:
    """The first figure in the unit's family the description prints ("10.17%", "1.8s", "875ms", "5.2x")."""
    family = {"%": ("%",), "ms": ("ms", "s"), "\u00d7": ("x",)}[unit]
    for match in _PRINTED.finditer(description[:2000]):
        number, suffix = match.groups()
        if suffix in family:
            return float(number) * _PRINTED_SCALE[suffix]
    return None


def hold_to_alerts(assessment: Assessment, alerts: list[AlertContext], backend: str | None) -> Assessment:
    """The assessment, raised to the severity of the firing alerts on its signal (and scope) if it was lower."""
    firing = [a for a in alerts if a.status == "firing" and alert_signal(a) == assessment.specialist
              and (backend is None or a.labels.get("backend") in (None, "", backend))]
    if not firing:
        return assessment
    worst = max(firing, key=lambda a: alert_severity(a).rank)
    floor = alert_severity(worst)
    if assessment.severity.rank >= floor.rank:
        return assessment
    name = _clip(worst.alertname or "An alert")
    where = _clip(worst.labels.get("backend") or backend or "") or None
    measured = alert_value(worst)
    said = (f"{name} fires" + (f" on {where}" if where else "")
            + (f" at {_shown(measured)}" if measured is not None else ""))
    summary = (f"{said}, while the logs read {assessment.severity.value}: {assessment.summary.rstrip('.')}. "
               f"{floor.value.capitalize()} as the alert says.")
    details = (f"{assessment.details} The alert and the logs disagree: the alert may have caught a burst shorter "
               "than the analysed window, Prometheus may scrape another HAProxy replica than the one whose logs "
               "arrive here, or the clocks of Prometheus and the log senders differ.")
    evidence = (*assessment.evidence, measured) if measured is not None else assessment.evidence
    cause = Cause("alert_firing", floor, f"{name} firing", backend=where, weight=0.0)
    headline = f"{name} firing" + (f" ({_shown(measured)})" if measured is not None else "")
    return replace(assessment, severity=floor, summary=summary, details=details, evidence=tuple(evidence),
                   causes=(*assessment.causes, cause), headline=headline, backend=assessment.backend or where)


def _shown(e: Evidence) -> str:
    if e.unit == "%":
        return wording.pct(e.value)
    if e.unit == "ms":
        return wording.ms(e.value)
    return f"{e.value:g}{e.unit}"


def _clip(text: str | None) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= _MAX_NAME else text[: _MAX_NAME - 1] + "\u2026"
