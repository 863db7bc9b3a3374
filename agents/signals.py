"""Where the numbers come from: the read-only queries an analysis uses, and one snapshot of them."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ingestion import (
    Backends,
    BackendStats,
    Overview,
    Paths,
    ResponseTimes,
    Rps,
    Saturation,
    Series,
    Servers,
    StatusCodes,
    TerminationStates,
)

from .config import Thresholds
from .onset import BASELINE_MINUTES, SignalChange, earliest, find_changes
from .request import ResolvedScope

TRAFFIC_HISTORY_MINUTES = 30
# How far back per-minute data is read to find an onset; an onset further back is not in view.
SERIES_MINUTES = 60
SERIES_BACKENDS = 20
SERVER_ROWS = 50
# An onset in the last minutes still gets a window of a few: a percentile of one minute is noise.
MIN_SINCE_MINUTES = 3
ROUTE_SERIES = 3  # routes above an error threshold whose own minutes are searched for an onset
_MIN_BASELINE_MINUTES = 3


class SignalSource(Protocol):
    """The queries of `ingestion.MetricsQueries` that a snapshot reads; all of them are read-only.

    The agents' tools call any other view of `ingestion.METRIC_VIEWS` by its name on the same source.
    """

    async def overview(self, window: int = ..., at: datetime | None = ..., backend: str | None = ...) -> Overview: ...

    async def status_codes(
        self, window: int = ..., at: datetime | None = ..., backend: str | None = ...
    ) -> StatusCodes: ...

    async def response_times(
        self, window: int = ..., at: datetime | None = ..., backend: str | None = ...
    ) -> ResponseTimes: ...

    async def backends(self, window: int = ..., at: datetime | None = ...) -> Backends: ...

    async def paths(
        self, window: int = ..., at: datetime | None = ..., backend: str | None = ..., limit: int = ...
    ) -> Paths: ...

    async def termination_states(
        self, window: int = ..., at: datetime | None = ..., backend: str | None = ...
    ) -> TerminationStates: ...

    async def rps(self, minutes: int = ..., at: datetime | None = ..., backend: str | None = ...) -> Rps: ...

    async def saturation(
        self, window: int = ..., at: datetime | None = ..., backend: str | None = ...
    ) -> Saturation: ...

    async def series(
        self, minutes: int = ..., at: datetime | None = ..., backend: str | None = ..., limit: int = ...,
        route: str | None = ...,
    ) -> Series: ...

    async def servers(
        self, window: int = ..., at: datetime | None = ..., backend: str | None = ..., limit: int = ...
    ) -> Servers: ...


class SignalsUnavailable(Exception):
    """The metrics could not be read, so there is nothing to analyse."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """The signals before the onset: what normal looked like."""

    end: datetime
    window_minutes: int
    overview: Overview
    response_times: ResponseTimes
    backends: Backends
    routes: dict[str, tuple[float, float]] = field(default_factory=dict)  # route -> (4xx %, 5xx %)

    @property
    def start(self) -> datetime:
        return self.end - timedelta(minutes=self.window_minutes)

    def backend_row(self, name: str) -> BackendStats | None:
        return next((row for row in self.backends.backends if row.backend == name), None)


@dataclass(frozen=True, slots=True)
class SignalSnapshot:
    """Every view the evaluators read, taken once for one window and scope."""

    window_minutes: int
    at: datetime  # the end of the window; the minute it falls in may still be filling
    backend: str | None
    overview: Overview
    status_codes: StatusCodes
    response_times: ResponseTimes
    backends: Backends
    paths: Paths
    termination_states: TerminationStates
    rps: Rps
    saturation: Saturation
    servers: Servers | None = None
    series: Series | None = None  # per minute, the site's and each backend's, over `SERIES_MINUTES`
    onset: SignalChange | None = None  # the first change in view; the window starts at it
    changes: tuple[SignalChange, ...] = field(default=())
    baseline: Baseline | None = None

    @property
    def backend_stats(self):
        """Per-backend rows, narrowed to the analysed backend when there is one."""
        rows = self.backends.backends
        if self.backend is None:
            return rows
        return [row for row in rows if row.backend == self.backend]


@dataclass(frozen=True, slots=True)
class Onset:
    """Where the analysed window starts and what it is compared with."""

    scope: ResolvedScope  # the window since the onset (or as asked, without one)
    change: SignalChange | None
    changes: tuple[SignalChange, ...]
    baseline_end: datetime | None
    baseline_minutes: int
    series: Series | None = None
    route_series: tuple[Series, ...] = ()


async def locate_onset(source: SignalSource, scope: ResolvedScope, t: Thresholds) -> Onset:
    """Find the onset in the per-minute data and narrow the window to the minutes since it.

    With `scope.baseline_before` (the look after a resolution) nothing is searched: the window is
    the one asked for, compared with the minutes before that moment.
    """
    if scope.baseline_before is not None:
        try:
            before = await source.series(minutes=BASELINE_MINUTES, at=scope.baseline_before, backend=scope.backend,
                                         limit=1)
        except Exception as exc:  # any store or query error means no signals, whatever its type
            raise SignalsUnavailable(f"{type(exc).__name__}: {exc}") from exc
        minutes = _minutes_with_traffic(before, scope.baseline_before)
        return Onset(scope, None, (), scope.baseline_before if minutes else None, minutes)
    try:
        series, paths = await asyncio.gather(
            source.series(minutes=SERIES_MINUTES, at=scope.at, backend=scope.backend, limit=SERIES_BACKENDS),
            source.paths(window=scope.window_minutes, at=scope.at, backend=scope.backend, limit=10),
        )
        routes = await asyncio.gather(*(
            source.series(minutes=SERIES_MINUTES, at=scope.at, backend=scope.backend, limit=1, route=route)
            for route in failing_routes(paths, t, scope.window_minutes)[:ROUTE_SERIES]))
    except Exception as exc:  # any store or query error means no signals, whatever its type
        raise SignalsUnavailable(f"{type(exc).__name__}: {exc}") from exc
    changes = tuple(find_changes(series, t, at=scope.at, routes=routes))
    first = earliest(changes, scope.backend)
    if first is None:
        return Onset(scope, None, changes, None, 0, series, tuple(routes))
    since = max(MIN_SINCE_MINUTES, math.ceil((scope.at - first.minute).total_seconds() / 60))
    baseline = min(BASELINE_MINUTES, _minutes_with_traffic(series, first.minute))
    narrowed = scope.model_copy(update={"window_minutes": since})
    return Onset(narrowed, first, changes, first.minute if baseline >= _MIN_BASELINE_MINUTES else None, baseline,
                 series, tuple(routes))


def _minutes_with_traffic(series: Series, end: datetime) -> int:
    """Minutes from the first one with requests to `end`: a baseline that starts before the data would
    count minutes nobody measured as minutes without traffic."""
    first = next((p.minute for p in series.points if p.requests and p.minute < end), None)
    return 0 if first is None else int((end - first).total_seconds() // 60)


def failing_routes(paths: Paths, t: Thresholds, window: int) -> list[str]:
    """Routes above an error-rate threshold over the window, with enough requests to mean it; most errors first."""
    floor = t.min_requests_per_minute * window
    return [p.route for p in paths.top_by_errors if p.requests >= floor
            and (p.error_rate_4xx_pct > t.error_rate_4xx_pct or p.error_rate_5xx_pct > t.error_rate_5xx_pct)]


async def collect_signals(source: SignalSource, scope: ResolvedScope, onset: Onset | None = None) -> SignalSnapshot:
    """Read all views concurrently; raises `SignalsUnavailable` if any query fails."""
    window, at, backend = scope.window_minutes, scope.at, scope.backend
    reads = [
        source.overview(window=window, at=at, backend=backend),
        source.status_codes(window=window, at=at, backend=backend),
        source.response_times(window=window, at=at, backend=backend),
        source.backends(window=window, at=at),
        source.paths(window=window, at=at, backend=backend),
        source.termination_states(window=window, at=at, backend=backend),
        source.rps(minutes=max(TRAFFIC_HISTORY_MINUTES, 3 * window), at=at, backend=backend),
        source.saturation(window=window, at=at, backend=backend),
        source.servers(window=window, at=at, backend=backend, limit=SERVER_ROWS),
    ]
    if onset is not None and onset.baseline_end is not None:
        reads.append(_read_baseline(source, onset, backend))
    try:
        results = await asyncio.gather(*reads)
    except Exception as exc:  # any store or query error means no signals, whatever its type
        raise SignalsUnavailable(f"{type(exc).__name__}: {exc}") from exc
    views, servers = results[:8], results[8]
    before = results[9] if len(results) > 9 else None
    return SignalSnapshot(window, at, backend, *views, servers=servers, series=onset.series if onset else None,
                          onset=onset.change if onset else None,
                          changes=onset.changes if onset else (), baseline=before)


async def _read_baseline(source: SignalSource, onset: Onset, backend: str | None) -> Baseline:
    end, window = onset.baseline_end, onset.baseline_minutes
    assert end is not None
    # A view's window ends with the minute before `at` when `at` is on a minute's boundary,
    # so a baseline ending at the onset minute leaves that minute out.
    overview, response_times, backends = await asyncio.gather(
        source.overview(window=window, at=end, backend=backend),
        source.response_times(window=window, at=end, backend=backend),
        source.backends(window=window, at=end),
    )
    start = end - timedelta(minutes=window)
    routes = {}
    for row in onset.route_series:
        before = [p for p in row.points if start <= p.minute < end]
        requests = sum(p.requests for p in before)
        if row.route and requests:
            routes[row.route] = (round(100.0 * sum(p.errors_4xx for p in before) / requests, 3),
                                 round(100.0 * sum(p.errors_5xx for p in before) / requests, 3))
    return Baseline(end, window, overview, response_times, backends, routes)
