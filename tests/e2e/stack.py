"""The whole stack on loopback for end-to-end tests: each program a child process logging to a file.

    traffic ──► haproxy ──► demo backend          redis-server
                  │ syslog (UDP)                        ▲
                  ▼                                     │
         incident-copilot serve ◄── POST /alerts ── alertmanager
                  ▲ GET /prometheus/metrics             ▲
                  └──────────── prometheus ─────────────┘

Every program runs as deploy/ and docs/deploy.md describe it, on free ports, with its data
in a private directory. The Prometheus and Alertmanager configurations are the ones in
deploy/, with loopback addresses, 1 s intervals and the short windows of `E2E_TIMING`, so an
alert fires seconds after its cause rather than minutes. Like the compose stack's `traffic`
service, `Traffic` sends requests through HAProxy at a steady rate from the start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import ClientError, ClientSession, ClientTimeout
from redis.asyncio import Redis
from redis.exceptions import RedisError

from receiver.demo.stack import (
    LOOPBACK,
    Alerting,
    ChildProcess,
    ProcessGroup,
    StackError,
    free_ports,
    missing_programs,
    program,
    tail,
)
from receiver.incidents import AlertStream
from receiver.rules import RuleTiming
from receiver.settings import Settings

__all__ = ["BACKEND", "E2E_TIMING", "Stack", "StackError", "missing_programs", "new_log_dir", "service_settings"]

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CONFIG = Path("deploy/haproxy/haproxy.cfg")  # relative to ROOT, as docs/deploy.md runs it
DEMO_BACKEND = Path("deploy/demo_backend.py")
LOG_ROOT = ROOT / ".ci-logs" / "e2e"

# Scrape and evaluation interval, and Alertmanager's group_wait and group_interval.
INTERVAL = "1s"
# Fifteen samples a window and a hold of five evaluations. The traffic baseline keeps its
# hour, so the traffic alerts stay silent in a Prometheus that has only just started.
E2E_TIMING = RuleTiming(window="15s", hold="5s", silence="15s", rejections="30s")
RPS = 25
BACKEND = "api"  # the backend of deploy/haproxy/haproxy.cfg
# What the service and the rules are configured with; everything else keeps its default.
SERVICE_SETTINGS = {
    "LOG_TIMEZONE": "UTC",  # HAProxy runs with TZ=UTC
    "MIN_REQUESTS_PER_MINUTE": "5",  # far below the test traffic, so the error alerts may fire
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
    "RECHECK_DELAY_SECONDS": "5",  # the check after a resolution, due well within the test's patience
}

STEADY_SECONDS = 60.0  # the first scrape comes about 5 s after the start
T = TypeVar("T")


class Stack:
    """Redis, the service, the demo backend behind HAProxy, Prometheus and Alertmanager, on loopback."""

    def __init__(self, workdir: Path, log_dir: Path, *, rps: float = RPS) -> None:
        self.workdir = workdir
        self.log_dir = log_dir
        self.postmortem_dir = log_dir / "post-mortems"
        self.token = secrets.token_urlsafe(24)
        (self.redis_port, self.service_port, self.syslog_port, self.backend_port,
         self.frontend_port) = free_ports(5)
        self.settings = service_settings()
        self.group = ProcessGroup(workdir, log_dir)
        self.alerting = Alerting(self.group, settings=self.settings, timing=E2E_TIMING,
                                 service=f"{LOOPBACK}:{self.service_port}", webhook_url=f"{self.service_url}/alerts",
                                 token=self.token, interval=INTERVAL)
        self.traffic = Traffic(self.frontend_url, rps)
        self._backend: ChildProcess | None = None

    # Addresses --------------------------------------------------------------------------

    @property
    def service_url(self) -> str:
        return f"http://{LOOPBACK}:{self.service_port}"

    @property
    def frontend_url(self) -> str:
        return f"http://{LOOPBACK}:{self.frontend_port}"

    @property
    def processes(self) -> list[ChildProcess]:
        return self.group.processes

    # Starting and stopping --------------------------------------------------------------

    async def start(self) -> None:
        """Start every program, each once the one it depends on answers, and the traffic."""
        self.postmortem_dir.mkdir(parents=True, exist_ok=True)
        await self._start_redis()
        await self._start_service()
        await self._start_backend_and_haproxy()
        await self.traffic.start()
        await self.alerting.start_prometheus()
        await self._until_steady()
        await self.alerting.start_alertmanager()

    async def stop(self) -> None:
        """Stop the traffic, then every program, the last started first; never raises."""
        with contextlib.suppress(Exception):
            await self.traffic.stop()
        await self.group.stop()

    async def _start_redis(self) -> None:
        data = self.workdir / "redis"
        data.mkdir()
        process = self.group.spawn("redis", [
            program("redis-server") or "redis-server", "--port", str(self.redis_port), "--bind", LOOPBACK,
            "--dir", str(data), "--save", "", "--appendonly", "no",
        ])

        async def ping() -> bool:
            client = Redis(host=LOOPBACK, port=self.redis_port, socket_connect_timeout=1)
            try:
                return bool(await client.ping())
            except (RedisError, OSError):
                return False
            finally:
                await client.aclose()

        await self.group.until_ready(process, "redis-server to answer PING", ping)

    async def _start_service(self) -> None:
        env = service_environment(os.environ, {
            **SERVICE_SETTINGS,
            "REDIS_URL": f"redis://{LOOPBACK}:{self.redis_port}/0",
            "HOST": LOOPBACK,
            "PORT": str(self.service_port),
            "SYSLOG_HOST": LOOPBACK,
            "SYSLOG_PORT": str(self.syslog_port),
            "WEBHOOK_TOKEN": self.token,
            "POSTMORTEM_DIR": str(self.postmortem_dir),
            "DATA_DIR": str(self.workdir / "var"),
        })
        # Run from the private directory, so no .env of the checkout is read.
        process = self.group.spawn("incident-copilot", [sys.executable, "-m", "receiver.cli", "serve"], env=env,
                                   cwd=self.workdir)
        await self.group.until_ready(process, "the service's /health to answer 200",
                                     lambda: self.group.answers(f"{self.service_url}/health"))

    async def _spawn_backend(self) -> ChildProcess:
        backend = self.group.spawn("demo-backend", [
            sys.executable, str(DEMO_BACKEND), "serve", "--host", LOOPBACK, "--port", str(self.backend_port),
        ], cwd=ROOT)
        await self.group.until_ready(backend, "the demo backend's /_demo/health to answer 200",
                                     lambda: self.group.answers(f"http://{LOOPBACK}:{self.backend_port}/_demo/health"))
        return backend

    async def _start_backend_and_haproxy(self) -> None:
        self._backend = await self._spawn_backend()
        haproxy = self.group.spawn("haproxy", [program("haproxy") or "haproxy", "-db", "-f", str(HAPROXY_CONFIG)],
                                   cwd=ROOT, env={
                                       **os.environ,
                                       "TZ": "UTC",
                                       "FRONTEND_BIND": f"{LOOPBACK}:{self.frontend_port}",
                                       "DEMO_BACKEND_ADDR": f"{LOOPBACK}:{self.backend_port}",
                                       "SYSLOG_TARGET": f"{LOOPBACK}:{self.syslog_port}",
                                   })
        # /_demo/ reaches the backend once HAProxy counts it up, and is never logged.
        await self.group.until_ready(haproxy, "HAProxy to pass /_demo/health to the backend",
                                     lambda: self.group.answers(f"{self.frontend_url}/_demo/health"))

    async def _until_steady(self) -> None:
        """Wait until Prometheus has no alert pending or firing.

        The stack starts from nothing: until Prometheus' first scrape, IngestionDown holds.
        Alertmanager starts afterwards, as if the stack had been running steadily for long:
        an alert Prometheus could not send has resolved by then, and Alertmanager never
        notifies a group it has only heard of as resolved.
        """
        seen: dict[str, object] = {}

        async def steady() -> bool:
            self.traffic.check_running()
            seen["alerts"] = alerts = [(a["labels"]["alertname"], a["state"]) for a in await self.prometheus_alerts()]
            return not alerts

        try:
            await self.group.until_ready(None, "no alert pending or firing", steady, timeout=STEADY_SECONDS)
        except StackError as exc:
            raise StackError(f"{exc}; last seen: {seen}") from None

    async def stop_backend(self) -> None:
        """Stop the demo backend, as a crash would; HAProxy answers 503 itself."""
        if self._backend is not None:
            await self.group.retire(self._backend)
            self._backend = None

    async def start_backend(self) -> None:
        """Start the demo backend again on its port; HAProxy's checks bring it back within seconds."""
        self._backend = await self._spawn_backend()

    # Using the stack --------------------------------------------------------------------

    @property
    def http(self) -> ClientSession:
        return self.group.http

    def check_running(self) -> None:
        """Raise if a program, or the traffic, has stopped on its own."""
        self.group.check_running()
        self.traffic.check_running()

    async def get_json(self, url: str, **params: str) -> Any:
        async with self.http.get(url, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def prometheus_alerts(self) -> list[dict]:
        return await self.alerting.alerts()

    async def set_demo_mode(self, mode: str, **params: str) -> dict:
        """Switch the demo backend through HAProxy, as docs/deploy.md does (`PUT /_demo/mode/...`)."""
        async with self.http.put(f"{self.frontend_url}/_demo/mode/{mode}", params=params) as response:
            body = await response.json()
            assert response.status == 200, body
            return body

    async def incidents(self) -> list[dict]:
        return await self.get_json(f"{self.service_url}/incidents")

    async def incident(self, ident: str) -> dict:
        return await self.get_json(f"{self.service_url}/incidents/{ident}")

    async def settled(self) -> None:
        """Wait until the service acknowledged every notification it took, so its post-mortems are written."""
        async def depth():
            client = Redis(host=LOOPBACK, port=self.redis_port, decode_responses=True)
            try:
                return await AlertStream(client).depth()
            finally:
                await client.aclose()

        await self.wait_for("every notification to be processed", depth,
                            lambda found: found.waiting == 0 and found.pending == 0, timeout=60)

    async def postmortem(self, ident: str) -> str:
        async with self.http.get(f"{self.service_url}/incidents/{ident}/postmortem") as response:
            response.raise_for_status()
            assert response.content_type == "text/markdown"
            return await response.text()

    async def wait_for(self, what: str, probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], *,
                       timeout: float, interval: float = 0.5) -> T:
        """Probe until `until(value)` holds; fail with the last value seen after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        seen: object = "nothing yet"
        while True:
            self.check_running()
            value = await probe()
            if until(value):
                return value
            seen = value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {seen!r}")
            await asyncio.sleep(interval)

    def log_report(self, lines: int = 40) -> str:
        """Where the logs are, and the last lines of each program's."""
        parts = [f"logs, generated configuration and post-mortems of this run: {self.log_dir}",
                 f"traffic answers so far: {dict(self.traffic.answers)}"]
        for process in self.processes:
            parts.append(f"--- {process.describe()}, last {lines} lines ---\n{tail(process.log, lines)}")
        return "\n".join(parts)


