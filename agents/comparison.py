"""Before and since: each finding's figures set against the same figures before the onset."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from . import wording
from .assessment import Assessment
from .report import Evidence, Severity
from .signals import Baseline, SignalSnapshot

# The figure a finding's summary leads with, by specialist; the first one with a baseline wins.
_LEADS: dict[str, tuple[str, ...]] = {
    "errors": ("error_rate_5xx_pct", "error_rate_4xx_pct"),
    "latency": ("latency_p99_ms", "latency_p95_ms"),
    "traffic": ("requests_per_minute",),
}
_NAMES = {
    "error_rate_5xx_pct": "5xx",
    "error_rate_4xx_pct": "4xx",
    "latency_p99_ms": "P99",
    "latency_p95_ms": "P95",
    "requests_per_minute": "traffic",
}


def compare_with_baseline(assessment: Assessment, snapshot: SignalSnapshot) -> Assessment:
    """The assessment with each figure's value before the onset, and a summary that leads with the change.

    Unchanged when there is no baseline (no onset in view).
    """
    base = snapshot.baseline
    if base is None:
        return assessment
    evidence = tuple(_with_baseline(e, base) for e in assessment.evidence)
    lead = _lead(assessment, evidence, snapshot)
    if lead is None:
        return replace(assessment, evidence=evidence)
    text = _change_text(lead, snapshot)
    if assessment.severity is Severity.ok:
        return replace(assessment, evidence=evidence, details=f"{assessment.details} {text}.")
    return replace(assessment, evidence=evidence, summary=f"{text}. {assessment.summary}")


def _with_baseline(e: Evidence, base: Baseline) -> Evidence:
    if e.baseline is not None or e.metric not in _NAMES:
        return e
    value = baseline_value(e.metric, e.scope, base)
    return e if value is None else e.model_copy(update={"baseline": value})


def baseline_value(metric: str, scope: str | None, base: Baseline) -> float | None:
    """The baseline's figure for a metric on a scope ("all", "backend=api", "route=…"); None where it has none."""
    if scope is not None and scope.startswith("route="):
        rates = base.routes.get(scope[6:])
        if rates is None or metric not in ("error_rate_4xx_pct", "error_rate_5xx_pct"):
            return None
        return rates[0] if metric == "error_rate_4xx_pct" else rates[1]
    if scope is None or scope == "all" or (scope.startswith("backend=") and base.overview.backend == scope[8:]):
        if base.overview.total_requests == 0:
            return None
        return {
            "error_rate_5xx_pct": base.overview.error_rate_5xx_pct,
            "error_rate_4xx_pct": base.overview.error_rate_4xx_pct,
            "latency_p99_ms": base.response_times.p99,
            "latency_p95_ms": base.response_times.p95,
            "requests_per_minute": base.overview.requests_per_minute,
        }[metric]
    if not scope.startswith("backend="):
        return None
    row = base.backend_row(scope[8:])
    if row is None or row.requests == 0:
        return None
    return {
        "error_rate_5xx_pct": row.error_rate_5xx_pct,
        "error_rate_4xx_pct": row.error_rate_4xx_pct,
        "latency_p99_ms": row.p99_ms,
        "latency_p95_ms": row.p95_ms,
        "requests_per_minute": round(row.requests / base.window_minutes, 2),
    }[metric]


def _lead(assessment: Assessment, evidence: tuple[Evidence, ...], snapshot: SignalSnapshot) -> Evidence | None:
    wanted = _LEADS.get(assessment.specialist, ())
    if assessment.specialist == "latency" and assessment.severity is Severity.warning:
        wanted = ("latency_p95_ms", "latency_p99_ms")
    if assessment.specialist == "errors" and assessment.headline and "5xx" not in assessment.headline:
        wanted = ("error_rate_4xx_pct", "error_rate_5xx_pct")
    routes = [f"route={c.route}" for c in assessment.causes if c.route]
    preferred = [*routes[:1], wording.scope_label(assessment.backend or snapshot.backend)]
    candidates = [e for metric in wanted for e in evidence
                  if e.metric == metric and e.baseline is not None and e.value is not None]
    for scope in preferred:
        found = next((e for e in candidates if e.scope == scope), None)
        if found is not None:
            return found
    return candidates[0] if candidates else None


def _change_text(e: Evidence, snapshot: SignalSnapshot) -> str:
    """ "5xx 0.3 % → 12 % since 16:41 (api)"; after a resolution, "… before 16:35 → … now"."""
    name = _NAMES[e.metric]
    before, after = _fmt(e.metric, e.baseline), _fmt(e.metric, e.value)
    where = f" ({e.scope.partition('=')[2]})" if e.scope and e.scope.startswith(("backend=", "route=")) else ""
    if snapshot.onset is not None:
        return f"{name} {before} \u2192 {after} since {_hhmm(snapshot.onset.minute)}{where}"
    assert snapshot.baseline is not None
    return f"{name} {before} before {_hhmm(snapshot.baseline.end)} \u2192 {after} now{where}"


def _fmt(metric: str, value: float | None) -> str:
    if metric.endswith("_pct"):
        return wording.pct(value)
    if metric.endswith("_ms"):
        return wording.ms(value)
    return wording.rate(value or 0.0)


def _hhmm(moment: datetime) -> str:
    return f"{moment:%H:%M}"
