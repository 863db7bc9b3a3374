"""The Redis key layout. Every key a query reads can be named from the window alone."""

from __future__ import annotations

PREFIX = "ic"


def minute_key(minute: int) -> str:
    """Totals of a minute: `n`, `c:<code>`, `f:<frontend>:{n,4,5}`, `b:<backend>` (its count)."""
    return f"{PREFIX}:m:{minute}"


def backend_key(minute: int, backend: str) -> str:
    """A backend's minute: see `BackendAgg.fields`; its servers' fields start `s:<server>` SEP."""
    return f"{PREFIX}:m:{minute}:b:{backend}"


def paths_key(minute: int, backend: str) -> str:
    return f"{PREFIX}:m:{minute}:p:{backend}"


def samples_key(minute: int, backend: str) -> str:
    """A few failing or slow requests of a backend's minute: a sorted set, failures then slowest first."""
    return f"{PREFIX}:m:{minute}:s:{backend}"


def maxima_key(minute: int) -> str:
    return f"{PREFIX}:m:{minute}:x"


def generation_key(hour: int) -> str:
    """minute -> write counter, so readers can tell a minute changed without reading it."""
    return f"{PREFIX}:gen:{hour}"


def seen_key(kind: str, hour: int) -> str:
    """Names admitted in an hour (capped set): kind is `be`, `fe`, `p`, `c` (status codes), `t` (states) or `s` (backend SEP server)."""
    return f"{PREFIX}:seen:{kind}:{hour}"


def cumulative_key(kind: str, day: int) -> str:
    """Counters for the Prometheus exposition, one hash per day: `req`, `lat`, `term`, `queue`, `ingest`."""
    return f"{PREFIX}:cum:{day}:{kind}"
