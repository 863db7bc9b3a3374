"""When a signal changed: the first bad minute of the run that is still going on, found in per-minute data.

The rule is meant to be read out to an on-call engineer:

- a minute is *bad* when its own figure crosses the signal's threshold (5xx rate, 4xx rate, P95 or
  P99); an error rate also when it is above half its threshold and `RATE_STEP` times the median
  minute of the oldest third of the view, as long as the run crosses the threshold somewhere; for traffic, when its
  requests are `traffic_spike_factor` times above or below the median of the minutes before;
- minutes with fewer requests than the traffic floor say nothing either way and are skipped, and so
  do rates resting on fewer than `MIN_ERRORS` errors and percentiles on too few requests to mean
  anything (a P99 of fifty requests is their slowest one);
- the onset is the first minute of the last run of at least two bad minutes, a single healthy
  minute inside the run not breaking it, provided the run is still going on (or ended within the
  last few minutes);
- a latency run is then taken back over the minutes that were already above every minute of the
  baseline before them (by `STEP_MARGIN`), when there are at least two: a creep starts before it
  crosses a threshold, while one such minute just before a step is as likely noise.

A run that reaches back to the first minute in view has no onset in view: it started earlier,
and there is no baseline to compare with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from statistics import median

from ingestion import Series, SeriesPoint

from .config import Thresholds
from .report import Specialist

BASELINE_MINUTES = 15
_MIN_BASELINE_MINUTES = 3
# How many healthy minutes may follow a run for it to still count as the current one.
_RECENT_MINUTES = 3
_MIN_STEP_MINUTES = 2
_MIN_RUN_MINUTES = 2
_MIN_STEP_BASELINE = 6
STEP_MARGIN = 1.1
RATE_STEP = 3.0
MIN_ERRORS = 3
# Requests a minute needs before its P95 or its P99 says anything.
_P95_REQUESTS = 20
_P99_REQUESTS = 100


@dataclass(frozen=True, slots=True)
class SignalChange:
    """One signal's onset on one scope."""

    signal: Specialist
    metric: str  # the evidence name of the figure that changed, e.g. "error_rate_5xx_pct"
    backend: str | None  # None: the whole site
    minute: datetime  # start of the first bad minute
    rule: str  # how it was found, in words
    route: str | None = None  # set when the change is one route's

    @property
    def label(self) -> str:
        """"5xx on api", "P95 latency on all backends", "4xx on POST /api/checkout"."""
        return f"{_METRIC_NAMES[self.metric]} on {self.route or self.backend or 'all backends'}"


_METRIC_NAMES = {
    "error_rate_5xx_pct": "5xx",
    "error_rate_4xx_pct": "4xx",
    "latency_p95_ms": "P95 latency",
    "requests_per_minute": "traffic",
}


def find_changes(series: Series, t: Thresholds, *, at: datetime, routes: Sequence[Series] = ()) -> list[SignalChange]:
    """Every signal of every scope in `series` (the site, each backend) and `routes` whose onset is in view.

    Earliest first. A route's own minutes are looked at for its error rates only.
    """
    scopes: list[tuple[str | None, Sequence[SeriesPoint]]] = [(series.backend, series.points)]
    scopes += [(row.backend, row.points) for row in series.by_backend]
    changes = [change for backend, points in scopes for change in scope_changes(points, t, at=at, backend=backend)]
    for route in routes:
        changes += [replace(change, route=route.route) for change in
                    scope_changes(route.points, t, at=at, backend=route.backend) if change.signal == "errors"]
    return sorted(changes, key=lambda c: (c.minute, c.backend is None, c.backend or "", c.route or ""))


