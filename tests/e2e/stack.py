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
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import ClientError, ClientSession, ClientTimeout
from redis.asyncio import Redis
from redis.exceptions import RedisError

from receiver.rules import BACKEND_BASELINE, BACKEND_REQUESTS, SCRAPE_JOB, RuleTiming, write_rules
from receiver.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CONFIG = Path("deploy/haproxy/haproxy.cfg")  # relative to ROOT, as docs/deploy.md runs it
DEMO_BACKEND = Path("deploy/demo_backend.py")
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
LOG_ROOT = ROOT / ".ci-logs" / "e2e"
LOOPBACK = "127.0.0.1"

# The Debian package of each program the stack runs, and the names its binary may have.
PROGRAMS = {
    "redis-server": ("redis-server",),
    "haproxy": ("haproxy",),
    "prometheus": ("prometheus",),
    "prometheus-alertmanager": ("prometheus-alertmanager", "alertmanager"),  # Debian's name, upstream's
}

# Scrape and evaluation interval, and Alertmanager's group_wait and group_interval.
INTERVAL = "1s"
# Fifteen samples a window, a hold of five evaluations, and a traffic baseline that a
# steady rate fills in 40 s.
E2E_TIMING = RuleTiming(window="15s", hold="5s", silence="15s", rejections="30s", baseline="30s",
                        baseline_offset="10s")
RPS = 25
BACKEND = "api"  # the backend of deploy/haproxy/haproxy.cfg
# What the service and the rules are configured with; everything else keeps its default.
SERVICE_SETTINGS = {
    "LOG_TIMEZONE": "UTC",  # HAProxy runs with TZ=UTC
    "MIN_REQUESTS_PER_MINUTE": "5",  # far below the test traffic, so the error alerts may fire
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "INFO",
}

STARTUP_SECONDS = 30.0
STEADY_SECONDS = 90.0  # the baseline fills in 40 s
STOP_SECONDS = 10.0
T = TypeVar("T")


class StackError(RuntimeError):
    """A program of the stack did not start, or stopped while it should be running."""


def missing_programs() -> list[str]:
    """The programs not on PATH, each with the Debian package that provides it."""
    return [f"{names[0]} (Debian package `{package}`)" for package, names in PROGRAMS.items()
            if program(package) is None]


def program(package: str) -> str | None:
    """The path of the binary of `package`, if it is on PATH."""
    return next(filter(None, map(shutil.which, PROGRAMS[package])), None)


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports, each free for TCP and UDP alike (the syslog listener takes both)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(count * 20):
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(tcp)
            tcp.bind((LOOPBACK, 0))  # held until all are chosen, so none is chosen twice
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(udp)
            try:
                udp.bind((LOOPBACK, port))
            except OSError:
                continue
            ports.append(port)
            if len(ports) == count:
                return ports
        raise StackError(f"no {count} free loopback ports for both TCP and UDP")
    finally:
        for sock in held:
            sock.close()


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


