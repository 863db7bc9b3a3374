"""Views over the still-filling minute come from a short-lived snapshot: a write shows within its age, never later."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from ingestion import MetricsQueries, MetricsStore
from tests.ingestion.conftest import NOW, write
from tests.support.records import record

pytestmark = pytest.mark.integration

AGE = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class CountingPipelines:
    """The Redis client, counting the pipelines the queries send."""

    def __init__(self, redis) -> None:
        self._redis = redis
        self.sent = 0

    def pipeline(self, *args, **kwargs):
        self.sent += 1
        return self._redis.pipeline(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._redis, name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(real_redis, clock):
    return MetricsStore(real_redis, retention_minutes=360, now=clock)


async def test_a_write_shows_once_the_snapshot_is_older_than_its_age_and_never_later(real_redis, store, clock):
    queries = MetricsQueries(real_redis, now=clock, snapshot_seconds=AGE)
    await write(store, [record(NOW - 10)] * 3)
    first = await queries.overview(window=5)
    assert first.total_requests == 3
    assert first.as_of == datetime.fromtimestamp(NOW, timezone.utc)

    await write(store, [record(NOW - 5)] * 2)
    clock.now = NOW + AGE * 0.9
    within = await queries.overview(window=5)
    assert within.total_requests == 3 and within.as_of == first.as_of  # the snapshot, and it says how old

    clock.now = NOW + AGE
    after = await queries.overview(window=5)
    assert after.total_requests == 5
    assert after.as_of == datetime.fromtimestamp(NOW + AGE, timezone.utc)
    assert "as_of" in after.model_dump_json()


async def test_without_snapshots_every_query_reads_and_says_no_as_of(real_redis, store, clock):
    queries = MetricsQueries(real_redis, now=clock)
    await write(store, [record(NOW - 10)] * 3)
    assert (await queries.overview(window=5)).total_requests == 3
    await write(store, [record(NOW - 5)] * 2)
    seen = await queries.overview(window=5)
    assert seen.total_requests == 5 and seen.as_of is None and "as_of" not in seen.model_dump_json()


async def test_a_past_window_is_never_a_snapshot(real_redis, store, clock):
    queries = MetricsQueries(real_redis, now=clock, snapshot_seconds=AGE)
    await write(store, [record(NOW - 1800)] * 4)
    past = datetime.fromtimestamp(NOW - 1700, timezone.utc)
    assert (await queries.overview(window=5, at=past)).total_requests == 4
    await write(store, [record(NOW - 1790)])
    seen = await queries.overview(window=5, at=past)
    assert seen.total_requests == 5 and seen.as_of is None


async def test_identical_queries_at_once_share_one_read(real_redis, store, clock):
    counting = CountingPipelines(real_redis)
    queries = MetricsQueries(counting, now=clock, snapshot_seconds=AGE)
    await write(store, [record(NOW - 10, path=f"/api/items/{i}") for i in range(50)])
    answers = await asyncio.gather(*(queries.paths(window=60) for _ in range(20)))
    alone = counting.sent
    assert {a.model_dump_json() for a in answers} == {answers[0].model_dump_json()}

    once = CountingPipelines(real_redis)
    await MetricsQueries(once, now=clock, snapshot_seconds=AGE).paths(window=60)
    assert alone == once.sent  # twenty queries cost what one does


async def test_an_expired_snapshot_is_not_kept(real_redis, store, clock):
    queries = MetricsQueries(real_redis, now=clock, snapshot_seconds=AGE)
    await write(store, [record(NOW - 10)])
    for minutes in range(1, 6):
        await queries.overview(window=minutes)
    clock.now = NOW + AGE
    await queries.overview(window=5)
    assert len(queries._reader._snapshots) == 1  # the five earlier windows' sums are not held any longer
