"""The golden signals as Prometheus metrics, read from Redis.

Counters live in Redis (one hash per UTC day), so every replica of the service
exposes the same numbers, and they survive restarts. At midnight UTC they start
again from zero, which Prometheus' rate() reads as an ordinary counter reset.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from . import keys
from .buckets import SEP
from .client import RedisClient
from .histogram import LE_BOUNDS_SECONDS, LE_INF
from .queries import redis_info

METRIC_NAMES = {
    "haproxy_log_requests_total": "Requests seen in HAProxy logs, by frontend, backend and status class.",
    "haproxy_log_request_duration_seconds": "Total active time of requests (HAProxy Ta), by backend.",
    "haproxy_log_termination_states_total": "Requests by HAProxy termination state (first two characters).",
    "haproxy_log_queued_requests_total": "Requests that waited in a backend or server queue.",
    "incident_copilot_redis_memory_used_bytes": "Memory Redis uses.",
    "incident_copilot_redis_memory_max_bytes": "Redis maxmemory (0 = no limit).",
    "incident_copilot_redis_connected_clients": "Clients connected to Redis.",
    "incident_copilot_redis_blocked_clients": "Redis clients blocked in a blocking call.",
    "incident_copilot_redis_rejected_connections_total": "Connections Redis refused (maxclients).",
    "incident_copilot_ingest_lines_accepted_total": "Log lines accepted, by source.",
    "incident_copilot_ingest_lines_rejected_total": "Log lines rejected, by source and reason.",
}


def _split(field: str, parts: int) -> list[str] | None:
    values = field.split(SEP)
    return values if len(values) == parts else None


async def collect(redis: RedisClient, *, now: Callable[[], float] = time.time) -> list[Metric]:
    """Read the counters and Redis' own figures (one round trip each)."""
    day = int(now() // 86400)
    pipe = redis.pipeline(transaction=False)
    for kind in ("req", "lat", "term", "queue", "ingest"):
        pipe.hgetall(keys.cumulative_key(kind, day))
    req, lat, term, queue, ingest = await pipe.execute()
    info = await redis_info(redis)
    return [
        *_requests(req),
        *_latency(lat),
        *_terms(term),
        *_queue(queue),
        *_redis(info),
        *_ingest(ingest),
    ]


def _requests(raw: dict[str, str]) -> Iterable[Metric]:
    family = CounterMetricFamily("haproxy_log_requests", METRIC_NAMES["haproxy_log_requests_total"],
                                 labels=["frontend", "backend", "code_class"])
    counts: dict[tuple[str, ...], int] = {}
    for field, value in raw.items():
        labels = _split(field, 3)
        if labels:
            counts[tuple(labels)] = int(value)
            # Error classes are exposed from the first request of a pair on, at 0 if need be,
            # so that the first error of the day is an increase rate() can see.
            for cls in ("2xx", "4xx", "5xx"):
                counts.setdefault((labels[0], labels[1], cls), 0)
    for labels in sorted(counts):
        family.add_metric(list(labels), counts[labels])
    yield family


def _latency(raw: dict[str, str]) -> Iterable[Metric]:
    family = HistogramMetricFamily("haproxy_log_request_duration_seconds",
                                   METRIC_NAMES["haproxy_log_request_duration_seconds"], labels=["backend"])
    per_backend: dict[str, dict[str, int]] = defaultdict(dict)
    for field, value in raw.items():
        parts = _split(field, 2)
        if parts:
            per_backend[parts[0]][parts[1]] = int(value)
    for backend in sorted(per_backend):
        stats = per_backend[backend]
        running = 0
        buckets = []
        for index, bound in enumerate(LE_BOUNDS_SECONDS):
            running += stats.get(str(index), 0)
            buckets.append((_le(bound), running))
        running += stats.get(str(LE_INF), 0)
        buckets.append(("+Inf", running))
        family.add_metric([backend], buckets, stats.get("sum", 0) / 1000.0)
    yield family


def _le(bound: float) -> str:
    return repr(float(bound))


def _terms(raw: dict[str, str]) -> Iterable[Metric]:
    family = CounterMetricFamily("haproxy_log_termination_states",
                                 METRIC_NAMES["haproxy_log_termination_states_total"], labels=["backend", "state"])
    for field, value in sorted(raw.items()):
        labels = _split(field, 2)
        if labels:
            family.add_metric(labels, int(value))
    yield family


def _queue(raw: dict[str, str]) -> Iterable[Metric]:
    family = CounterMetricFamily("haproxy_log_queued_requests",
                                 METRIC_NAMES["haproxy_log_queued_requests_total"], labels=["backend"])
    for backend, value in sorted(raw.items()):
        family.add_metric([backend], int(value))
    yield family


def _redis(info: dict) -> Iterable[Metric]:
    for name, key in (
        ("incident_copilot_redis_memory_used_bytes", "used_memory"),
        ("incident_copilot_redis_memory_max_bytes", "maxmemory"),
        ("incident_copilot_redis_connected_clients", "connected_clients"),
        ("incident_copilot_redis_blocked_clients", "blocked_clients"),
    ):
        yield GaugeMetricFamily(name, METRIC_NAMES[name], value=float(info.get(key, 0)))
    yield CounterMetricFamily("incident_copilot_redis_rejected_connections",
                              METRIC_NAMES["incident_copilot_redis_rejected_connections_total"],
                              value=float(info.get("rejected_connections", 0)))


def _ingest(raw: dict[str, str]) -> Iterable[Metric]:
    accepted = CounterMetricFamily("incident_copilot_ingest_lines_accepted",
                                   METRIC_NAMES["incident_copilot_ingest_lines_accepted_total"], labels=["source"])
    rejected = CounterMetricFamily("incident_copilot_ingest_lines_rejected",
                                   METRIC_NAMES["incident_copilot_ingest_lines_rejected_total"],
                                   labels=["source", "reason"])
    for field, value in sorted(raw.items()):
        parts = field.split(SEP)
        if parts[0] == "a" and len(parts) == 2:
            accepted.add_metric([parts[1]], int(value))
        elif parts[0] == "r" and len(parts) == 3:
            rejected.add_metric(parts[1:], int(value))
    yield accepted
    yield rejected


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def render(families: list[Metric]) -> bytes:
    """Prometheus text format (version 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)