def scope_changes(points: Sequence[SeriesPoint], t: Thresholds, *, at: datetime,
                  backend: str | None = None) -> list[SignalChange]:
    """The onsets of one scope's minutes (oldest first), one per signal at most."""
    ended = [p for p in points if p.minute < at]
    complete = [p for p in ended if p.minute + timedelta(minutes=1) <= at]
    floor = t.min_requests_per_minute
    found: list[SignalChange] = []

    for metric, errors, limit in (
        ("error_rate_5xx_pct", lambda p: (p.errors_5xx, p.error_rate_5xx_pct), t.error_rate_5xx_pct),
        ("error_rate_4xx_pct", lambda p: (p.errors_4xx, p.error_rate_4xx_pct), t.error_rate_4xx_pct),
    ):
        rates = [errors(p) for p in ended]
        usual = _usual([rate for (_, rate), p in zip(rates, ended) if p.requests >= floor])
        bad: list[bool | None] = []
        for p, (count, rate) in zip(ended, rates):
            above = rate > limit or (rate > limit / 2 and rate > RATE_STEP * usual)
            # Too few requests, or above on a handful of errors: the minute says nothing.
            bad.append(None if p.requests < floor or (above and count < MIN_ERRORS) else above)
        start = _run_start(bad)
        if start is not None and not any(rate > limit for _, rate in rates[start:]):
            start = None  # a step that never crossed the threshold is not this signal's incident
        if start is not None:
            found.append(SignalChange("errors", metric, backend, ended[start].minute,
                                      f"{_METRIC_NAMES[metric]} rate above {limit:g} % from this minute on"))

    p95 = [p.p95_ms if p.requests >= max(floor, _P95_REQUESTS) else None for p in ended]
    p99 = [p.p99_ms if p.requests >= max(floor, _P99_REQUESTS) else None for p in ended]
    slow = [None if a is None else (a > t.latency_p95_ms or (b is not None and b > t.latency_p99_ms))
            for a, b in zip(p95, p99)]
    start = _run_start(slow)
    if start is not None:
        stepped = _step_back(p95, start)
        crossing = f"P95 above {t.latency_p95_ms:g} ms or P99 above {t.latency_p99_ms:g} ms"
        rule = (f"{crossing} from this minute on" if stepped == start else
                f"latency above every minute of its baseline from this minute on, and {crossing} "
                f"from {start - stepped} min later")
        found.append(SignalChange("latency", "latency_p95_ms", backend, ended[stepped].minute, rule))

    counts = [p.requests for p in complete]
    start = _traffic_run_start(counts, t)
    if start is not None:
        found.append(SignalChange("traffic", "requests_per_minute", backend, complete[start].minute,
                                  f"requests {t.traffic_spike_factor:g}\u00d7 above or below the median of the "
                                  "minutes before, from this minute on"))
    return found


def _run_start(bad: Sequence[bool | None]) -> int | None:
    """Index of the first minute of the current run of bad minutes (None: unknown), or None if there is none."""
    known = [i for i, b in enumerate(bad) if b is not None]
    last_bad = next((k for k in range(len(known) - 1, -1, -1) if bad[known[k]]), None)
    if last_bad is None or len(known) - 1 - last_bad > _RECENT_MINUTES:
        return None
    start = last_bad
    while start > 0:
        before = known[start - 1]
        if bad[before]:
            start -= 1
        elif start > 1 and bad[known[start - 2]]:  # one healthy minute inside a run does not end it
            start -= 2
        else:
            break
    if start == 0:
        return None  # bad since the first minute in view: the onset is earlier
    if sum(1 for k in range(start, last_bad + 1) if bad[known[k]]) < _MIN_RUN_MINUTES:
        return None  # one bad minute is a blip, not an onset
    return known[start]


def _usual(values: Sequence[float]) -> float:
    """The median of the oldest third of the minutes in view: before an incident of less than two thirds of it."""
    if not values:
        return 0.0
    return float(median(values[: max(5, len(values) // 3)]))


def _step_back(values: Sequence[float | None], start: int) -> int:
    """Walk back from `start` over the minutes above every minute of the baseline before them."""
    known_before = [v for v in values[max(0, start - BASELINE_MINUTES):start] if v is not None]
    if len(known_before) < 2 * _MIN_STEP_BASELINE:
        return start
    # The oldest half of the minutes before the crossing is the baseline: the later ones may be creeping.
    ceiling = STEP_MARGIN * max(known_before[: max(_MIN_STEP_BASELINE, len(known_before) // 2)])
    index = start
    while index > 1:
        value = values[index - 1]
        if value is None or value <= ceiling:
            break
        index -= 1
    return index if start - index >= _MIN_STEP_MINUTES else start


def _traffic_run_start(counts: Sequence[int], t: Thresholds) -> int | None:
    """The first minute of a current spike or drop against the median of the minutes before it."""
    recent = max(1, t.traffic_recent_minutes)
    history = counts[: len(counts) - recent]
    first = next((i for i, n in enumerate(history) if n > 0), None)
    if first is None or len(history) - first < max(_MIN_BASELINE_MINUTES, recent):
        return None
    base = float(median(history[first:]))
    factor = t.traffic_spike_factor

    def bad(n: int) -> bool:
        spike = n >= t.min_requests_per_minute and n > factor * max(base, 1.0)
        drop = base >= t.min_requests_per_minute and n < base / factor
        return spike or drop

    if not bad(counts[-1]) and not all(bad(n) for n in counts[-recent:]):
        return None
    start = len(counts) - 1
    while start > first and bad(counts[start - 1]):
        start -= 1
    if start <= first:
        return None
    return start


def earliest(changes: Sequence[SignalChange], backend: str | None = None) -> SignalChange | None:
    """The first change, on `backend` when one is named (the site's own figures count for every backend)."""
    relevant = [c for c in changes if backend is None or c.backend in (backend, None)]
    return min(relevant, key=lambda c: c.minute, default=None)
