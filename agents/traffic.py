"""The traffic specialist: requests per minute against their own recent baseline."""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import fmean, median

from ingestion import Rps

from . import wording
from .assessment import Assessment, Cause
from .config import Thresholds
from .report import Evidence, Severity
from .signals import SignalSnapshot
from .specialist_spec import SpecialistSpec


def complete_minutes(rps: Rps, at: datetime) -> list[int]:
    """Requests per minute, oldest first, without minutes that had not ended by `at`."""
    return [p.requests for p in rps.points if p.minute + timedelta(minutes=1) <= at]


def split_recent(counts: list[int], recent_minutes: int) -> tuple[list[int], list[int]]:
    """(history, recent); history starts at the first minute that had any traffic."""
    recent = counts[-recent_minutes:] if recent_minutes else []
    history = counts[: len(counts) - len(recent)]
    first = next((i for i, n in enumerate(history) if n > 0), len(history))
    return history[first:], recent


def evaluate_traffic(s: SignalSnapshot, t: Thresholds) -> Assessment:
    """A stop (critical), a drop or a spike (warning) of the last minutes against the median before them."""
    counts = complete_minutes(s.rps, s.at)
    recent_minutes = max(1, min(t.traffic_recent_minutes, s.window_minutes))
    history, recent = split_recent(counts, recent_minutes)
    scope = wording.scope_label(s.backend)
    where = s.backend or "all backends"
    now_rpm = fmean(recent) if recent else 0.0
    evidence = [Evidence(metric="requests_per_minute", value=round(now_rpm, 2), unit="req/min",
                         window_minutes=recent_minutes, scope=scope)]
    if len(history) < recent_minutes:
        return Assessment("traffic", Severity.ok,
                          f"{where}: {wording.rate(now_rpm)}; not enough history for a baseline.",
                          f"{len(history)} minutes of earlier traffic; a baseline needs {recent_minutes}.",
                          tuple(evidence))
    baseline = float(median(history))
    evidence.append(Evidence(metric="baseline_requests_per_minute", value=round(baseline, 2), unit="req/min",
                             window_minutes=len(history), scope=scope))
    shape = (f"Last {recent_minutes} min: {', '.join(str(n) for n in recent)} req/min; "
             f"median of the {len(history)} min before: {wording.rate(baseline)}.")
    factor = t.traffic_spike_factor

    if baseline >= t.min_requests_per_minute and recent and all(n == 0 for n in recent):
        evidence[0] = evidence[0].model_copy(update={"threshold": 0.0})
        stopped_at = _stop_minute(counts)
        return Assessment(
            "traffic", Severity.critical,
            f"Traffic to {where} stopped: 0 requests for {recent_minutes} min after {wording.rate(baseline)}.",
            shape + (f" The last request was {stopped_at} min ago." if stopped_at else "")
            + " HAProxy logged nothing: clients no longer reach it, or its logs no longer reach us.",
            tuple(evidence),
            (Cause("traffic_drop", Severity.critical, "traffic stopped", backend=s.backend, weight=baseline,
                   facts={"baseline_rpm": baseline}),),
            "traffic stopped", s.backend,
        )
    if baseline >= t.min_requests_per_minute and now_rpm < baseline / factor:
        evidence[0] = evidence[0].model_copy(update={"threshold": round(baseline / factor, 2)})
        drop = 100.0 * (1 - now_rpm / baseline)
        return Assessment(
            "traffic", Severity.warning,
            f"Traffic to {where} dropped {wording.pct(drop)}: {wording.rate(now_rpm)} "
            f"against {wording.rate(baseline)}.",
            shape, tuple(evidence),
            (Cause("traffic_drop", Severity.warning, "traffic drop", backend=s.backend, weight=drop,
                   facts={"baseline_rpm": baseline, "recent_rpm": round(now_rpm, 1)}),),
            f"traffic down {wording.pct(drop)}", s.backend,
        )
    if now_rpm >= t.min_requests_per_minute and now_rpm > factor * max(baseline, 1.0):
        evidence[0] = evidence[0].model_copy(update={"threshold": round(factor * baseline, 2)})
        ratio = now_rpm / max(baseline, 1.0)
        return Assessment(
            "traffic", Severity.warning,
            f"Traffic spike on {where}: {wording.rate(now_rpm)} is {ratio:.1f}\u00d7 its baseline "
            f"of {wording.rate(baseline)}.",
            shape, tuple(evidence),
            (Cause("traffic_spike", Severity.warning, "traffic spike", backend=s.backend, weight=ratio,
                   facts={"ratio": round(ratio, 1), "baseline_rpm": baseline}),),
            f"traffic \u00d7{ratio:.1f}", s.backend,
        )
    if s.backend is None:
        standout = _backend_standout(s, t)
        if standout is not None:
            return standout
    return Assessment("traffic", Severity.ok,
                      f"Traffic normal: {wording.rate(now_rpm)} against a baseline of {wording.rate(baseline)}.",
                      shape, tuple(evidence))


