"""Onset detection on hand-built minutes: the first bad minute of the current run, by a rule one can read out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agents.config import Thresholds
from agents.onset import earliest, find_changes, scope_changes
from ingestion import BackendSeries, Series, SeriesPoint

T = Thresholds()
START = datetime(2024, 5, 14, 11, 0, tzinfo=timezone.utc)


def minute(i: int) -> datetime:
    return START + timedelta(minutes=i)


def point(i: int, requests: int = 300, e5: int = 1, e4: int = 3, p95: float | None = 150.0,
          p99: float | None = 300.0) -> SeriesPoint:
    return SeriesPoint(
        minute=minute(i), requests=requests, errors_4xx=e4, errors_5xx=e5,
        error_rate_4xx_pct=round(100 * e4 / requests, 3) if requests else 0.0,
        error_rate_5xx_pct=round(100 * e5 / requests, 3) if requests else 0.0,
        p50_ms=40.0 if requests else None, p95_ms=p95 if requests else None, p99_ms=p99 if requests else None,
    )


def healthy(n: int, **kw) -> list[SeriesPoint]:
    return [point(i, **kw) for i in range(n)]


def at_end(points: list[SeriesPoint], seconds: int = 20) -> datetime:
    """A moment some seconds into the minute after the last point: that minute is complete."""
    return points[-1].minute + timedelta(minutes=1, seconds=seconds)


def by_signal(changes):
    return {(c.signal, c.metric): c for c in changes}


def test_a_5xx_step_starts_at_its_first_bad_minute():
    points = healthy(30) + [point(30 + i, e5=35) for i in range(6)]

    changes = by_signal(scope_changes(points, T, at=at_end(points)))

    change = changes[("errors", "error_rate_5xx_pct")]
    assert change.minute == minute(30)
    assert "above 5 %" in change.rule
    assert ("latency", "latency_p95_ms") not in changes


def test_a_healthy_run_has_no_onset():
    points = healthy(40)

    assert scope_changes(points, T, at=at_end(points)) == []


def test_one_healthy_minute_inside_the_run_does_not_move_the_onset():
    points = healthy(20) + [point(20, e5=40), point(21, e5=40), point(22, e5=2), point(23, e5=40), point(24, e5=40)]

    change = by_signal(scope_changes(points, T, at=at_end(points)))[("errors", "error_rate_5xx_pct")]

    assert change.minute == minute(20)


def test_two_healthy_minutes_end_a_run_and_the_later_one_is_the_current_one():
    points = (healthy(20) + [point(20, e5=40), point(21, e5=40), point(22), point(23)]
              + [point(24, e5=40), point(25, e5=40)])

    change = by_signal(scope_changes(points, T, at=at_end(points)))[("errors", "error_rate_5xx_pct")]

    assert change.minute == minute(24)


def test_a_run_that_ended_long_ago_is_not_the_current_incident():
    points = healthy(10) + [point(10 + i, e5=40) for i in range(5)] + [point(15 + i) for i in range(10)]

    assert scope_changes(points, T, at=at_end(points)) == []


def test_a_signal_bad_since_the_first_minute_in_view_has_no_onset_in_view():
    points = [point(i, e5=40) for i in range(30)]

    assert scope_changes(points, T, at=at_end(points)) == []


def test_minutes_below_the_traffic_floor_say_nothing():
    points = healthy(20, requests=5) + [point(20 + i, requests=5, e5=5) for i in range(5)]

    assert scope_changes(points, T, at=at_end(points)) == []


def test_a_latency_creep_starts_where_it_left_its_baseline_not_where_it_crossed_the_threshold():
    creep = [150.0 * 1.25 ** k for k in range(12)]  # 150, 188, 234, ... 1.7 s
    points = healthy(25) + [point(25 + k, p95=v, p99=2 * v) for k, v in enumerate(creep)]
    crossing = 25 + next(k for k, v in enumerate(creep) if v > T.latency_p95_ms or 2 * v > T.latency_p99_ms)

    change = by_signal(scope_changes(points, T, at=at_end(points)))[("latency", "latency_p95_ms")]

    assert change.minute < minute(crossing)
    assert change.minute >= minute(25)
    assert "baseline" in change.rule


@pytest.mark.parametrize(("factor", "found"), [(5.0, True), (0.1, True), (1.5, False)])
def test_traffic_spikes_and_drops_against_the_median_before(factor, found):
    points = healthy(30) + [point(30 + i, requests=int(300 * factor), e5=0, e4=0) for i in range(5)]

    changes = by_signal(scope_changes(points, T, at=at_end(points)))

    assert (("traffic", "requests_per_minute") in changes) is found
    if found:
        assert changes[("traffic", "requests_per_minute")].minute == minute(30)


def test_the_partial_current_minute_counts_for_rates_once_it_has_enough_requests():
    points = healthy(30) + [point(30, e5=40), point(31, requests=120, e5=20)]
    now = minute(31) + timedelta(seconds=25)

    change = by_signal(scope_changes(points, T, at=now))[("errors", "error_rate_5xx_pct")]

    assert change.minute == minute(30)


def test_one_bad_minute_is_a_blip_not_an_onset():
    points = healthy(30) + [point(30), point(31, e5=40)]

    assert scope_changes(points, T, at=at_end(points)) == []


def test_rates_on_a_handful_of_errors_and_percentiles_on_a_handful_of_requests_say_nothing():
    few_errors = healthy(30, requests=30, e5=0) + [point(30 + i, requests=30, e5=2) for i in range(4)]  # 6.7 %
    slowest_of_fifty = healthy(30, requests=50) + [point(30 + i, requests=50, p99=1500.0) for i in range(4)]

    assert scope_changes(few_errors, T, at=at_end(few_errors)) == []
    assert scope_changes(slowest_of_fifty, T, at=at_end(slowest_of_fifty)) == []


def test_every_backend_is_looked_at_and_the_earliest_change_of_a_backend_is_its_onset():
    site = healthy(40)  # a failing small backend does not move the site's total
    api = healthy(30, requests=60) + [point(30 + i, requests=60, e5=12) for i in range(10)]
    web = healthy(34, requests=100) + [point(34 + i, requests=100, p95=900.0, p99=1500.0) for i in range(6)]
    series = Series(window_minutes=40, start=minute(0), end=minute(40), points=site,
                    by_backend=[BackendSeries(backend="web", requests=4000, points=web),
                                BackendSeries(backend="api", requests=2400, points=api)])

    changes = find_changes(series, T, at=at_end(site))

    assert [(c.backend, c.signal, c.minute) for c in changes] == [
        ("api", "errors", minute(30)), ("web", "latency", minute(34))]
    assert earliest(changes).backend == "api"
    assert earliest(changes, "web").minute == minute(34)
    assert changes[0].label == "5xx on api"
