"""The metric views in one table: `GET /metrics/*`, its OpenAPI paths and the agents' read tools come from it.

A view is a method of `MetricsQueries`, the model it answers with and the parameters it takes.
Each reader gives the parameters its own names and bounds; the table only says which ones apply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from .views import (
    Backends,
    Frontends,
    Overview,
    Paths,
    ResponseTimes,
    Rps,
    Samples,
    Saturation,
    Series,
    Servers,
    StatusCodes,
    TerminationStates,
)

# window: minutes ending at `at`; at: the end of the window (default now); backend: that backend's
# requests only; limit: rows per list; minutes: how many one-minute points; route: one route
# ("POST /api/checkout", as the paths view names it).
Parameter = Literal["window", "at", "backend", "limit", "minutes", "route"]


@dataclass(frozen=True, slots=True)
class MetricView:
    """One view: the `MetricsQueries` method called `name`, the model it answers with, what it takes."""

    name: str
    model: type[BaseModel]
    parameters: tuple[Parameter, ...]
    summary: str
    agent_tool: bool = True  # offered to the agents' specialists as a read-only tool

    @property
    def path(self) -> str:
        return "/metrics/" + self.name.replace("_", "-")

    def read(self, queries: Any, values: Mapping[str, Any]) -> Awaitable[BaseModel]:
        """Run the view on `MetricsQueries`, or anything with its methods, with its parameters from `values`."""
        return getattr(queries, self.name)(**{name: values[name] for name in self.parameters if name in values})


_WINDOW: tuple[Parameter, ...] = ("window", "at", "backend")

METRIC_VIEWS: tuple[MetricView, ...] = (
    MetricView("overview", Overview, _WINDOW, "Request count, 4xx/5xx counts and rates, requests per minute"),
    MetricView("status_codes", StatusCodes, _WINDOW, "Requests by HTTP status code, most frequent first"),
    MetricView("response_times", ResponseTimes, _WINDOW,
               "P50/P95/P99 response time (Ta) in milliseconds, and the request count"),
    MetricView("backends", Backends, ("window", "at"),
               "Per backend: requests, error rates, percentiles, status codes, termination states, queued "
               "requests and mean queue (Tw), connect (Tc) and response (Tr) times"),
    MetricView("frontends", Frontends, ("window", "at"), "Per frontend: requests and error rates"),
    MetricView("paths", Paths, (*_WINDOW, "limit"),
               "Routes (method + normalised path) with the most errors, and the slowest"),
    MetricView("termination_states", TerminationStates, _WINDOW,
               "HAProxy termination states (first two characters), overall and per backend"),
    MetricView("rps", Rps, ("minutes", "at", "backend"), "Requests per minute, oldest first, zero-filled"),
    MetricView("series", Series, ("minutes", "at", "backend", "limit", "route"),
               "Per minute, oldest first: requests, 4xx/5xx counts and rates, P50/P95/P99 (ms); without a "
               "backend also each backend's own minutes, busiest first; with a route, that route's minutes"),
    MetricView("servers", Servers, (*_WINDOW, "limit"),
               "Per server of each backend: requests, 4xx/5xx counts and rates, mean response time, error "
               "status codes and abnormal termination states; most 5xx first"),
    MetricView("samples", Samples, (*_WINDOW, "limit"),
               "A few requests kept whole per minute and backend, 5xx first, then the slowest (Ta of 1 s or "
               "more): server, route, status, timers (Tw, Tc, Tr, Ta) and termination state; the last hour at most"),
    MetricView("saturation", Saturation, _WINDOW,
               "Redis memory and connections; HAProxy queueing, connection peaks and retries"),
)