def _backend_standout(s: SignalSnapshot, t: Thresholds) -> Assessment | None:
    """A spike or drop on one backend that the site's total hides: the largest change against its own baseline."""
    if s.series is None:
        return None
    recent_minutes = max(1, t.traffic_recent_minutes)
    found: list[tuple[float, str, float, float, list[int]]] = []
    for row in s.series.by_backend:
        counts = [p.requests for p in row.points if p.minute + timedelta(minutes=1) <= s.at]
        history, recent = split_recent(counts, recent_minutes)
        if len(history) < recent_minutes or not recent:
            continue
        base, now = float(median(history)), fmean(recent)
        if now >= t.min_requests_per_minute and now > t.traffic_spike_factor * max(base, 1.0):
            found.append((now / max(base, 1.0), row.backend, base, now, recent))
        elif base >= t.min_requests_per_minute and now < base / t.traffic_spike_factor:
            found.append((base / max(now, 1.0), row.backend, base, now, recent))
    if not found:
        return None
    found.sort(key=lambda f: -f[0])
    _, backend, base, now, recent = found[0]
    spike = now > base
    scope = f"backend={backend}"
    evidence = (
        Evidence(metric="requests_per_minute", value=round(now, 2), unit="req/min", window_minutes=recent_minutes,
                 scope=scope,
                 threshold=round(t.traffic_spike_factor * base if spike else base / t.traffic_spike_factor, 2)),
        Evidence(metric="baseline_requests_per_minute", value=round(base, 2), unit="req/min",
                 window_minutes=len(s.series.points) - recent_minutes, scope=scope),
    )
    others = ", ".join(f"{b} ×{r:.1f}" for r, b, *_ in found[1:4])
    shape = (f"Last {recent_minutes} min on {backend}: {', '.join(str(n) for n in recent)} req/min; its median "
             f"before: {wording.rate(base)}. The site's total moved less." + (f" Also: {others}." if others else ""))
    if spike:
        ratio = now / max(base, 1.0)
        return Assessment(
            "traffic", Severity.warning,
            f"Traffic spike on {backend}: {wording.rate(now)} is {ratio:.1f}× its baseline of "
            f"{wording.rate(base)}.", shape, evidence,
            (Cause("traffic_spike", Severity.warning, "traffic spike", backend=backend, weight=ratio,
                   facts={"ratio": round(ratio, 1), "baseline_rpm": base}),),
            f"traffic ×{ratio:.1f}", backend,
        )
    drop = 100.0 * (1 - now / base)
    return Assessment(
        "traffic", Severity.warning,
        f"Traffic to {backend} dropped {wording.pct(drop)}: {wording.rate(now)} against {wording.rate(base)}.",
        shape, evidence,
        (Cause("traffic_drop", Severity.warning, "traffic drop", backend=backend, weight=drop,
               facts={"baseline_rpm": base, "recent_rpm": round(now, 1)}),),
        f"traffic down {wording.pct(drop)}", backend,
    )


def _stop_minute(counts: list[int]) -> int | None:
    """Minutes since the last minute that had traffic."""
    for age, n in enumerate(reversed(counts)):
        if n > 0:
            return age
    return None


TRAFFIC = SpecialistSpec(
    name="traffic",
    focus=(
        "You assess TRAFFIC: requests per minute against their recent baseline. Zero requests where there was "
        "traffic means clients no longer reach HAProxy (DNS, load balancer, upstream) or HAProxy's logs no "
        "longer reach this service; a spike may be a campaign, a bot or a retry storm."
    ),
    tools=("rps", "overview", "backends", "frontends", "series"),
    evaluate=evaluate_traffic,
)
