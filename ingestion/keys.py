"""The Redis key layout. Every key a query reads can be named from the window alone.

On a Redis Cluster a script may only touch keys of one hash slot, and the slot of a key is the
hash of its `{tag}` where it has one. A minute's keys share the tag of the minute, so a batch
writes each minute with one script while the minutes spread over the cluster; a day's
cumulative counters share the tag of the day. The other keys are written alone.
"""

from __future__ import annotations

PREFIX = "ic"


def minute_key(minute: int) -> str:
    """Totals of a minute: `n`, `c:<code>`, `f:<frontend>:{n,4,5}`, `b:<backend>` (its count)."""
    return f"{PREFIX}:m:{{{minute}}}"


def backend_key(minute: int, backend: str) -> str:
    """A backend's minute: see `BackendAgg.fields`; its servers' fields start `s:<server>` SEP."""
    return f"{PREFIX}:m:{{{minute}}}:b:{backend}"


def paths_key(minute: int, backend: str) -> str:
    return f"{PREFIX}:m:{{{minute}}}:p:{backend}"


def samples_key(minute: int, backend: str) -> str:
    """A few failing or slow requests of a backend's minute: a sorted set, failures then slowest first."""
    return f"{PREFIX}:m:{{{minute}}}:s:{backend}"


def maxima_key(minute: int) -> str:
    return f"{PREFIX}:m:{{{minute}}}:x"


def generation_key(hour: int) -> str:
    """minute -> write counter, so readers can tell a minute changed without reading it."""
    return f"{PREFIX}:gen:{hour}"


def seen_key(kind: str, hour: int) -> str:
    """Names admitted in an hour (capped set): kind is `be`, `fe`, `p`, `c` (status codes), `t` (states) or `s` (backend SEP server)."""
    return f"{PREFIX}:seen:{kind}:{hour}"


def cumulative_key(kind: str, day: int) -> str:
    """Counters for the Prometheus exposition, one hash per day: `req`, `lat`, `term`, `queue`, `ingest`."""
    return f"{PREFIX}:cum:{{{day}}}:{kind}"


def tagged_metric_name(name: str) -> str | None:
    """The current name of a metric key written before the keys had hash tags, or None if `name` is not one."""
    for family in ("m", "cum"):
        head = f"{PREFIX}:{family}:"
        if name.startswith(head) and not name.startswith(head + "{"):
            number, sep, rest = name[len(head):].partition(":")
            if number.isdigit():
                return f"{head}{{{number}}}{sep}{rest}"
    return None
