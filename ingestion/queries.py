"""The golden-signal queries behind `GET /metrics/*` and the agents' tools."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from . import keys
from .buckets import BACKEND_MAXIMA, SAMPLES_PER_BACKEND, BackendAgg, PathAgg, ServerAgg, route_method
from .client import RedisClient, is_cluster
from .histogram import le_quantile, quantiles
from .reading import BucketReader, Derived, Merged, Span
from .views import (
    BackendSeries,
    BackendStats,
    Backends,
    FrontendStats,
    Frontends,
    HaproxySaturation,
    Overview,
    Paths,
    PathStats,
    RedisSaturation,
    ResponseTimes,
    Rps,
    RpsPoint,
    SampleRequest,
    Samples,
    Saturation,
    Series,
    SeriesPoint,
    Servers,
    ServerStats,
    StatusCodes,
    TerminationStates,
)

_TOTALS = frozenset({"totals"})
# The samples view reads at most this many minutes: a key per minute and backend.
SAMPLE_MINUTES = 60
_BACKENDS = frozenset({"totals", "backends"})
_PATHS = frozenset({"totals", "paths"})
_SATURATION = frozenset({"totals", "backends", "maxima"})
# A window over more backends than this (a day of many of them) has its figures computed in a thread.
_MANY_BACKENDS = 200
# A series missing more points than this (backends' included) computes them in a thread, for the same reason.
_MANY_POINTS = 500


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 3) if whole else 0.0


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _mean(total: int, count: int) -> float | None:
    return round(total / count, 3) if count else None


def _error_counts(codes: Counter) -> tuple[int, int]:
    e4 = sum(c for code, c in codes.items() if code.startswith("4") and len(code) == 3)
    e5 = sum(c for code, c in codes.items() if code.startswith("5") and len(code) == 3)
    return e4, e5


def _most_first(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


class MetricsQueries:
    """Read-only views over the last `window` minutes ending at `at` (default: now)."""

    def __init__(self, redis: RedisClient, *, now: Callable[[], float] = time.time, reader: BucketReader | None = None,
                 snapshot_seconds: float = 0.0):
        """`snapshot_seconds`: how old an answer over the still-filling minute may be (`BucketReader`)."""
        self._redis = redis
        self._now = now
        self._reader = reader or BucketReader(redis, now=now, snapshot_seconds=snapshot_seconds)
        self._points = Derived()  # a minute's series points, by scope (None: the whole site)

    def _span(self, window: int, at: datetime | None) -> Span:
        if window < 1:
            raise ValueError("window must be at least 1 minute")
        return Span.ending_at(window, at.timestamp() if at else self._now())

    def _window(self, span: Span, merged: Merged | None = None) -> dict:
        window = {"window_minutes": len(span.minutes), "start": span.start, "end": span.end}
        at = self._reader.as_of(merged) if merged is not None else None
        if at is not None:
            window["as_of"] = datetime.fromtimestamp(at, timezone.utc)
        return window

    async def _backend_or_totals(self, span: Span, backend: str | None) -> tuple[int, Counter, Merged]:
        if backend is None:
            merged = await self._reader.merged(span, _TOTALS)
            return merged.n, merged.codes, merged
        merged = await self._reader.merged(span, _BACKENDS, backend)
        agg = merged.backends.get(backend, BackendAgg())
        return agg.n, agg.codes, merged

    async def overview(self, window: int = 5, at: datetime | None = None, backend: str | None = None) -> Overview:
        span = self._span(window, at)
        total, codes, merged = await self._backend_or_totals(span, backend)
        e4, e5 = _error_counts(codes)
        return Overview(
            **self._window(span, merged), backend=backend, total_requests=total, errors_4xx=e4, errors_5xx=e5,
            error_rate_4xx_pct=pct(e4, total), error_rate_5xx_pct=pct(e5, total),
            requests_per_minute=round(total / len(span.minutes), 3),
        )

    async def status_codes(self, window: int = 5, at: datetime | None = None,
                           backend: str | None = None) -> StatusCodes:
        span = self._span(window, at)
        total, codes, merged = await self._backend_or_totals(span, backend)
        return StatusCodes(**self._window(span, merged), backend=backend, total_requests=total, codes=_most_first(codes))

    async def response_times(self, window: int = 5, at: datetime | None = None,
                             backend: str | None = None) -> ResponseTimes:
        span = self._span(window, at)
        merged = await self._reader.merged(span, _BACKENDS, backend)
        hist: Counter = Counter()
        for name, agg in merged.backends.items():
            if backend is None or name == backend:
                hist.update(agg.hist)
        p50, p95, p99 = map(_ms, quantiles(hist, (0.50, 0.95, 0.99)))
        return ResponseTimes(**self._window(span, merged), backend=backend, count=sum(hist.values()),
                             p50=p50, p95=p95, p99=p99)

    async def backends(self, window: int = 5, at: datetime | None = None) -> Backends:
        span = self._span(window, at)
        merged = await self._reader.merged(span, _BACKENDS)
        if len(merged.backends) > _MANY_BACKENDS:  # tens of milliseconds of work: off the event loop
            stats = await asyncio.to_thread(_all_backend_stats, merged.backends)
        else:
            stats = _all_backend_stats(merged.backends)
        return Backends(**self._window(span, merged), backends=stats)

    async def frontends(self, window: int = 5, at: datetime | None = None) -> Frontends:
        span = self._span(window, at)
        merged = await self._reader.merged(span, _TOTALS)
        stats = [
            FrontendStats(frontend=name, requests=a.n, errors_4xx=a.e4, errors_5xx=a.e5,
                          error_rate_4xx_pct=pct(a.e4, a.n), error_rate_5xx_pct=pct(a.e5, a.n))
            for name, a in merged.frontends.items()
        ]
        stats.sort(key=lambda s: (-s.requests, s.frontend))
        return Frontends(**self._window(span, merged), frontends=stats)

    async def paths(self, window: int = 5, at: datetime | None = None, backend: str | None = None,
                    limit: int = 10) -> Paths:
        span = self._span(window, at)
        merged = await self._reader.merged(span, _PATHS, backend)
        combined: dict[str, list[PathAgg]] = {}
        for (name, route), agg in merged.paths.items():
            if backend is None or name == backend:
                combined.setdefault(route, []).append(agg)
        totals = {route: _path_total(aggs) for route, aggs in combined.items()}

        def errors(route: str) -> int:
            agg = totals[route]
            return agg.classes.get("4xx", 0) + agg.classes.get("5xx", 0)

        def slowness(route: str) -> tuple:
            agg = totals[route]
            return (-(le_quantile(agg.le, 0.95) or 0), -(agg.lat_sum / agg.lat_n), route)

        by_errors = sorted((r for r in totals if errors(r)), key=lambda r: (-errors(r), r))[:limit]
        by_latency = sorted((r for r in totals if totals[r].lat_n), key=slowness)[:limit]
        stats = {route: _path_stats(route, totals[route]) for route in {*by_errors, *by_latency}}
        return Paths(**self._window(span, merged), backend=backend, top_by_errors=[stats[r] for r in by_errors],
                     top_by_latency=[stats[r] for r in by_latency])

    async def termination_states(self, window: int = 5, at: datetime | None = None,
                                 backend: str | None = None) -> TerminationStates:
        span = self._span(window, at)
        merged = await self._reader.merged(span, _BACKENDS, backend)
        overall: Counter = Counter()
        by_backend: dict[str, dict[str, int]] = {}
        total = 0
        for name, agg in merged.backends.items():
            if backend is not None and name != backend:
                continue
            overall.update(agg.terms)
            total += agg.n
            by_backend[name] = _most_first(agg.terms)
        return TerminationStates(**self._window(span, merged), backend=backend, total_requests=total,
                                 states=_most_first(overall), by_backend=by_backend)

    async def rps(self, minutes: int = 30, at: datetime | None = None, backend: str | None = None) -> Rps:
        span = self._span(minutes, at)
        counts = await self._reader.minute_counts(span, backend)
        points = [
            RpsPoint(minute=datetime.fromtimestamp(m * 60, timezone.utc), requests=c)
            for m, c in zip(span.minutes, counts)
        ]
        return Rps(minutes=len(points), end=span.end, backend=backend, points=points)

    async def series(self, minutes: int = 30, at: datetime | None = None, backend: str | None = None,
                     limit: int = 10, route: str | None = None) -> Series:
        span = self._span(minutes, at)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if route is not None:
            return await self._route_series(span, backend, route)
        each = await self._reader.each_minute(span, _BACKENDS, backend)
        ranked, requests = _busiest(each) if backend is None else ([], Counter())
        scopes = [backend] if backend is not None else [None, *ranked[:limit]]
        known = [self._points.of(merged) for merged in each]
        missing = [(i, scope) for scope in scopes for i, points in enumerate(known) if scope not in points]
        starts = [datetime.fromtimestamp(m * 60, timezone.utc) for m in span.minutes]

        def compute() -> list[SeriesPoint]:
            return [_series_point(starts[i], each[i], scope) for i, scope in missing]

        if len(missing) > _MANY_POINTS:  # tens of milliseconds of work: off the event loop
            computed = await asyncio.to_thread(compute)
        else:
            computed = compute()
        for (i, scope), point in zip(missing, computed):
            known[i][scope] = point
        points = {scope: [minute[scope] for minute in known] for scope in scopes}
        if backend is not None:
            return Series(**self._window(span), backend=backend, points=points[backend])
        by_backend = [BackendSeries(backend=name, requests=requests[name], points=points[name])
                      for name in ranked[:limit]]
        return Series(**self._window(span), points=points[None], by_backend=by_backend,
                      more_backends=max(0, len(ranked) - limit))

    async def _route_series(self, span: Span, backend: str | None, route: str) -> Series:
        each = await self._reader.each_minute(span, _PATHS, backend)
        points = []
        for minute, merged in zip(span.minutes, each):
            aggs = [agg for (name, path), agg in merged.paths.items()
                    if path == route and (backend is None or name == backend)]
            total = _path_total(aggs) if aggs else PathAgg()
            p50, p95, p99 = (_finite(le_quantile(total.le, q)) for q in (0.50, 0.95, 0.99))
            e4, e5 = total.classes.get("4xx", 0), total.classes.get("5xx", 0)
            points.append(SeriesPoint(
                minute=datetime.fromtimestamp(minute * 60, timezone.utc), requests=total.n, errors_4xx=e4,
                errors_5xx=e5, error_rate_4xx_pct=pct(e4, total.n), error_rate_5xx_pct=pct(e5, total.n),
                p50_ms=p50, p95_ms=p95, p99_ms=p99))
        return Series(**self._window(span), backend=backend, route=route, points=points)

    async def servers(self, window: int = 5, at: datetime | None = None, backend: str | None = None,
                      limit: int = 20) -> Servers:
        span = self._span(window, at)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        merged = await self._reader.merged(span, _BACKENDS, backend)
        rows = [(name, server, agg) for name, be in merged.backends.items() if backend is None or name == backend
                for server, agg in be.servers.items()]
        rows.sort(key=lambda row: (-row[2].e5, -row[2].n, row[0], row[1]))
        return Servers(**self._window(span, merged), backend=backend,
                       servers=[_server_stats(*row) for row in rows[:limit]],
                       more_servers=max(0, len(rows) - limit))

    async def samples(self, window: int = 5, at: datetime | None = None, backend: str | None = None,
                      limit: int = 10) -> Samples:
        """Failing or slow requests kept whole, over the window's last `SAMPLE_MINUTES` minutes at most."""
        span = self._span(min(window, SAMPLE_MINUTES), at)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if backend is not None:
            names = [backend]
        else:
            merged = await self._reader.merged(span, _TOTALS)
            names = sorted(merged.backend_counts)
        pipe = self._redis.pipeline(transaction=False)
        wanted = [(minute, name) for minute in span.minutes for name in names]
        for minute, name in wanted:
            pipe.zrevrange(keys.samples_key(minute, name), 0, SAMPLES_PER_BACKEND - 1, withscores=True)
        found: list[tuple[float, SampleRequest]] = []
        for (_, name), members in zip(wanted, await pipe.execute() if wanted else []):
            for member, score in members:
                sample = _sample_request(name, member)
                if sample is not None:
                    found.append((score, sample))
        found.sort(key=lambda pair: (-pair[0], pair[1].at))
        return Samples(**self._window(span), backend=backend, requests=[s for _, s in found[:limit]])

    async def saturation(self, window: int = 5, at: datetime | None = None,
                         backend: str | None = None) -> Saturation:
        span = self._span(window, at)
        merged = await self._reader.merged(span, _SATURATION, backend)
        return Saturation(**self._window(span, merged), backend=backend,
                          redis=await self.redis_saturation(), haproxy=_haproxy_saturation(merged, backend))

    async def redis_saturation(self) -> RedisSaturation:
        info = await redis_info(self._redis)
        used = int(info.get("used_memory", 0))
        limit = int(info.get("maxmemory", 0))
        maxclients = await self._maxclients()
        return RedisSaturation(
            used_memory_bytes=used, maxmemory_bytes=limit,
            memory_used_pct=pct(used, limit) if limit else None,
            connected_clients=int(info.get("connected_clients", 0)),
            blocked_clients=int(info.get("blocked_clients", 0)),
            rejected_connections=int(info.get("rejected_connections", 0)),
            maxclients=maxclients,
        )

    async def _maxclients(self) -> int | None:
        try:
            value = (await self._redis.config_get("maxclients")).get("maxclients")
        except Exception:  # CONFIG may be renamed or disabled on managed Redis
            return None
        return int(value) if value is not None else None


