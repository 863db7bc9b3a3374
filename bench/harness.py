"""What every benchmark needs: a real redis-server and the service as its own process."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Sequence
from typing import NamedTuple

import redis
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
# Every `/metrics/*` endpoint, as a dashboard asks for the last hour.
METRICS_QUERIES = ("overview?window=60", "status-codes?window=60", "response-times?window=60",
                   "backends?window=60", "frontends?window=60", "paths?window=60",
                   "termination-states?window=60", "rps?minutes=60", "saturation?window=60",
                   "series?minutes=60", "servers?window=60")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server(*extra: str):
    directory = tempfile.mkdtemp(prefix="ic-bench-redis-")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
                             "--save", "", "--appendonly", "no", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _redis_ping(port), "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Service(NamedTuple):
    url: str
    pid: int
    log: Path


@contextmanager
def service(redis_url: str, *, code: Path = ROOT, args: Sequence[str] = (), **env: str):
    """The service on a free port; its data, post-mortems and log in a directory removed afterwards.

    `code`: the checkout to run (another one: an earlier version, for a before-and-after); `args`: more
    arguments of `serve` (`--workers 2`)."""
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="ic-bench-service-"))
    environ = {**os.environ, "REDIS_URL": redis_url, "PORT": str(port), "SYSLOG_PORT": "0",
               "LOG_TIMEZONE": "UTC", "LOG_LEVEL": "WARNING", "DATA_DIR": str(directory),
               "POSTMORTEM_DIR": str(directory / "post-mortems"), "PYTHONPATH": str(code), **env}
    log = directory / "service.log"
    # A file, not a pipe: nothing reads the log while the service runs, and a full pipe would stall it.
    with open(log, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "receiver.cli", "serve", *args], cwd=code, env=environ,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait(lambda: _http_ok(url + "/health"), "service")
        except RuntimeError:
            raise RuntimeError(f"service did not start:\n{log.read_text()[-2000:]}") from None
        yield Service(url, proc.pid, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(directory, ignore_errors=True)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:  # noqa: S310 - loopback only
            return resp.status == 200
    except OSError:
        return False


def _wait(ready, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its live children (`serve --workers N`)."""
    return sum(_own_rss_mb(p) for p in (pid, *children(pid)))


def _own_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for row in fh:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1]) / 1024
    except OSError:  # gone meanwhile
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process and its live children (`serve --workers N`) have used."""
    return sum(_own_cpu_seconds(p) for p in (pid, *children(pid)))


def _own_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (a redis-server it started included)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def redis_mb(url: str) -> float:
    """Redis `used_memory` once the allocator has returned what it can."""
    client = redis.Redis.from_url(url)
    try:
        client.execute_command("MEMORY", "PURGE")
        return client.info("memory")["used_memory"] / 2**20
    finally:
        client.close()


def exposition_totals(text: str) -> dict[str, float]:
    """Each sample of a Prometheus exposition, summed over its labels."""
    totals: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] += sample.value
    return totals


def line_pool(count: int, *, backends: int = 20, paths: int = 500, minutes: int = 60, seed: int = 1,
              end: float | None = None) -> list[str]:
    """Realistic httplog lines spread over the last `minutes`, `backends` x `paths` distinct routes."""
    rng = random.Random(seed)
    end = end or time.time() - 5
    routes = [(f"be{i % backends}", f"/svc{i % backends}/res{i}") for i in range(paths)]
    out = []
    # Sorted like a real log: each batch covers a minute or two, not all sixty.
    for ts in sorted(end - rng.uniform(0, minutes * 60) for _ in range(count)):
        backend, path = routes[rng.randrange(paths)]
        status = rng.choices((200, 201, 404, 500, 503), (90, 5, 3, 1, 1))[0]
        ta = max(1, int(rng.lognormvariate(3.5, 0.8)))
        stamp = datetime.fromtimestamp(ts, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S")
        out.append(
            f"10.0.{rng.randrange(256)}.{rng.randrange(256)}:{rng.randrange(1024, 65535)} "
            f"[{stamp}.{int(ts * 1000) % 1000:03d}] fe_http {backend}/{backend}-{rng.randrange(3)} "
            f"0/0/1/{ta - 1}/{ta} {status} {rng.randrange(100, 9000)} - - ---- 10/8/4/2/0 0/0 "
            f'"GET {path}/{rng.randrange(10**6)}?q={rng.randrange(99)} HTTP/1.1"'
        )
    return out


def to_ndjson(line: str) -> bytes:
    """The same request as a JSON log entry, built from the raw line's fields."""
    head, _, request = line.partition(' "')
    parts = head.split(" ")
    stamp = datetime.strptime(parts[1][1:-1], "%d/%b/%Y:%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    timers = parts[4].split("/")
    return json.dumps({
        "time_local": stamp.isoformat(), "client_ip": parts[0].rsplit(":", 1)[0], "frontend_name": parts[2],
        "backend_name": parts[3].split("/")[0], "http_request": request.rstrip('"'), "status_code": int(parts[5]),
        "bytes_read": int(parts[6]), "time_request": int(timers[0]), "time_connect": int(timers[2]),
        "time_response": int(timers[3]), "time_active": int(timers[4]), "termination_state": parts[9],
    }).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]
