"""The windows and holds of the rules, and the Prometheus durations they are written in.

Timing (see docs/alerting.md): rates and quantiles use a 1-minute window and alerts
hold for 1 minute, which at a 15 s scrape and evaluation interval fires within
1m30s of a clear step change and never on one bad 15 s interval, whose share of a
1-minute window lasts at most four evaluations (45 s), short of the hold. A stack that
scrapes every second (the demo, the end-to-end tests) renders the same rules with
shorter ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RuleTiming:
    """Windows and holds of the rules, as Prometheus durations (whole seconds).

    The defaults are the production timing of docs/alerting.md, for a 15 s scrape and
    evaluation interval. Other values change the expressions, the holds and the words of
    the annotations, never the names: the recording rules stay `...:rate1m` and
    `...:rate1h_offset5m`, so alerts and dashboards read them the same way.
    """

    window: str = "1m"  # rates, ratios and quantiles
    hold: str = "1m"  # `for:` of every alert that has one
    silence: str = "4m"  # BackendTrafficDropped: no request in this long, then the hold
    rejections: str = "5m"  # RedisRejectingConnections: any rejection in this long
    baseline: str = "1h"  # the traffic baseline...
    baseline_offset: str = "5m"  # ...ending this long ago


PRODUCTION_TIMING = RuleTiming()

_DURATION_PART = re.compile(r"(\d+)([smhdwy])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def seconds(duration: str | int) -> int:
    """A Prometheus duration in whole seconds ("1m30s" -> 90); an int is taken as seconds."""
    if isinstance(duration, int):
        return duration
    parts = _DURATION_PART.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration in whole seconds: {duration!r}")
    total = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if total <= 0:
        raise ValueError(f"a window or hold must be longer than zero: {duration!r}")
    return total


def span(duration: str | int, *, article: bool = False) -> str:
    """A duration in words: "minute" (or "a minute"), "5 minutes", "hour", "90 seconds"."""
    total = seconds(duration)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if total % size == 0:
            count = total // size
            if count > 1:
                return f"{count} {unit}s"
            return f"{'an' if unit == 'hour' else 'a'} {unit}" if article else unit
    raise AssertionError("unreachable: every whole number of seconds is a number of seconds")