class ChildProcess:
    """One program of the stack, its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], *, log: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"$ {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          env=self.env, cwd=self.cwd)

    @property
    def exit_code(self) -> int | None:
        """None while it runs (or before it started)."""
        return None if self.popen is None else self.popen.poll()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM and wait (HAProxy and Prometheus take about a second), SIGKILL after `timeout`."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def describe(self) -> str:
        if self.popen is None:
            state = "not started"
        elif (code := self.popen.poll()) is None:
            state = f"running, pid {self.popen.pid}"
        else:
            state = f"exited with {code}"
        return f"{self.name} ({state}), log {self.log}"


class Stack:
    """Redis, the service, the demo backend behind HAProxy, Prometheus and Alertmanager, on loopback."""

    def __init__(self, workdir: Path, log_dir: Path, *, rps: float = RPS) -> None:
        self.workdir = workdir
        self.log_dir = log_dir
        self.config_dir = log_dir / "config"
        self.postmortem_dir = log_dir / "post-mortems"
        self.token = secrets.token_urlsafe(24)
        (self.redis_port, self.service_port, self.syslog_port, self.backend_port, self.frontend_port,
         self.prometheus_port, self.alertmanager_port) = free_ports(7)
        self.settings = service_settings()
        self.processes: list[ChildProcess] = []
        self.traffic = Traffic(self.frontend_url, rps)
        self._http: ClientSession | None = None

    # Addresses --------------------------------------------------------------------------

    @property
    def service_url(self) -> str:
        return f"http://{LOOPBACK}:{self.service_port}"

    @property
    def frontend_url(self) -> str:
        return f"http://{LOOPBACK}:{self.frontend_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{LOOPBACK}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{LOOPBACK}:{self.alertmanager_port}"

    # Starting and stopping --------------------------------------------------------------

    async def start(self) -> None:
        """Start every program, each once the one it depends on answers, and the traffic."""
        for directory in (self.config_dir, self.postmortem_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._http = ClientSession(timeout=ClientTimeout(total=10))
        await self._start_redis()
        await self._start_service()
        await self._start_backend_and_haproxy()
        await self.traffic.start()
        await self._start_prometheus()
        await self._until_steady()
        await self._start_alertmanager()

    async def stop(self) -> None:
        """Stop the traffic, then every program, the last started first; never raises."""
        with contextlib.suppress(Exception):
            await self.traffic.stop()
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(process.stop)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _spawn(self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None,
               cwd: Path | None = None) -> ChildProcess:
        process = ChildProcess(name, argv, log=self.log_dir / f"{name}.log", env=env, cwd=cwd)
        self.processes.append(process)
        process.start()
        return process

    async def _start_redis(self) -> None:
        data = self.workdir / "redis"
        data.mkdir()
        process = self._spawn("redis", [
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

        await self._until_ready(process, "redis-server to answer PING", ping)

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
        process = self._spawn("incident-copilot", [sys.executable, "-m", "receiver.cli", "serve"], env=env,
                              cwd=self.workdir)
        await self._until_ready(process, "the service's /health to answer 200",
                                lambda: self._answers(f"{self.service_url}/health"))

    async def _start_backend_and_haproxy(self) -> None:
        backend = self._spawn("demo-backend", [
            sys.executable, str(DEMO_BACKEND), "serve", "--host", LOOPBACK, "--port", str(self.backend_port),
        ], cwd=ROOT)
        await self._until_ready(backend, "the demo backend's /_demo/health to answer 200",
                                lambda: self._answers(f"http://{LOOPBACK}:{self.backend_port}/_demo/health"))
        haproxy = self._spawn("haproxy", [program("haproxy") or "haproxy", "-db", "-f", str(HAPROXY_CONFIG)],
                              cwd=ROOT, env={
                                  **os.environ,
                                  "TZ": "UTC",
                                  "FRONTEND_BIND": f"{LOOPBACK}:{self.frontend_port}",
                                  "DEMO_BACKEND_ADDR": f"{LOOPBACK}:{self.backend_port}",
                                  "SYSLOG_TARGET": f"{LOOPBACK}:{self.syslog_port}",
                              })
        # /_demo/ reaches the backend once HAProxy counts it up, and is never logged.
        await self._until_ready(haproxy, "HAProxy to pass /_demo/health to the backend",
                                lambda: self._answers(f"{self.frontend_url}/_demo/health"))

    async def _start_prometheus(self) -> None:
        rules_dir = self.config_dir / "rules"
        write_rules(self.settings, rules_dir, timing=E2E_TIMING)
        config = prometheus_config(
            yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8")),
            service=f"{LOOPBACK}:{self.service_port}", alertmanager=f"{LOOPBACK}:{self.alertmanager_port}",
            rule_files=str(rules_dir / "*.yml"), interval=INTERVAL,
        )
        config_file = self.config_dir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        process = self._spawn("prometheus", [
            program("prometheus") or "prometheus",
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.workdir / 'prometheus'}",
            f"--web.listen-address={LOOPBACK}:{self.prometheus_port}",
            f"--web.external-url={self.prometheus_url}",  # the alerts' generator URLs
        ])
        await self._until_ready(process, "Prometheus' /-/ready to answer 200",
                                lambda: self._answers(f"{self.prometheus_url}/-/ready"))

        async def scraped() -> bool:
            return any(t["labels"].get("job") == SCRAPE_JOB and t["health"] == "up"
                       for t in (await self.prometheus_api("targets"))["activeTargets"])

        # Targets are discovered about 5 s after the start.
        await self._until_ready(process, f"Prometheus to scrape job {SCRAPE_JOB}", scraped)

    async def _until_steady(self) -> None:
        """Wait until the traffic fills the baseline and no alert is pending or firing.

        The stack starts from nothing. Until Prometheus' first scrape, IngestionDown holds.
        Until the baseline window is covered by samples, `rate()` divides the requests it saw
        by the whole window, so the baseline reads low and BackendTrafficSpike fires on steady
        traffic (as the production rules do for about 20 minutes after Prometheus starts with
        empty storage). Alertmanager starts afterwards, as if the stack had been running
        steadily for long: an alert Prometheus could not send has resolved by then, and
        Alertmanager never notifies a group it has only heard of as resolved.
        """
        ratio = f'{BACKEND_REQUESTS}{{backend="{BACKEND}"}} / {BACKEND_BASELINE}'

        seen: dict[str, object] = {}

        async def steady() -> bool:
            seen["ratio"] = value = await self.prometheus_value(ratio)
            seen["alerts"] = alerts = [(a["labels"]["alertname"], a["state"]) for a in await self.prometheus_alerts()]
            return value is not None and value < 1.5 and not alerts

        try:
            await self._until_ready(None, f"steady traffic ({ratio} below 1.5, no alert pending or firing)",
                                    steady, timeout=STEADY_SECONDS)
        except StackError as exc:
            raise StackError(f"{exc}; last seen: {seen}") from None

    async def _start_alertmanager(self) -> None:
        token_file = self.workdir / "webhook-token"
        token_file.write_text(self.token + "\n", encoding="utf-8")
        config = alertmanager_config(
            yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8")),
            webhook_url=f"{self.service_url}/alerts", token_file=str(token_file), interval=INTERVAL,
        )
        config_file = self.config_dir / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        process = self._spawn("alertmanager", [
            program("prometheus-alertmanager") or "alertmanager",
            f"--config.file={config_file}",
            f"--storage.path={self.workdir / 'alertmanager'}",
            f"--web.listen-address={LOOPBACK}:{self.alertmanager_port}",
            f"--web.external-url={self.alertmanager_url}",
            "--cluster.listen-address=",  # no HA peers: without it, it wants a private address to gossip on
        ])
        await self._until_ready(process, "Alertmanager's /-/ready to answer 200",
                                lambda: self._answers(f"{self.alertmanager_url}/-/ready"))

    async def _until_ready(self, process: ChildProcess | None, what: str, probe: Callable[[], Awaitable[bool]], *,
                           timeout: float = STARTUP_SECONDS) -> None:
        """Probe until it answers True; fail when `process` (any, if None) stops or after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if process is None:
                self.check_running()
            elif process.exit_code is not None:
                raise StackError(f"{process.describe()} while waiting for {what}:\n{tail(process.log)}")
            with contextlib.suppress(ClientError, asyncio.TimeoutError, OSError, KeyError):
                if await probe():
                    return
            if time.monotonic() > deadline:
                where = "" if process is None else f"; {process.describe()}:\n{tail(process.log)}"
                raise StackError(f"timed out after {timeout:.0f} s waiting for {what}{where}")
            await asyncio.sleep(0.2)

    async def _answers(self, url: str) -> bool:
        async with self.http.get(url) as response:
            return response.status == 200

    # Using the stack --------------------------------------------------------------------

    @property
    def http(self) -> ClientSession:
        if self._http is None:
            raise StackError("the stack is not started")
        return self._http

    def check_running(self) -> None:
        """Raise if a program, or the traffic, has stopped on its own."""
        for process in self.processes:
            if process.exit_code is not None:
                raise StackError(f"{process.describe()}:\n{tail(process.log)}")
        self.traffic.check_running()

    async def get_json(self, url: str, **params: str) -> Any:
        async with self.http.get(url, params=params) as response:
            response.raise_for_status()
            return await response.json()

    async def prometheus_api(self, path: str, **params: str) -> dict:
        body = await self.get_json(f"{self.prometheus_url}/api/v1/{path}", **params)
        assert isinstance(body, dict) and body.get("status") == "success", body
        return body["data"]

    async def prometheus_alerts(self) -> list[dict]:
        return (await self.prometheus_api("alerts"))["alerts"]

    async def prometheus_value(self, expr: str) -> float | None:
        """The value of a query that gives one series; None when it gives none."""
        result = (await self.prometheus_api("query", query=expr))["result"]
        return float(result[0]["value"][1]) if result else None

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


