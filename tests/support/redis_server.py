"""A real redis-server for integration and fault tests, and free loopback ports."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis as redis_sync

# Each write reaches the disk before Redis answers it: a restart, even a crash, loses nothing acknowledged.
DURABLE = ("--appendonly", "yes", "--appendfsync", "always")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(port: int) -> None:
    """Until the Redis on `port` answers PING."""
    client = redis_sync.Redis(port=port)
    deadline = time.monotonic() + 60  # only ends a broken start; a busy machine never reaches it
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except redis_sync.ConnectionError:
            time.sleep(0.025)
    raise RuntimeError(f"redis-server on port {port} did not start")


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
        wait_for_ping(self.port)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (Redis shuts down cleanly) or, with `kill`, SIGKILL: a crash, only what is on disk survives."""
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
        self.process = None