async def redis_info(redis: RedisClient) -> dict:
    """INFO, or nothing where the server does not offer it (some managed Redis, fakes). On a Cluster:
    the memory of the master nearest its maxmemory, the first to refuse writes; clients summed."""
    try:
        if not is_cluster(redis):
            return await redis.info()
        masters = list((await redis.info(target_nodes=RedisCluster.PRIMARIES)).values())
    except ResponseError:
        return {}
    return cluster_info(masters)


def cluster_info(masters: list[dict]) -> dict:
    """One INFO for the masters of a Cluster (see `redis_info`)."""
    def fullness(info: dict) -> tuple[float, int]:
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        return (used / limit if limit else 0.0), used

    merged = dict(max(masters, key=fullness, default={}))
    for key in ("connected_clients", "blocked_clients", "rejected_connections"):
        merged[key] = sum(int(info.get(key, 0)) for info in masters)
    return merged


def _all_backend_stats(backends: dict[str, BackendAgg]) -> list[BackendStats]:
    stats = [_backend_stats(name, agg) for name, agg in backends.items()]
    stats.sort(key=lambda s: (-s.requests, s.backend))
    return stats


def _backend_stats(name: str, agg: BackendAgg) -> BackendStats:
    p50, p95, p99 = map(_ms, quantiles(agg.hist, (0.50, 0.95, 0.99)))
    return BackendStats(
        backend=name, requests=agg.n, errors_4xx=agg.e4, errors_5xx=agg.e5,
        error_rate_4xx_pct=pct(agg.e4, agg.n), error_rate_5xx_pct=pct(agg.e5, agg.n),
        p50_ms=p50, p95_ms=p95, p99_ms=p99,
        status_codes=_most_first(agg.codes), termination_states=_most_first(agg.terms),
        queued_requests=agg.queued, mean_queue_ms=_mean(agg.tw_sum, agg.tw_n),
        mean_connect_ms=_mean(agg.tc_sum, agg.tc_n), mean_response_ms=_mean(agg.tr_sum, agg.tr_n),
    )