def prometheus_config(deployed: dict, *, service: str, alertmanager: str, rule_files: str, interval: str) -> dict:
    """deploy/prometheus/prometheus.yml with loopback addresses, local rule files and short intervals."""
    config = dict(deployed)
    config["global"] = {**deployed["global"], "scrape_interval": interval, "evaluation_interval": interval,
                        "scrape_timeout": interval}
    config["rule_files"] = [rule_files]
    (alertmanagers,) = deployed["alerting"]["alertmanagers"]
    config["alerting"] = {**deployed["alerting"],
                          "alertmanagers": [{**alertmanagers, "static_configs": [{"targets": [alertmanager]}]}]}
    (job,) = deployed["scrape_configs"]
    if job["job_name"] != SCRAPE_JOB:
        raise StackError(f"deploy/prometheus/prometheus.yml scrapes job {job['job_name']!r}; the rules read "
                         f"{SCRAPE_JOB!r}")
    config["scrape_configs"] = [{**job, "static_configs": [{"targets": [service]}]}]
    return config


def alertmanager_config(deployed: dict, *, webhook_url: str, token_file: str, interval: str) -> dict:
    """deploy/alertmanager/alertmanager.yml sending to `webhook_url`, grouping within `interval`."""
    config = dict(deployed)
    config["route"] = {**deployed["route"], "group_wait": interval, "group_interval": interval,
                       "repeat_interval": "4h"}
    receivers = []
    for receiver in deployed["receivers"]:
        hooks = []
        for hook in receiver.get("webhook_configs", []):
            http_config = hook.get("http_config", {})
            authorization = {**http_config.get("authorization", {}), "credentials_file": token_file}
            hooks.append({**hook, "url": webhook_url,
                          "http_config": {**http_config, "authorization": authorization}})
        receivers.append({**receiver, "webhook_configs": hooks})
    config["receivers"] = receivers
    return config


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
