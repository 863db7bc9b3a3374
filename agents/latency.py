"""The latency specialist: how slow, where, and whether the time goes to queues or to the servers."""

from __future__ import annotations

from ingestion import BackendStats

from . import wording
from .assessment import Assessment, Cause, worst_cause_first
from .config import Thresholds
from .haproxy import explain_state
from .report import Evidence, Severity
from .signals import SignalSnapshot
from .specialist_spec import SpecialistSpec

# Mean queue time (Tw) this high, and above the server time, means capacity rather than slowness.
_QUEUEING_MS = 50.0
_SLOW_CONNECT_MS = 100.0
_STATE_SHARE_PCT = 1.0


def latency_severity(p95: float | None, p99: float | None, t: Thresholds) -> Severity:
    if p99 is not None and p99 > t.latency_p99_ms:
        return Severity.critical
    if p95 is not None and p95 > t.latency_p95_ms:
        return Severity.warning
    return Severity.ok


def evaluate_latency(s: SignalSnapshot, t: Thresholds) -> Assessment:
    """P95/P99 against thresholds, overall and per backend, then the breakdown of the slowest backend."""
    rt = s.response_times
    window = s.window_minutes
    scope = wording.scope_label(s.backend)
    rpm = s.overview.requests_per_minute
    evidence = [
        Evidence(metric="latency_p95_ms", value=rt.p95, threshold=t.latency_p95_ms, unit="ms",
                 window_minutes=window, scope=scope),
        Evidence(metric="latency_p99_ms", value=rt.p99, threshold=t.latency_p99_ms, unit="ms",
                 window_minutes=window, scope=scope),
    ]
    if rt.count == 0:
        return Assessment("latency", Severity.ok, "No requests in the window: latency not measured.",
                          "There were no requests to measure.", tuple(evidence))

    overall = latency_severity(rt.p95, rt.p99, t)
    if rpm < t.min_requests_per_minute:
        evidence.append(_floor_evidence(rpm, t, window, scope))
        return Assessment(
            "latency", Severity.ok,
            f"Traffic of {wording.rate(rpm)} is below the floor of {wording.rate(t.min_requests_per_minute)}: "
            f"latency (P99 {wording.ms(rt.p99)}) does not alert.",
            "Percentiles over so few requests are noise.", tuple(evidence),
        )

    rated = [(row, latency_severity(row.p95_ms, row.p99_ms, t)) for row in s.backend_stats
             if row.requests / window >= t.min_requests_per_minute]
    severity = Severity.worst([overall, *(sev for _, sev in rated)])
    slowest = max(rated, key=lambda pair: (pair[1].rank, pair[0].p99_ms or 0.0), default=None)
    culprit = slowest[0] if slowest and slowest[1].rank >= overall.rank and slowest[1] != Severity.ok else None

    if severity == Severity.ok:
        return Assessment(
            "latency", Severity.ok,
            f"Latency within thresholds: P95 {wording.ms(rt.p95)}, P99 {wording.ms(rt.p99)}.",
            f"P95 {wording.ms(rt.p95)} (warning above {wording.ms(t.latency_p95_ms)}), "
            f"P99 {wording.ms(rt.p99)} (critical above {wording.ms(t.latency_p99_ms)}).",
            tuple(evidence),
        )

    p95, p99 = (culprit.p95_ms, culprit.p99_ms) if culprit else (rt.p95, rt.p99)
    where = culprit.backend if culprit else (s.backend or "all backends")
    over = sorted((pair for pair in rated if pair[1] != Severity.ok),
                  key=lambda pair: (-pair[1].rank, -(pair[0].p99_ms or 0.0)))
    if len(over) > 1 and s.backend is None:
        details_over = "Backends above a latency threshold, worst first: " + ", ".join(
            f"{row.backend} P99 {wording.ms(row.p99_ms)}" for row, _ in over[:5]) + "."
    else:
        details_over = None
    if culprit and s.backend is None:
        evidence += [
            Evidence(metric="latency_p95_ms", value=p95, threshold=t.latency_p95_ms, unit="ms",
                     window_minutes=window, scope=f"backend={culprit.backend}"),
            Evidence(metric="latency_p99_ms", value=p99, threshold=t.latency_p99_ms, unit="ms",
                     window_minutes=window, scope=f"backend={culprit.backend}"),
        ]
    details = [f"{where}: P95 {wording.ms(p95)}, P99 {wording.ms(p99)} over {window} min."]
    if details_over:
        details.append(details_over)
    causes: list[Cause] = []
    row = culprit or (slowest[0] if slowest else None)
    if row is not None:
        sentences, found, extra = _backend_breakdown(row, severity, window)
        details += sentences
        causes += found
        evidence += extra
    routes = [p for p in s.paths.top_by_latency if p.p95_ms is not None][:3]
    if routes:
        details.append("Slowest routes: " + ", ".join(
            f"{p.route} (p95 \u2264 {wording.ms(p.p95_ms)}, mean {wording.ms(p.mean_ms)}, {p.requests} req)"
            for p in routes) + ".")
        top = routes[0]
        evidence.append(Evidence(metric="route_latency_p95_ms", value=top.p95_ms, threshold=t.latency_p95_ms,
                                 unit="ms", window_minutes=window, scope=f"route={top.route}"))
    if not causes:
        causes.append(Cause("slow_server", severity, "slow responses", backend=row.backend if row else None))

    headline = f"P99 {wording.ms(p99)}" if severity == Severity.critical else f"P95 {wording.ms(p95)}"
    limit = (f"P99 {wording.ms(p99)} > {wording.ms(t.latency_p99_ms)}" if severity == Severity.critical
             else f"P95 {wording.ms(p95)} > {wording.ms(t.latency_p95_ms)}")
    return Assessment(
        "latency", severity, f"{where} is slow: {limit}.", " ".join(details), tuple(evidence),
        worst_cause_first(causes), headline, culprit.backend if culprit else s.backend,
    )