def _server_stats(backend: str, server: str, agg: ServerAgg) -> ServerStats:
    return ServerStats(
        backend=backend, server=server, requests=agg.n, errors_4xx=agg.e4, errors_5xx=agg.e5,
        error_rate_4xx_pct=pct(agg.e4, agg.n), error_rate_5xx_pct=pct(agg.e5, agg.n),
        mean_ms=_mean(agg.lat_sum, agg.lat_n), status_codes=_most_first(agg.codes),
        termination_states=_most_first(agg.terms),
    )


def _busiest(each: list[Merged]) -> tuple[list[str], Counter]:
    """The minutes' backends, most requests over all of them first, and their requests."""
    requests: Counter = Counter()
    for merged in each:
        for name, agg in merged.backends.items():
            requests[name] += agg.n
    return sorted(requests, key=lambda name: (-requests[name], name)), requests


def _series_point(minute: datetime, merged: Merged, scope: str | None) -> SeriesPoint:
    """One minute of the whole site (scope None) or of the backend named by scope."""
    if scope is None:
        requests, e4, e5, hist = _site_signals(merged)
    else:
        requests, e4, e5, hist = _backend_signals(merged.backends.get(scope))
    p50, p95, p99 = map(_ms, quantiles(hist, (0.50, 0.95, 0.99)))
    return SeriesPoint(minute=minute, requests=requests, errors_4xx=e4, errors_5xx=e5,
                       error_rate_4xx_pct=pct(e4, requests), error_rate_5xx_pct=pct(e5, requests),
                       p50_ms=p50, p95_ms=p95, p99_ms=p99)


