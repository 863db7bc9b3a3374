"""Where the numbers come from: the read-only queries an analysis uses, and one snapshot of them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ingestion import (
    Backends,
    Overview,
    Paths,
    ResponseTimes,
    Rps,
    Saturation,
    StatusCodes,
    TerminationStates,
)

from .request import ResolvedScope

TRAFFIC_HISTORY_MINUTES = 30


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


class SignalsUnavailable(Exception):
    """The metrics could not be read, so there is nothing to analyse."""


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

    @property
    def backend_stats(self):
        """Per-backend rows, narrowed to the analysed backend when there is one."""
        rows = self.backends.backends
        if self.backend is None:
            return rows
        return [row for row in rows if row.backend == self.backend]


async def collect_signals(source: SignalSource, scope: ResolvedScope) -> SignalSnapshot:
    """Read all views concurrently; raises `SignalsUnavailable` if any query fails."""
    window, at, backend = scope.window_minutes, scope.at, scope.backend
    try:
        views = await asyncio.gather(
            source.overview(window=window, at=at, backend=backend),
            source.status_codes(window=window, at=at, backend=backend),
            source.response_times(window=window, at=at, backend=backend),
            source.backends(window=window, at=at),
            source.paths(window=window, at=at, backend=backend),
            source.termination_states(window=window, at=at, backend=backend),
            source.rps(minutes=max(TRAFFIC_HISTORY_MINUTES, 3 * window), at=at, backend=backend),
            source.saturation(window=window, at=at, backend=backend),
        )
    except Exception as exc:  # any store or query error means no signals, whatever its type
        raise SignalsUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return SignalSnapshot(window, at, backend, *views)
