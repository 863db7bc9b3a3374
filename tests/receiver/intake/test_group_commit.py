"""Group commit: small `POST /logs` batches arriving together are written in one store write, each answered after it."""

from __future__ import annotations

import asyncio
import time

import pytest
from ingestion import Batch, TimeBounds, add_entries

from receiver.app import create_app
from receiver.intake import GroupCommitPolicy
from receiver.intake.group_commit import GroupCommit, combine
from tests.receiver.http.test_logs import entry
from tests.support.settings import with_settings


def batch_of(*entries: dict) -> Batch:
    batch = Batch()
    bounds = TimeBounds(now=time.time(), retention_seconds=3600, skew_seconds=300)
    add_entries(batch, list(entries), bounds=bounds)
    return batch


def test_small_batches_join_a_group_and_large_ones_go_alone() -> None:
    policy = GroupCommitPolicy(window_seconds=0.002, small_lines=100, max_lines=2000)
    assert policy.joins(1) and policy.joins(100)
    assert not policy.joins(101)
    assert not policy.joins(0)
    assert not GroupCommitPolicy(window_seconds=0).joins(1)
    assert policy.full(2000) and not policy.full(1999)


def test_a_combined_batch_counts_every_line_of_its_members_and_leaves_them_as_they_were() -> None:
    one = batch_of(entry(), entry(status_code=503))
    two = batch_of(entry(backend_name="web"), {"not": "an entry"})
    whole = combine([one, two])
    assert (whole.accepted, whole.rejected, dict(whole.reasons)) == (3, 1, {"invalid_entry": 1})
    [bucket] = whole.buckets.values()
    assert bucket.n == 3 and set(bucket.backends) == {"api", "web"} and bucket.codes["503"] == 1
    assert (one.accepted, two.accepted) == (2, 1)
    [own] = one.buckets.values()
    assert own.n == 2 and set(own.backends) == {"api"}


async def test_batches_arriving_together_are_one_write_and_each_waits_for_it() -> None:
    writes: list[Batch] = []
    release = asyncio.Event()

    async def write(batch: Batch) -> None:
        await release.wait()
        writes.append(batch)

    group = GroupCommit(write, GroupCommitPolicy(window_seconds=0.001))
    pending = [asyncio.create_task(group.write(batch_of(entry()), 1)) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in pending)  # nobody is answered before the write
    release.set()
    await asyncio.gather(*pending)
    assert [b.accepted for b in writes] == [5]


async def test_a_group_reaching_its_size_is_written_without_waiting_for_the_window() -> None:
    writes: list[int] = []

    async def write(batch: Batch) -> None:
        writes.append(batch.accepted)

    group = GroupCommit(write, GroupCommitPolicy(window_seconds=60, small_lines=10, max_lines=3))
    await asyncio.wait_for(asyncio.gather(*(group.write(batch_of(entry()), 1) for _ in range(3))), 30)
    assert writes == [3]


async def test_a_failed_write_fails_every_request_of_its_group() -> None:
    async def write(batch: Batch) -> None:
        raise ConnectionError("redis went away")

    group = GroupCommit(write, GroupCommitPolicy(window_seconds=0.001))
    results = await asyncio.gather(*(group.write(batch_of(entry()), 1) for _ in range(4)), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError] * 4


async def test_closing_writes_the_group_still_waiting() -> None:
    writes: list[int] = []

    async def write(batch: Batch) -> None:
        writes.append(batch.accepted)

    group = GroupCommit(write, GroupCommitPolicy(window_seconds=60))
    waiting = asyncio.create_task(group.write(batch_of(entry(), entry()), 2))
    await asyncio.sleep(0)
    await group.close()
    await waiting
    assert writes == [2]


@pytest.mark.integration
async def test_concurrent_single_entries_are_all_accepted_and_counted_exactly(aiohttp_client, settings,
                                                                              real_redis) -> None:
    client = await aiohttp_client(create_app(with_settings(settings, group_commit_ms=2), redis=real_redis))
    answers = await asyncio.gather(*(client.post("/logs", json=entry(backend_name=f"be{i % 3}"))
                                     for i in range(60)))
    assert [r.status for r in answers] == [202] * 60
    rows = {row["backend"]: row["requests"] for row in (await (await client.get("/metrics/backends")).json())["backends"]}
    assert rows == {"be0": 20, "be1": 20, "be2": 20}
    text = await (await client.get("/prometheus/metrics")).text()
    assert 'incident_copilot_ingest_lines_accepted_total{source="http"} 60.0' in text


@pytest.mark.integration
async def test_with_redis_down_every_request_of_a_group_is_refused_and_none_counted(aiohttp_client, settings,
                                                                                    durable_redis_server) -> None:
    app = create_app(with_settings(settings, redis_url=durable_redis_server.url, group_commit_ms=2))
    client = await aiohttp_client(app)
    assert (await client.post("/logs", json=entry())).status == 202
    durable_redis_server.stop()
    try:
        answers = await asyncio.gather(*(client.post("/logs", json=entry()) for _ in range(20)))
        assert [r.status for r in answers] == [503] * 20
        assert {(await r.json())["error"] for r in answers} == {"redis_unavailable"}
    finally:
        durable_redis_server.start()
    overview = await (await client.get("/metrics/overview")).json()
    assert overview["total_requests"] == 1