def _site_signals(merged: Merged) -> tuple[int, int, int, Counter]:
    """A minute of the whole site: requests and errors from its totals, latency from every backend."""
    e4, e5 = _error_counts(merged.codes)
    hist: Counter = Counter()
    for agg in merged.backends.values():
        hist.update(agg.hist)
    return merged.n, e4, e5, hist


def _backend_signals(agg: BackendAgg | None) -> tuple[int, int, int, Counter]:
    if agg is None:
        return 0, 0, 0, Counter()
    return agg.n, agg.e4, agg.e5, agg.hist


def _sample_request(backend: str, member: str) -> SampleRequest | None:
    """A stored sample, or None for one that is not one (another writer's key)."""
    try:
        raw = json.loads(member)
        return SampleRequest(
            at=datetime.fromtimestamp(float(raw["ts"]), timezone.utc), backend=backend, server=str(raw["server"]),
            route=str(raw["route"]), status=int(raw["status"]), time_active_ms=int(raw["ta"]),
            time_queue_ms=int(raw["tw"]), time_connect_ms=int(raw["tc"]), time_response_ms=int(raw["tr"]),
            termination_state=str(raw["state"]), retries=int(raw.get("retries", 0)))
    except (ValueError, TypeError, KeyError, OverflowError):
        return None


