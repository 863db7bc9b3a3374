"""Shared fixtures: fakeredis for unit tests, a real redis-server for integration tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fakeredis
import hypothesis
import pytest
from redis.asyncio import Redis

from receiver.embedded_redis import find_redis_server
from receiver.settings import Settings
from tests.support.redis_cluster import RedisClusterServers
from tests.support.redis_server import DURABLE, RedisServer

# Hypothesis fails an example that takes over 200 ms, or data that is slow to generate: assertions about
# the machine's speed, which a busy one breaks. What the examples assert is all these tests check.
hypothesis.settings.register_profile("any-speed", deadline=None,
                                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("any-speed")

def redis_binary() -> str:
    try:
        return find_redis_server()
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    directory = Path(tempfile.mkdtemp(prefix="ic-redis-"))
    server = RedisServer(redis_binary(), directory)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_servers() -> Iterator[RedisClusterServers]:
    """A real Redis Cluster of three masters (no replicas), made with `redis-cli --cluster create`."""
    directory = Path(tempfile.mkdtemp(prefix="ic-cluster-"))
    cluster = RedisClusterServers(redis_binary(), directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def redis_cluster(redis_cluster_servers: RedisClusterServers) -> RedisClusterServers:
    """The session's cluster, every master running and every key gone."""
    for node in redis_cluster_servers.nodes:
        if node.process is None:
            node.start()
    redis_cluster_servers.wait_ok()
    redis_cluster_servers.flush()
    return redis_cluster_servers


@pytest.fixture
def durable_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of its own that writes every change to its append-only file before answering."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(redis_binary(), directory, *DURABLE)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def real_redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    if redis_server.process is None:
        redis_server.start()
    client = Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def fake_redis() -> AsyncIterator[Redis]:
    client = fakeredis.FakeAsyncRedis(decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No in-process incident worker unless a test asks for one: most tests have no use for it. Views read
    # at every query: tests that write and read back at once (the snapshots have tests of their own).
    return Settings(_env_file=None, log_timezone="UTC", data_dir=tmp_path / "var",
                    postmortem_dir=tmp_path / "post-mortems", syslog_port=0, run_worker=False,
                    query_snapshot_seconds=0)


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's environment or .env."""
    for name in list(os.environ):
        if name in Settings.model_fields or name.lower() in Settings.model_fields:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
