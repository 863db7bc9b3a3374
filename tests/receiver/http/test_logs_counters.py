"""`POST /logs` against a real redis-server: no line, and no failed write, leaves a counter wrong."""

from __future__ import annotations

import time

import orjson
import pytest
from redis.asyncio import Redis

from receiver.app import create_app
from tests.receiver.http.test_logs import entry
from tests.support.records import body, line

pytestmark = pytest.mark.integration

TWENTY_DIGITS = 18446744073709551615


@pytest.fixture
async def client(aiohttp_client, settings, real_redis: Redis):
    return await aiohttp_client(create_app(settings, redis=real_redis))


async def backend_requests(client, backend: str = "api") -> int:
    resp = await client.get("/metrics/backends")
    assert resp.status == 200
    rows = {row["backend"]: row["requests"] for row in (await resp.json())["backends"]}
    return rows.get(backend, 0)


async def snapshot(redis: Redis) -> dict[str, object]:
    """Every key's content, so that two snapshots differ if any counter moved."""
    found: dict[str, object] = {}
    async for key in redis.scan_iter("*"):
        kind = await redis.type(key)
        if kind == "hash":
            found[key] = await redis.hgetall(key)
        elif kind == "zset":
            found[key] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            found[key] = await redis.smembers(key)
        else:
            found[key] = await redis.get(key)
    return found


async def test_a_timer_that_would_overflow_is_one_rejection_and_the_backend_goes_on(client) -> None:
    batch = [entry(), entry(time_active=9223372036854775807), entry(), entry(time_active=TWENTY_DIGITS)]
    resp = await client.post("/logs", json=batch)
    assert resp.status == 202
    answer = await resp.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 2)
    assert [e["line"] for e in answer["errors"]] == [2, 4]
    assert all("time_active" in e["reason"] for e in answer["errors"])

    later = await client.post("/logs", json=[entry(time_active=86_399_999)])
    assert later.status == 202
    assert await backend_requests(client) == 3


async def test_a_20_digit_number_in_ndjson_or_text_is_one_rejection(client) -> None:
    ndjson = b"\n".join([orjson.dumps(entry()), orjson.dumps(entry(time_active=TWENTY_DIGITS)),
                         orjson.dumps(entry(bytes_read=TWENTY_DIGITS)), orjson.dumps(entry())])
    resp = await client.post("/logs", data=ndjson, headers={"Content-Type": "application/x-ndjson"})
    assert resp.status == 202
    answer = await resp.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 2)
    assert "time_active" in answer["errors"][0]["reason"] and "bytes_read" in answer["errors"][1]["reason"]

    good = line(backend="api")
    too_long = good.replace("/20 200 100 ", f"/{TWENTY_DIGITS} 200 100 ", 1)
    too_big = good.replace(" 200 100 ", f" 200 {TWENTY_DIGITS} ", 1)
    assert too_long != good and too_big != good
    resp = await client.post("/logs", data=body(good, too_long, too_big), headers={"Content-Type": "text/plain"})
    assert resp.status == 202
    answer = await resp.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 2)
    assert "Ta (time_active)" in answer["errors"][0]["reason"] and "byte count" in answer["errors"][1]["reason"]
    assert await backend_requests(client) == 3


async def test_a_batch_redis_refuses_changes_no_counter_and_is_not_worth_a_retry(client, real_redis: Redis) -> None:
    batch = [entry(status_code=503), entry(), entry(backend_name="auth")]
    assert (await client.post("/logs", json=batch)).status == 202
    # The day's ingestion counters, written last, holding another type: Redis refuses their write.
    ingest_key = f"ic:cum:{{{int(time.time() // 86400)}}}:ingest"
    await real_redis.delete(ingest_key)
    await real_redis.set(ingest_key, "not a hash")
    before = await snapshot(real_redis)

    resp = await client.post("/logs", json=batch)

    assert resp.status == 500 and "Retry-After" not in resp.headers
    assert (await resp.json())["error"] == "redis_error"
    assert await snapshot(real_redis) == before, "nothing of the batch was written"


async def test_a_sum_at_redis_limit_saturates_and_later_batches_still_count(client, real_redis: Redis) -> None:
    assert (await client.post("/logs", json=[entry()])).status == 202
    latency_key = f"ic:cum:{{{int(time.time() // 86400)}}}:lat"
    await real_redis.hset(latency_key, "api\tsum", 2**63 - 5)

    for _ in range(2):
        resp = await client.post("/logs", json=[entry(time_active=86_399_999), entry()])
        assert resp.status == 202

    assert int(await real_redis.hget(latency_key, "api\tsum")) == 2**63 - 1
    assert await backend_requests(client) == 5