def _finite(value: float | None) -> float | None:
    return None if value is None or value == float("inf") else value


def _path_total(aggs: list[PathAgg]) -> PathAgg:
    if len(aggs) == 1:
        return aggs[0]
    total = PathAgg()
    for agg in aggs:
        total.merge(agg)
    return total


def _path_stats(route: str, first: PathAgg) -> PathStats:
    method, path = route_method(route)
    e4 = first.classes.get("4xx", 0)
    e5 = first.classes.get("5xx", 0)
    p95 = le_quantile(first.le, 0.95)
    return PathStats(
        route=route, method=method, path=path, requests=first.n,
        status_classes=dict(sorted(first.classes.items())), status_codes=_most_first(first.codes),
        errors_4xx=e4, errors_5xx=e5, error_rate_4xx_pct=pct(e4, first.n), error_rate_5xx_pct=pct(e5, first.n),
        mean_ms=_mean(first.lat_sum, first.lat_n),
        p95_ms=None if p95 is None or p95 == float("inf") else p95,
    )


def _haproxy_saturation(merged: Merged, backend: str | None) -> HaproxySaturation:
    requests = queued = retries = tw_sum = tw_n = 0
    for name, agg in merged.backends.items():
        if backend is not None and name != backend:
            continue
        requests += agg.n
        queued += agg.queued
        retries += agg.retries
        tw_sum += agg.tw_sum
        tw_n += agg.tw_n
    maxima = merged.maxima

    def peak(prefix: str) -> int:
        values = [v for m, v in maxima.items() if m.startswith(prefix + ":")
                  and (backend is None or m == f"{prefix}:{backend}")]
        return max(values, default=0)

    peaks = {prefix: peak(prefix) for prefix in BACKEND_MAXIMA}
    return HaproxySaturation(
        requests=requests, queued_requests=queued, queued_pct=pct(queued, requests),
        mean_queue_ms=_mean(tw_sum, tw_n), max_actconn=maxima.get("ac", 0), max_feconn=maxima.get("fc", 0),
        max_beconn=peaks["bc"], max_srv_conn=peaks["sc"], max_srv_queue=peaks["sq"],
        max_backend_queue=peaks["bq"], retries=retries,
    )
