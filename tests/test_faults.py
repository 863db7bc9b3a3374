"""Redis going away: clear 503s with a reason, no crash, recovery without a restart."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from receiver.app import create_app
from tests.conftest import with_settings
from tests.records import body, line

pytestmark = pytest.mark.integration


async def test_redis_stopped_mid_run_gives_503_then_the_service_recovers(aiohttp_client, settings, redis_server,
                                                                        real_redis):
    app = create_app(with_settings(settings, redis_url=redis_server.url))
    client = await aiohttp_client(app)
    text = {"Content-Type": "text/plain"}
    assert (await client.post("/logs", data=body(line()), headers=text)).status == 202

    redis_server.stop()
    try:
        resp = await client.post("/logs", data=body(line(), line()), headers=text)
        assert resp.status == 503
        answer = await resp.json()
        assert answer["error"] == "redis_unavailable" and "Redis" in answer["detail"]
        assert resp.headers["Retry-After"]
        health = await client.get("/health")
        assert health.status == 503 and (await health.json())["redis"] == "unreachable"
        assert (await client.get("/metrics/overview")).status == 503
    finally:
        redis_server.start()

    assert (await client.get("/health")).status == 200
    assert (await client.post("/logs", data=body(line(), line()), headers=text)).status == 202
    seen = await (await client.get("/metrics/overview")).json()
    assert seen["total_requests"] == 2  # the restarted server kept nothing (no persistence in tests)


async def test_service_started_without_redis_url_runs_its_own_and_stops_it(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/health")).status == 200
    sock = settings.data_dir.resolve() / "redis.sock"
    assert sock.exists()
    await client.close()
    assert not sock.exists()  # redis-server removes its socket when it exits
