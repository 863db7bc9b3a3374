"""A Redis written before the keys had hash tags keeps its incidents, alerts and metrics after the upgrade."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from redis.asyncio import Redis

from ingestion import generate_lines
from receiver.app import create_app
from receiver.appkeys import ALERT_STREAM
from receiver.incidents import Notification
from receiver.keyspace import current_name, tag_key_names
from tests.support.incidents import Service, grouped, payload, rule_alert
from tests.support.settings import with_settings

TEXT = {"Content-Type": "text/plain"}


@pytest.mark.parametrize(("old", "new"), [
    ("ic:incident:inc-20261201-0123abcd", "{ic:incidents}:incident:inc-20261201-0123abcd"),
    ("ic:incident-key:5f2b", "{ic:incidents}:incident-key:5f2b"),
    ("ic:incident-group:77aa", "{ic:incidents}:incident-group:77aa"),
    ("ic:incidents:opened", "{ic:incidents}:opened"),
    ("ic:incidents:rechecks", "{ic:incidents}:rechecks"),
    ("ic:alerts", "{ic:alerts}"),
    ("ic:alerts:dead", "{ic:alerts}:dead"),
    ("ic:notify:outbox", "{ic:notify}:outbox"),
    ("ic:notify:done:inc-1:1:opened:oncall/webhook/0", "{ic:notify}:done:inc-1:1:opened:oncall/webhook/0"),
    ("ic:m:29400000", "ic:m:{29400000}"),
    ("ic:m:29400000:b:api:v2", "ic:m:{29400000}:b:api:v2"),
    ("ic:cum:20423:req", "ic:cum:{20423}:req"),
])
def test_each_old_name_has_one_new_name(old, new):
    assert current_name(old)[0] == new


@pytest.mark.parametrize("name", ["ic:m:{29400000}", "{ic:incidents}:opened", "ic:gen:490000", "ic:seen:be:490000",
                                  "llm:slots", "ic:m:oops"])
def test_current_and_foreign_names_stay(name):
    assert current_name(name) is None


def old_name(new: str) -> str:
    """The name a key had before hash tags: the inverse of `current_name`."""
    for tag, old in (("{ic:incidents}:incident", "ic:incident"), ("{ic:incidents}:", "ic:incidents:"),
                     ("{ic:alerts}", "ic:alerts"), ("{ic:notify}:", "ic:notify:")):
        if new.startswith(tag):
            return old + new[len(tag):]
    return new.replace("{", "").replace("}", "")


async def as_before_hash_tags(redis: Redis) -> int:
    """Rename every key of ours to its old name, as the previous version wrote them; answers how many."""
    names = [name async for name in redis.scan_iter(count=1000) if name != old_name(name)]
    for name in names:
        await redis.rename(name, old_name(name))
    return len(names)


@pytest.mark.integration
async def test_an_upgraded_redis_keeps_its_incidents_alerts_and_metrics(aiohttp_client, settings, redis_server,
                                                                        real_redis):
    at = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    lines = list(generate_lines("deploy-regression", start=at - timedelta(minutes=10), minutes=10, rps=1, seed=3))
    before = create_app(with_settings(settings, redis_url=redis_server.url, run_worker=True))
    client = await aiohttp_client(before)
    response = await client.post("/logs", data="\n".join(lines) + "\n", headers=TEXT)
    accepted = (await response.json())["accepted"]
    service = Service(client, before[ALERT_STREAM], settings.postmortem_dir)
    await service.post(payload("backend-5xx-firing"))
    [analysed] = await service.diagnosed()
    overview = await (await client.get("/metrics/overview", params={"window": "60"})).json()
    await client.close()
    # One more notification was stored and not yet taken by a worker when the old version stopped.
    late = Notification.model_validate(grouped([rule_alert("BackendLatencyHigh", "web")]))
    await before[ALERT_STREAM].add(late, received_at=datetime.now(timezone.utc))
    assert overview["total_requests"] == accepted > 0

    renamed = await as_before_hash_tags(real_redis)
    assert renamed > 10
    # Several processes start together: each key is renamed once, by one of them.
    moved = await asyncio.gather(tag_key_names(real_redis), tag_key_names(real_redis))
    assert sum(moved) == renamed
    await as_before_hash_tags(real_redis)

    after = create_app(with_settings(settings, redis_url=redis_server.url, run_worker=True))
    client = await aiohttp_client(after)
    service = Service(client, after[ALERT_STREAM], settings.postmortem_dir)
    rows = await service.diagnosed(2)  # the late notification was taken from the renamed stream and its group
    assert analysed["id"] in {row["id"] for row in rows}
    assert await (await client.get("/metrics/overview", params={"window": "60"})).json() == overview
    assert [name async for name in real_redis.scan_iter(count=1000) if current_name(name)] == []


@pytest.mark.integration
async def test_a_key_under_both_names_is_merged(real_redis):
    await real_redis.hset("ic:m:29400000", mapping={"n": 2, "c:200": 2})
    await real_redis.hset("ic:m:{29400000}", mapping={"n": 3, "c:500": 3})
    await real_redis.hset("ic:incidents:summaries", mapping={"inc-a": "old-a", "inc-b": "old-b"})
    await real_redis.hset("{ic:incidents}:summaries", mapping={"inc-b": "new-b"})
    await real_redis.zadd("ic:incidents:opened", {"inc-a": 1, "inc-b": 2})
    await real_redis.zadd("{ic:incidents}:opened", {"inc-b": 2, "inc-c": 3})

    assert await tag_key_names(real_redis) == 3

    assert await real_redis.hgetall("ic:m:{29400000}") == {"n": "5", "c:200": "2", "c:500": "3"}  # counts add up
    assert await real_redis.hgetall("{ic:incidents}:summaries") == {"inc-a": "old-a", "inc-b": "new-b"}
    assert await real_redis.zrange("{ic:incidents}:opened", 0, -1) == ["inc-a", "inc-b", "inc-c"]
    assert await real_redis.exists("ic:m:29400000", "ic:incidents:summaries", "ic:incidents:opened") == 0
