"""Shared fixtures: fakeredis for unit tests, a real redis-server for integration tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fakeredis
import hypothesis
import pytest
import redis as redis_sync
from redis.asyncio import Redis

from receiver.embedded_redis import find_redis_server
from receiver.settings import Settings

# Hypothesis fails an example that takes over 200 ms, or data that is slow to generate: assertions about
# the machine's speed, which a busy one breaks. What the examples assert is all these tests check.
hypothesis.settings.register_profile("any-speed", deadline=None,
                                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("any-speed")

# Each write reaches the disk before Redis answers it: a restart, even a crash, loses nothing acknowledged.
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server on a free loopback port, restartable for fault tests."""

    def __init__(self, binary: str, directory: Path, *extra: str) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--appendonly", "no", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis_sync.Redis(port=self.port)
        deadline = time.monotonic() + 60  # only ends a broken start; a busy machine never reaches it
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis_sync.ConnectionError:
                time.sleep(0.025)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (Redis shuts down cleanly) or, with `kill`, SIGKILL: a crash, only what is on disk survives."""
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
        self.process = None


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
    # No in-process incident worker unless a test asks for one: most tests have no use for it.
    return Settings(_env_file=None, log_timezone="UTC", data_dir=tmp_path / "var",
                    postmortem_dir=tmp_path / "post-mortems", syslog_port=0, run_worker=False)


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's environment or .env."""
    for name in list(os.environ):
        if name in Settings.model_fields or name.lower() in Settings.model_fields:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def with_settings(settings: Settings, **overrides) -> Settings:
    """A validated copy (model_copy would skip validation, leaving e.g. tokens as plain str)."""
    return Settings(_env_file=None, **{**settings.model_dump(), **overrides})