def service_settings() -> Settings:
    """The settings the service runs with, and the rules are rendered from."""
    return Settings(_env_file=None, **{name.lower(): value for name, value in SERVICE_SETTINGS.items()})


def service_environment(ambient: Mapping[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    """The ambient environment without any of the service's settings or model keys, plus `settings`."""
    own = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in ambient.items() if k.upper() not in own and not k.upper().startswith("ANTHROPIC_")}
    # The service is started from another directory: keep the checkout importable however it is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), ambient.get("PYTHONPATH")]))
    return {**env, **settings}


class Traffic:
    """GET requests through HAProxy at a steady rate, as users would send them; counts the answers."""

    PATHS = ("/api/items", "/api/items/42", "/api/orders", "/api/orders/7/lines", "/api/search?q=e2e")

    def __init__(self, base_url: str, rps: float, *, max_in_flight: int = 200) -> None:
        self.base_url = base_url.rstrip("/")
        self.rps = rps
        self.max_in_flight = max_in_flight
        self.answers: collections.Counter[str] = collections.Counter()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._send(), name="e2e-traffic")

    def check_running(self) -> None:
        if self._task is not None and self._task.done():
            reason = "cancelled" if self._task.cancelled() else repr(self._task.exception())
            raise StackError(f"the traffic stopped: {reason}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _send(self) -> None:
        rng = random.Random(7)
        in_flight: set[asyncio.Task[None]] = set()

        async def one(session: ClientSession, path: str) -> None:
            try:
                async with session.get(self.base_url + path) as response:
                    await response.read()
                    self.answers[str(response.status)] += 1
            except (ClientError, asyncio.TimeoutError) as exc:
                self.answers[type(exc).__name__] += 1

        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            try:
                start = time.monotonic()
                sent = 0
                while True:
                    # Requests start on schedule however slowly the earlier ones answer.
                    sent += 1
                    await asyncio.sleep(max(0.0, start + sent / self.rps - time.monotonic()))
                    if len(in_flight) >= self.max_in_flight:
                        self.answers["skipped"] += 1
                        continue
                    task = asyncio.create_task(one(session, rng.choice(self.PATHS)))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
            finally:
                for task in in_flight:
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)


def new_log_dir(name: str) -> Path:
    """A fresh directory under .ci-logs/e2e/ (gitignored); under the system's temp dir if that is read-only."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    for root in (LOG_ROOT, Path(os.environ.get("TMPDIR", "/tmp")) / "incident-copilot-e2e"):
        directory = root / f"{stamp}-{safe}-{os.getpid()}"
        try:
            directory.mkdir(parents=True)
        except OSError:
            continue
        return directory
    raise StackError("no writable directory for the logs of the end-to-end stack")
