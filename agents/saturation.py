"""The saturation specialist: Redis memory and connections, HAProxy queues."""

from __future__ import annotations

from . import wording
from .assessment import Assessment, Cause, worst_cause_first
from .config import Thresholds
from .report import Evidence, Severity
from .signals import SignalSnapshot
from .specialist_spec import SpecialistSpec


def memory_severity(used_pct: float | None, t: Thresholds) -> Severity:
    if used_pct is None:
        return Severity.ok
    if used_pct > t.memory_used_critical_pct:
        return Severity.critical
    if used_pct > t.memory_used_pct:
        return Severity.warning
    return Severity.ok


def evaluate_saturation(s: SignalSnapshot, t: Thresholds) -> Assessment:
    """Redis memory against maxmemory, rejected connections, and the share of requests that queued."""
    redis, haproxy = s.saturation.redis, s.saturation.haproxy
    window = s.window_minutes
    scope = wording.scope_label(s.backend)
    evidence = [
        Evidence(metric="redis_memory_used_pct", value=redis.memory_used_pct, threshold=t.memory_used_pct, unit="%",
                 window_minutes=window, scope="redis"),
        Evidence(metric="redis_rejected_connections", value=float(redis.rejected_connections), threshold=0.0,
                 unit="connections", window_minutes=window, scope="redis"),
        Evidence(metric="queued_requests_pct", value=haproxy.queued_pct, threshold=t.queued_requests_pct, unit="%",
                 window_minutes=window, scope=scope),
    ]
    causes: list[Cause] = []
    findings: list[str] = []
    details: list[str] = []
    headlines: list[str] = []

    mem = memory_severity(redis.memory_used_pct, t)
    if redis.memory_used_pct is None:
        details.append(f"Redis uses {_mib(redis.used_memory_bytes)} with no maxmemory set.")
    else:
        details.append(
            f"Redis uses {_mib(redis.used_memory_bytes)} of {_mib(redis.maxmemory_bytes)} maxmemory "
            f"({wording.pct(redis.memory_used_pct)})."
        )
    if mem != Severity.ok:
        findings.append(f"Redis memory at {wording.pct(redis.memory_used_pct)} of maxmemory")
        headlines.append(f"Redis memory {wording.pct(redis.memory_used_pct)}")
        causes.append(Cause("redis_memory", mem, "Redis near maxmemory", weight=redis.memory_used_pct or 0.0,
                            facts={"memory_used_pct": redis.memory_used_pct or 0.0}))
    if redis.rejected_connections > 0:
        mem = Severity.worst([mem, Severity.warning])
        findings.append(f"Redis rejected {redis.rejected_connections} connections")
        headlines.append(f"{redis.rejected_connections} Redis connections rejected")
        causes.append(Cause("redis_rejected", Severity.warning, "Redis rejecting connections",
                            weight=float(redis.rejected_connections),
                            facts={"connected_clients": redis.connected_clients,
                                   "maxclients": redis.maxclients or 0}))
        details.append(
            f"Redis rejected {redis.rejected_connections} connections since it started "
            f"({redis.connected_clients} connected, maxclients {redis.maxclients or 'unknown'})."
        )

    queue = Severity.ok
    rpm = haproxy.requests / window if window else 0.0
    details.append(
        f"HAProxy: {haproxy.queued_requests} of {haproxy.requests} requests queued "
        f"({wording.pct(haproxy.queued_pct)}), "
        f"mean queue time {wording.ms(haproxy.mean_queue_ms)}, max server queue {haproxy.max_srv_queue}, "
        f"max backend queue {haproxy.max_backend_queue}, {haproxy.retries} retries, "
        f"max {haproxy.max_actconn} active connections."
    )
    if haproxy.queued_pct > t.queued_requests_pct and rpm >= t.min_requests_per_minute:
        queue = Severity.warning
        busiest = max((b for b in s.backend_stats if b.requests), key=lambda b: b.queued_requests / b.requests,
                      default=None)
        backend = busiest.backend if busiest and busiest.queued_requests else s.backend
        findings.append(f"{wording.pct(haproxy.queued_pct)} of requests waited in HAProxy queues")
        headlines.append(f"{wording.pct(haproxy.queued_pct)} requests queued")
        causes.append(Cause("queueing", queue, "HAProxy queueing", backend=backend, weight=haproxy.queued_pct,
                            facts={"queued_pct": haproxy.queued_pct, "mean_queue_ms": haproxy.mean_queue_ms or 0.0}))
        evidence.append(Evidence(metric="mean_queue_ms", value=haproxy.mean_queue_ms, unit="ms",
                                 window_minutes=window, scope=scope))

    severity = Severity.worst([mem, queue])
    if severity == Severity.ok:
        summary = "No saturation: " + (
            f"Redis memory {wording.pct(redis.memory_used_pct)} of maxmemory"
            if redis.memory_used_pct is not None else "Redis has no maxmemory"
        ) + f", {wording.pct(haproxy.queued_pct)} of requests queued."
        return Assessment("saturation", Severity.ok, summary, " ".join(details), tuple(evidence))
    culprit = next((c.backend for c in causes if c.backend), None)
    return Assessment("saturation", severity, "; ".join(findings) + ".", " ".join(details), tuple(evidence),
                      worst_cause_first(causes), " and ".join(headlines), culprit)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


SATURATION = SpecialistSpec(
    name="saturation",
    focus=(
        "You assess SATURATION: the Redis that stores the metrics (memory against maxmemory, rejected and blocked "
        "clients) and HAProxy (share of requests that queued, queue times Tw, queue lengths, retries, connection "
        "counts). Near maxmemory Redis evicts or refuses writes; queueing means too few server slots (maxconn)."
    ),
    tools=("saturation", "backends", "rps", "overview"),
    evaluate=evaluate_saturation,
)
