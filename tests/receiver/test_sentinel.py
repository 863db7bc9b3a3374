"""The service on a master found through a real Redis Sentinel, and the Redis settings that cannot go together."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from receiver.app import create_app
from receiver.settings import Settings
from tests.conftest import redis_binary
from tests.support.records import body, line
from tests.support.redis_cluster import SentinelServers
from tests.support.settings import with_settings

TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelServers]:
    servers = SentinelServers(redis_binary(), tmp_path / "sentinel")
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(tmp_path / "sentinel", ignore_errors=True)


@pytest.mark.integration
async def test_the_service_runs_on_the_master_a_sentinel_names(aiohttp_client, settings, sentinel):
    client = await aiohttp_client(create_app(with_settings(
        settings, redis_sentinels=sentinel.sentinels, redis_sentinel_master=sentinel.master_name)))

    assert (await client.get("/health")).status == 200
    response = await client.post("/logs", data=body(line(), line(status=503)), headers=TEXT)
    assert response.status == 202
    overview = await (await client.get("/metrics/overview")).json()
    assert (overview["total_requests"], overview["errors_5xx"]) == (2, 1)


@pytest.mark.integration
async def test_a_sentinel_that_knows_no_such_master_gives_503(aiohttp_client, settings, sentinel):
    client = await aiohttp_client(create_app(with_settings(
        settings, redis_sentinels=sentinel.sentinels, redis_sentinel_master="elsewhere")))

    response = await client.post("/logs", data=body(line()), headers=TEXT)
    assert response.status == 503 and (await response.json())["error"] == "redis_unavailable"
    assert (await client.get("/health")).status == 503


@pytest.mark.parametrize(("env", "reason"), [
    ({"redis_cluster": True}, "REDIS_CLUSTER needs REDIS_URL"),
    ({"redis_cluster": True, "redis_url": "redis://a:7000", "redis_sentinels": "a:26379",
      "redis_sentinel_master": "m"}, "REDIS_CLUSTER and REDIS_SENTINELS exclude each other"),
    ({"redis_sentinels": "a:26379"}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
    ({"redis_sentinel_master": "m"}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
    ({"redis_sentinels": "a", "redis_sentinel_master": "m"}, "redis_sentinels"),
])
def test_redis_settings_that_cannot_work_stop_the_start_with_the_reason(env, reason):
    with pytest.raises(ValidationError, match=reason):
        Settings(_env_file=None, **env)


def test_sentinels_are_read_as_addresses():
    settings = Settings(_env_file=None, redis_sentinels="sentinel-1:26379, 10.0.0.7:26380",
                        redis_sentinel_master="copilot")
    assert settings.sentinels == [("sentinel-1", 26379), ("10.0.0.7", 26380)]
