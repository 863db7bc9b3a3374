"""Incident records in Redis: atomic changes, never evicted, listed newest first."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from receiver.incidents import IncidentRepository, lifecycle
from receiver.incidents.model import TimelineEntry

from tests.support.incidents import T0, delivery, group_payload


def open_change(index: int, received):
    d = delivery(group_payload(index), f"{index + 1}-0", received)

    def change(current):
        return lifecycle.apply(current, d, lifecycle.decide(current, d), now=received)

    return d.notification.group_key, change


@pytest.mark.integration
async def test_concurrent_changes_to_one_incident_all_land(real_redis: Redis, redis_server) -> None:
    repository = IncidentRepository(real_redis)
    group, change = open_change(0, T0)
    _, incident = await repository.change_latest(group, change)

    def note(n: int):
        def add(current):
            entry = TimelineEntry(at=T0, kind="repeat", text=f"note {n}")
            return current.model_copy(update={"timeline": [*current.timeline, entry]})
        return add

    other = Redis.from_url(redis_server.url, decode_responses=True)  # as if from another machine
    try:
        await asyncio.gather(*(
            (repository if n % 2 else IncidentRepository(other)).change(incident.id, note(n)) for n in range(20)
        ))
    finally:
        await other.aclose()
    stored = await repository.get(incident.id)
    assert sorted(e.text for e in stored.timeline if e.text.startswith("note")) == sorted(f"note {n}" for n in range(20))


async def test_records_never_expire(fake_redis: Redis) -> None:
    repository = IncidentRepository(fake_redis)
    group, change = open_change(0, T0)
    await repository.change_latest(group, change)
    keys = await fake_redis.keys("{ic:incidents}:*")
    assert len(keys) == 4  # record, index, summaries, group pointer
    assert [await fake_redis.ttl(k) for k in keys] == [-1] * 4


async def test_latest_for_and_get(fake_redis: Redis) -> None:
    repository = IncidentRepository(fake_redis)
    group, change = open_change(3, T0)
    _, incident = await repository.change_latest(group, change)
    assert await repository.latest_for(group) == incident
    assert await repository.get(incident.id) == incident
    assert await repository.get("../../etc/passwd") is None
    assert await repository.latest_for("{}:{alertname=\"never\"}") is None


async def test_summaries_are_newest_first_across_pages(fake_redis: Redis) -> None:
    repository = IncidentRepository(fake_redis)
    for index in range(250):
        group, change = open_change(index, T0 + timedelta(minutes=index))
        await repository.change_latest(group, change)
    # Resolve the oldest one: it must still be listed by when it opened.
    oldest = delivery(group_payload(0, status="resolved"), "900-0", T0 + timedelta(days=1))
    await repository.change_latest(oldest.notification.group_key, lambda current: lifecycle.apply(
        current, oldest, lifecycle.decide(current, oldest), now=T0 + timedelta(days=1)))

    rows = await repository.summaries(limit=500)
    assert len(rows) == 250 and await repository.count() == 250
    assert [r.notified_at for r in rows] == sorted((r.notified_at for r in rows), reverse=True)
    [closed] = await repository.summaries(limit=10, status="resolved")
    assert closed.id == rows[-1].id
    assert len(await repository.summaries(limit=240, status="open")) == 240
    assert len(await repository.summaries(limit=5)) == 5


async def test_incidents_opened_while_the_list_is_read_do_not_repeat_one(fake_redis: Redis) -> None:
    repository = IncidentRepository(fake_redis)
    for index in range(250):
        group, change = open_change(index, T0 + timedelta(minutes=index))
        await repository.change_latest(group, change)
    read_page = fake_redis.zrevrange
    opened = iter(range(250, 260))

    async def page_while_a_storm_opens_incidents(*args, **kwargs):
        page = await read_page(*args, **kwargs)
        for index in (next(opened, None) for _ in range(5)):
            if index is not None:  # newer incidents push the older ones down the index meanwhile
                group, change = open_change(index, T0 + timedelta(minutes=index))
                await repository.change_latest(group, change)
        return page

    fake_redis.zrevrange = page_while_a_storm_opens_incidents  # type: ignore[method-assign]
    rows = await repository.summaries(limit=500)

    ids = [row.id for row in rows]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 250  # every incident there when the read began
