"""Hand-built views for the agents' tests: a healthy service and its variations, and a static source."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from agents.signals import SignalSnapshot
from ingestion import (
    Backends,
    BackendStats,
    Frontends,
    FrontendStats,
    HaproxySaturation,
    Overview,
    Paths,
    PathStats,
    RedisSaturation,
    ResponseTimes,
    Rps,
    RpsPoint,
    Saturation,
    Series,
    SeriesPoint,
    Servers,
    ServerStats,
    StatusCodes,
    TerminationStates,
)

AT = datetime(2024, 5, 14, 12, 0, tzinfo=timezone.utc)
WINDOW = 10


def _window(window: int = WINDOW, at: datetime = AT) -> dict[str, Any]:
    return {"window_minutes": window, "start": at - timedelta(minutes=window), "end": at}


def backend_row(name: str = "api", requests: int = 6000, **kw: Any) -> BackendStats:
    e4, e5 = kw.pop("errors_4xx", requests // 100), kw.pop("errors_5xx", requests // 1000)
    row = {
        "backend": name, "requests": requests, "errors_4xx": e4, "errors_5xx": e5,
        "error_rate_4xx_pct": round(100 * e4 / requests, 2) if requests else 0.0,
        "error_rate_5xx_pct": round(100 * e5 / requests, 2) if requests else 0.0,
        "p50_ms": 40.0, "p95_ms": 180.0, "p99_ms": 320.0,
        "status_codes": {"200": requests - e4 - e5, "404": e4, "500": e5},
        "termination_states": {"--": requests},
        "queued_requests": 0, "mean_queue_ms": 0.0, "mean_connect_ms": 1.0, "mean_response_ms": 45.0,
    }
    row.update(kw)
    return BackendStats(**row)


def route(route: str = "GET /api/products", requests: int = 3000, **kw: Any) -> PathStats:
    method, path = route.split(" ", 1)
    e4, e5 = kw.pop("errors_4xx", 0), kw.pop("errors_5xx", 0)
    row = {
        "route": route, "method": method, "path": path, "requests": requests,
        "status_classes": {"2xx": requests - e4 - e5, "4xx": e4, "5xx": e5}, "status_codes": {},
        "errors_4xx": e4, "errors_5xx": e5,
        "error_rate_4xx_pct": round(100 * e4 / requests, 2) if requests else 0.0,
        "error_rate_5xx_pct": round(100 * e5 / requests, 2) if requests else 0.0,
        "mean_ms": 50.0, "p95_ms": 250.0,
    }
    row.update(kw)
    return PathStats(**row)


def rps(counts: list[int], *, at: datetime = AT, partial_last: bool = False) -> Rps:
    """Requests per minute ending at `at`; `partial_last` adds the minute `at` is in, which is still filling."""
    start = at - timedelta(minutes=len(counts))
    points = [RpsPoint(minute=start + timedelta(minutes=i), requests=n) for i, n in enumerate(counts)]
    if partial_last:
        points.append(RpsPoint(minute=at, requests=3))
    return Rps(minutes=len(points), end=points[-1].minute + timedelta(minutes=1), points=points)


def saturation(memory_pct: float | None = 40.0, rejected: int = 0, queued: int = 0, requests: int = 6000,
               mean_queue_ms: float | None = 0.0) -> Saturation:
    maxmemory = 0 if memory_pct is None else 100 * 1024 * 1024
    used = int(maxmemory * memory_pct / 100) if memory_pct is not None else 30 * 1024 * 1024
    return Saturation(
        **_window(),
        redis=RedisSaturation(used_memory_bytes=used, maxmemory_bytes=maxmemory, memory_used_pct=memory_pct,
                              connected_clients=5, blocked_clients=0, rejected_connections=rejected, maxclients=10000),
        haproxy=HaproxySaturation(requests=requests, queued_requests=queued,
                                  queued_pct=round(100 * queued / requests, 2) if requests else 0.0,
                                  mean_queue_ms=mean_queue_ms, max_actconn=40, max_feconn=40, max_beconn=30,
                                  max_srv_conn=10, max_srv_queue=0, max_backend_queue=0, retries=0),
    )


@dataclass
class Signals:
    """Everything a source answers; tests change fields, then build a snapshot or a source."""

    backends: list[BackendStats] = field(default_factory=lambda: [backend_row("api", 5000), backend_row("web", 1000)])
    routes: list[PathStats] = field(default_factory=lambda: [route("GET /api/products", 3000),
                                                             route("POST /api/checkout", 800)])
    slow_routes: list[PathStats] | None = None
    p95: float | None = 180.0
    p99: float | None = 320.0
    states: dict[str, int] | None = None
    counts: list[int] = field(default_factory=lambda: [600] * 30)
    sat: Saturation = field(default_factory=saturation)
    servers: list[ServerStats] = field(default_factory=list)
    backend: str | None = None
    window: int = WINDOW
    at: datetime = AT

    def _rows(self) -> list[BackendStats]:
        return [b for b in self.backends if self.backend in (None, b.backend)]

    def overview(self) -> Overview:
        rows = self._rows()
        total = sum(b.requests for b in rows)
        e4, e5 = sum(b.errors_4xx for b in rows), sum(b.errors_5xx for b in rows)
        return Overview(**_window(self.window), backend=self.backend, total_requests=total, errors_4xx=e4,
                        errors_5xx=e5, error_rate_4xx_pct=round(100 * e4 / total, 2) if total else 0.0,
                        error_rate_5xx_pct=round(100 * e5 / total, 2) if total else 0.0,
                        requests_per_minute=total / self.window)

    def status_codes(self) -> StatusCodes:
        codes: dict[str, int] = {}
        for b in self._rows():
            for code, n in b.status_codes.items():
                codes[code] = codes.get(code, 0) + n
        return StatusCodes(**_window(self.window), backend=self.backend,
                           total_requests=sum(b.requests for b in self._rows()),
                           codes=dict(sorted(codes.items(), key=lambda kv: -kv[1])))

    def response_times(self) -> ResponseTimes:
        count = sum(b.requests for b in self._rows())
        return ResponseTimes(**_window(self.window), backend=self.backend, count=count, p50=40.0 if count else None,
                             p95=self.p95 if count else None, p99=self.p99 if count else None)

    def termination_states(self) -> TerminationStates:
        by_backend = {b.backend: b.termination_states for b in self._rows()}
        states: dict[str, int] = dict(self.states or {})
        if self.states is None:
            for per in by_backend.values():
                for s, n in per.items():
                    states[s] = states.get(s, 0) + n
        return TerminationStates(**_window(self.window), backend=self.backend,
                                 total_requests=sum(b.requests for b in self._rows()), states=states,
                                 by_backend=by_backend)

    def paths(self) -> Paths:
        by_errors = sorted(self.routes, key=lambda p: -(p.errors_4xx + p.errors_5xx))
        slow = self.slow_routes if self.slow_routes is not None else sorted(self.routes, key=lambda p: -(p.p95_ms or 0))
        return Paths(**_window(self.window), backend=self.backend, top_by_errors=by_errors, top_by_latency=slow)

    def server_rows(self, limit: int = 20) -> Servers:
        rows = [r for r in self.servers if self.backend in (None, r.backend)]
        return Servers(**_window(self.window), backend=self.backend, servers=rows[:limit],
                       more_servers=max(0, len(rows) - limit))

    def series(self, minutes: int = 30) -> Series:
        """The same figures every minute: a steady state, in which no onset is in view."""
        ov, rt = self.overview(), self.response_times()
        per_minute = self.counts[-minutes:]
        points = [SeriesPoint(minute=self.at - timedelta(minutes=len(per_minute) - i), requests=n,
                              errors_4xx=round(n * ov.error_rate_4xx_pct / 100),
                              errors_5xx=round(n * ov.error_rate_5xx_pct / 100),
                              error_rate_4xx_pct=ov.error_rate_4xx_pct, error_rate_5xx_pct=ov.error_rate_5xx_pct,
                              p50_ms=rt.p50, p95_ms=rt.p95, p99_ms=rt.p99)
                  for i, n in enumerate(per_minute)]
        return Series(window_minutes=len(points), start=self.at - timedelta(minutes=len(points)), end=self.at,
                      backend=self.backend, points=points)

    def snapshot(self) -> SignalSnapshot:
        return SignalSnapshot(
            window_minutes=self.window, at=self.at, backend=self.backend, overview=self.overview(),
            status_codes=self.status_codes(), response_times=self.response_times(),
            backends=Backends(**_window(self.window), backends=self.backends), paths=self.paths(),
            termination_states=self.termination_states(), rps=rps(self.counts), saturation=self.sat,
            servers=self.server_rows(),
        )

    def source(self) -> StaticSource:
        return StaticSource(self)


class StaticSource:
    """A `SignalSource` over fixed views; records each query so tests can see what was asked."""

    def __init__(self, signals: Signals, *, fail: bool = False) -> None:
        self.signals = signals
        self.fail = fail
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _seen(self, name: str, **kw: Any) -> Signals:
        self.calls.append((name, kw))
        if self.fail:
            raise ConnectionError("redis down")
        backend = kw.get("backend")
        return replace(self.signals, backend=backend) if backend else self.signals

    async def overview(self, window=WINDOW, at=None, backend=None):
        return self._seen("overview", window=window, at=at, backend=backend).overview()

    async def status_codes(self, window=WINDOW, at=None, backend=None):
        return self._seen("status_codes", window=window, at=at, backend=backend).status_codes()

    async def response_times(self, window=WINDOW, at=None, backend=None):
        return self._seen("response_times", window=window, at=at, backend=backend).response_times()

    async def backends(self, window=WINDOW, at=None):
        return Backends(**_window(window), backends=self._seen("backends", window=window, at=at).backends)

    async def frontends(self, window=WINDOW, at=None):
        s = self._seen("frontends", window=window, at=at)
        ov = s.overview()
        return Frontends(**_window(window), frontends=[FrontendStats(
            frontend="https-in", requests=ov.total_requests, errors_4xx=ov.errors_4xx, errors_5xx=ov.errors_5xx,
            error_rate_4xx_pct=ov.error_rate_4xx_pct, error_rate_5xx_pct=ov.error_rate_5xx_pct)])

    async def paths(self, window=WINDOW, at=None, backend=None, limit=10):
        return self._seen("paths", window=window, at=at, backend=backend, limit=limit).paths()

    async def termination_states(self, window=WINDOW, at=None, backend=None):
        return self._seen("termination_states", window=window, at=at, backend=backend).termination_states()

    async def rps(self, minutes=30, at=None, backend=None):
        return rps(self._seen("rps", minutes=minutes, at=at, backend=backend).counts[-minutes:])

    async def saturation(self, window=WINDOW, at=None, backend=None):
        return self._seen("saturation", window=window, at=at, backend=backend).sat

    async def series(self, minutes=30, at=None, backend=None, limit=10, route=None):
        return self._seen("series", minutes=minutes, at=at, backend=backend, limit=limit,
                          route=route).series(minutes)

    async def servers(self, window=WINDOW, at=None, backend=None, limit=20):
        return self._seen("servers", window=window, at=at, backend=backend, limit=limit).server_rows(limit)


def deploy_regression() -> Signals:
    """Backend api times out after a deploy: P99 1.8 s, 12 % 5xx, mostly 504 with sH."""
    api = backend_row(
        "api", 5000, errors_5xx=600, errors_4xx=50, p95_ms=1500.0, p99_ms=1800.0,
        status_codes={"200": 4350, "404": 50, "504": 520, "503": 80},
        termination_states={"--": 4400, "sH": 520, "SC": 80}, mean_response_ms=900.0, mean_queue_ms=2.0,
    )
    return Signals(
        backends=[api, backend_row("web", 1000)],
        routes=[route("GET /api/products", 3000, errors_5xx=450, p95_ms=2000.0, mean_ms=950.0),
                route("POST /api/checkout", 800, errors_5xx=150, p95_ms=2000.0, mean_ms=900.0)],
        p95=1400.0, p99=1800.0,
    )


def auth_regression() -> Signals:
    """POST /api/checkout answers 401 to most callers."""
    api = backend_row("api", 5000, errors_4xx=520, errors_5xx=5,
                      status_codes={"200": 4475, "401": 480, "404": 40, "500": 5})
    return Signals(
        backends=[api, backend_row("web", 1000, errors_4xx=5, status_codes={"200": 994, "404": 5, "500": 1})],
        routes=[route("POST /api/checkout", 800, errors_4xx=480, status_codes={"401": 480}),
                route("GET /api/products", 3000, errors_4xx=40, status_codes={"404": 40})],
    )
