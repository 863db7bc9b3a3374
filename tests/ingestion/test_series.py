"""`GET /metrics/series` against a real redis-server: the minutes as written, one point each."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timezone

import pytest

import ingestion.queries
from ingestion import BucketReader, MetricsQueries

from tests.ingestion.conftest import NOW, clock, write
from tests.support.records import record

pytestmark = pytest.mark.integration

LAST = int(NOW // 60)  # the minute still filling


def minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, timezone.utc)


def at(minute: int, second: float = 10) -> float:
    return minute * 60 + second


async def test_series_has_one_point_per_minute_zero_filled_with_the_filling_minute_last(store, queries):
    await write(store, [record(at(LAST - 3), ta=100)] * 8 + [record(at(LAST - 3), status=503, ta=3000)] * 2
                + [record(at(LAST - 1), backend="web", server="web-1", status=404, ta=10)] * 4
                + [record(NOW - 5, ta=50)] * 3)
    seen = await queries.series(minutes=4)
    assert [p.minute for p in seen.points] == [minute_start(m) for m in range(LAST - 3, LAST + 1)]
    assert (seen.window_minutes, seen.start, seen.end) == (4, minute_start(LAST - 3), minute_start(LAST + 1))
    first, empty, web, filling = seen.points
    assert (first.requests, first.errors_5xx, first.error_rate_5xx_pct) == (10, 2, 20.0)
    assert math.isclose(first.p50_ms, 100, rel_tol=0.02) and math.isclose(first.p95_ms, 3000, rel_tol=0.02)
    assert (empty.requests, empty.errors_4xx, empty.p50_ms, empty.p95_ms, empty.p99_ms) == (0, 0, None, None, None)
    assert (web.requests, web.errors_4xx, web.error_rate_4xx_pct) == (4, 4, 100.0)
    assert (filling.requests, filling.errors_5xx) == (3, 0) and math.isclose(filling.p99_ms, 50, rel_tol=0.02)


async def test_series_of_one_backend_is_that_backends_minutes(store, queries):
    await write(store, [record(at(LAST - 2), backend="api", ta=100)] * 5
                + [record(at(LAST - 2), backend="web", server="web-1", status=500)] * 7
                + [record(at(LAST - 1), backend="web", server="web-1")] * 2)
    seen = await queries.series(minutes=3, backend="web")
    assert seen.backend == "web" and seen.by_backend == []
    assert [(p.requests, p.errors_5xx) for p in seen.points] == [(7, 7), (2, 0), (0, 0)]


@pytest.mark.parametrize("limit, want, more", [
    (10, ["web", "api", "auth"], 0),
    (2, ["web", "api"], 1),
    (1, ["web"], 2),
])
async def test_series_by_backend_is_busiest_first_over_the_window(store, queries, limit, want, more):
    # api is busiest in the last minute, web over the whole window.
    await write(store, [record(at(LAST - 2), backend="web", server="web-1")] * 9
                + [record(at(LAST - 1), backend="api")] * 6 + [record(NOW - 5, backend="api")] * 2
                + [record(NOW - 5, backend="auth", server="auth-1", status=401)] * 1)
    seen = await queries.series(minutes=3, limit=limit)
    assert [b.backend for b in seen.by_backend] == want and seen.more_backends == more
    api = next((b for b in seen.by_backend if b.backend == "api"), None)
    if api is not None:
        assert api.requests == 8 and [p.requests for p in api.points] == [0, 6, 2]
    assert [p.requests for p in seen.points] == [9, 6, 3]
    for backend in seen.by_backend:
        assert [p.minute for p in backend.points] == [p.minute for p in seen.points]


async def test_series_at_replays_a_past_window(store, queries):
    await write(store, [record(NOW - 3600, status=502)] * 4 + [record(NOW - 5)])
    past = datetime.fromtimestamp(NOW - 3590, timezone.utc)
    seen = await queries.series(minutes=2, at=past)
    assert [(p.requests, p.errors_5xx) for p in seen.points] == [(0, 0), (4, 4)]


class CountingRedis:
    """A client that counts the round trips made through it."""

    def __init__(self, redis):
        self._redis = redis
        self.trips = 0

    def pipeline(self, *args, **kwargs):
        pipe = self._redis.pipeline(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a, **k):
            self.trips += 1
            return await execute(*a, **k)

        pipe.execute = counted
        return pipe


async def test_series_reads_in_a_fixed_number_of_round_trips_and_caches_what_did_not_change(store, real_redis):
    await write(store, [record(at(m), backend=b) for m in range(LAST - 59, LAST + 1) for b in ("api", "web", "auth")])
    counting = CountingRedis(real_redis)
    queries = MetricsQueries(real_redis, now=clock, reader=BucketReader(counting, now=clock))
    first = await queries.series(minutes=60)
    assert counting.trips == 3, "generations, the minutes' totals, their backends"
    assert [p.requests for p in first.points] == [3] * 60
    await write(store, [record(NOW - 5, backend="api")])
    counting.trips = 0
    again = await queries.series(minutes=60)
    assert counting.trips == 3 and [p.requests for p in again.points] == [3] * 59 + [4]
    counting.trips = 0
    assert (await queries.series(minutes=60)) == again and counting.trips == 1


async def test_late_lines_for_a_settled_minute_show_in_the_series(store, queries):
    await write(store, [record(at(LAST - 4))] * 3)
    assert (await queries.series(minutes=5)).points[0].requests == 3
    await write(store, [record(at(LAST - 4))] * 2)
    assert (await queries.series(minutes=5)).points[0].requests == 5


async def test_series_of_a_route_is_that_routes_minutes_on_any_backend_or_one(store, queries):
    await write(store, [record(at(LAST - 2), backend="checkout", method="POST", path="/api/checkout", status=401,
                               ta=20)] * 3
                + [record(at(LAST - 2), backend="checkout", method="POST", path="/api/checkout", ta=120)] * 5
                + [record(at(LAST - 2), backend="checkout", method="GET", path="/api/cart", status=500)] * 4
                + [record(at(LAST - 1), backend="canary", method="POST", path="/api/checkout", status=503)] * 2)

    everywhere = await queries.series(minutes=3, route="POST /api/checkout")
    one = await queries.series(minutes=3, route="POST /api/checkout", backend="checkout")

    assert everywhere.route == "POST /api/checkout" and everywhere.by_backend == []
    assert [(p.requests, p.errors_4xx, p.errors_5xx) for p in everywhere.points] == [(8, 3, 0), (2, 0, 2), (0, 0, 0)]
    assert everywhere.points[0].error_rate_4xx_pct == 37.5 and everywhere.points[0].p95_ms is not None
    assert [(p.requests, p.errors_5xx) for p in one.points] == [(8, 0), (0, 0), (0, 0)]


async def test_a_long_series_built_off_the_event_loop_is_the_same_series(store, queries, real_redis, monkeypatch):
    await write(store, [record(at(m), backend=b, ta=10 * (m % 7 + 1)) for m in range(LAST - 9, LAST + 1)
                        for b in ("api", "web", "auth")])
    inline = await queries.series(minutes=10, limit=2)
    monkeypatch.setattr("ingestion.queries._MANY_POINTS", 0)
    monkeypatch.setattr("ingestion.queries.asyncio.to_thread", counted_to_thread := CountedToThread())
    fresh = MetricsQueries(real_redis, now=clock)
    assert await fresh.series(minutes=10, limit=2) == inline and counted_to_thread.calls == 1


class CountedToThread:
    """`asyncio.to_thread` that counts its calls."""

    def __init__(self):
        self.calls = 0
        self._to_thread = asyncio.to_thread

    async def __call__(self, function, *args):
        self.calls += 1
        return await self._to_thread(function, *args)


async def test_only_the_minutes_that_changed_are_computed_again(store, queries, monkeypatch):
    await write(store, [record(at(m), backend=b) for m in range(LAST - 4, LAST + 1) for b in ("api", "web")])
    first = await queries.series(minutes=5)
    computed = []
    original = ingestion.queries._series_point
    monkeypatch.setattr("ingestion.queries._series_point",
                        lambda start, merged, scope: computed.append((start, scope)) or original(start, merged, scope))
    assert await queries.series(minutes=5) == first and computed == []
    await write(store, [record(NOW - 5, backend="web", status=500)])
    again = await queries.series(minutes=5)
    assert sorted(computed, key=str) == sorted([(minute_start(LAST), scope) for scope in (None, "web", "api")], key=str)
    assert again.points[:4] == first.points[:4] and again.points[-1].errors_5xx == 1