def _backend_breakdown(row: BackendStats, severity: Severity, window: int):
    """Where a slow backend's time goes: queue (Tw), connect (Tc), server (Tr), and its timeouts."""
    sentences: list[str] = []
    causes: list[Cause] = []
    scope = f"backend={row.backend}"
    tw, tc, tr = row.mean_queue_ms, row.mean_connect_ms, row.mean_response_ms
    evidence = [
        Evidence(metric="mean_queue_ms", value=tw, unit="ms", window_minutes=window, scope=scope),
        Evidence(metric="mean_response_ms", value=tr, unit="ms", window_minutes=window, scope=scope),
    ]
    sentences.append(
        f"Mean time in queue (Tw) {wording.ms(tw)}, connect (Tc) {wording.ms(tc)}, "
        f"server response (Tr) {wording.ms(tr)}; {row.queued_requests} of {row.requests} requests queued."
    )
    if tw is not None and tw >= _QUEUEING_MS and tw >= (tr or 0.0):
        sentences.append("Requests wait in HAProxy's queue longer than the servers take: the backend lacks capacity.")
        causes.append(Cause("queueing", severity, "queueing", backend=row.backend, weight=tw,
                            facts={"mean_queue_ms": tw, "mean_response_ms": tr or 0.0}))
    else:
        if tc is not None and tc >= _SLOW_CONNECT_MS:
            sentences.append("Connecting to the servers is slow: check the network path and server accept queues.")
        sentences.append("The time is spent in the servers, not in queues.")
    for state, count in sorted(row.termination_states.items(), key=lambda kv: -kv[1]):
        meaning = explain_state(state)
        if meaning is None or not meaning.server_side or meaning.kind == "connection_refused":
            continue
        share = 100.0 * count / row.requests if row.requests else 0.0
        if share < _STATE_SHARE_PCT:
            continue
        sentences.append(f"{count} requests ({wording.pct(share)}) ended {state[:2]}: {meaning.meaning}.")
        causes.append(Cause(meaning.kind, severity, meaning.label, backend=row.backend, weight=100.0 + share,
                            facts={"state": state[:2], "requests": count, "share_pct": round(share, 1)}))
        evidence.append(Evidence(metric=f"termination_{state[:2]}_pct", value=round(share, 2), unit="%",
                                 window_minutes=window, scope=scope))
        break
    if not any(c.kind in ("queueing", "server_timeout", "queue_timeout") for c in causes):
        causes.append(Cause("slow_server", severity, "slow server responses", backend=row.backend,
                            weight=tr or 0.0, facts={"mean_response_ms": tr or 0.0}))
    return sentences, causes, evidence


def _floor_evidence(rpm: float, t: Thresholds, window: int, scope: str) -> Evidence:
    return Evidence(metric="requests_per_minute", value=round(rpm, 2), threshold=t.min_requests_per_minute,
                    unit="req/min", window_minutes=window, scope=scope)


LATENCY = SpecialistSpec(
    name="latency",
    focus=(
        "You assess LATENCY: P95/P99 response time overall and per backend and route, and whether time is spent "
        "queueing in HAProxy (Tw), connecting (Tc) or in the servers (Tr). Server timeouts (termination state sH) "
        "cap latency at `timeout server`; queueing points at capacity (maxconn, too few servers)."
    ),
    tools=("response_times", "backends", "paths", "termination_states", "rps", "servers", "series",
           "samples"),
    evaluate=evaluate_latency,
)
