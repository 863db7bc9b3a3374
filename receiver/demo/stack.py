"""Prometheus and Alertmanager as child processes on loopback, configured from deploy/.

The demo and the end-to-end tests run what a deployment runs: deploy/prometheus and
deploy/alertmanager, with loopback addresses, short intervals and rules rendered with
test-sized windows (`RuleTiming`), so that an alert fires seconds after its cause.
Each program logs to a file of its own, kept for diagnosis.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import yaml
from agents import Thresholds
from aiohttp import ClientError, ClientSession, ClientTimeout

from ..rules import SCRAPE_JOB, RuleTiming, write_rules
from ..settings import THRESHOLD_SETTINGS, Settings

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS_CONFIG = DEPLOY_DIR / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY_DIR / "alertmanager" / "alertmanager.yml"
LOOPBACK = "127.0.0.1"

# The Debian package of each program, and the names its binary may have.
PROGRAMS = {
    "redis-server": ("redis-server",),
    "haproxy": ("haproxy",),
    "prometheus": ("prometheus",),
    "prometheus-alertmanager": ("prometheus-alertmanager", "alertmanager"),  # Debian's name, upstream's
}
ALERTING_PACKAGES = ("prometheus", "prometheus-alertmanager")

STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0


class StackError(RuntimeError):
    """A program did not start, or stopped while it should be running."""


def program(package: str) -> str | None:
    """The path of the binary of `package`, if it is on PATH."""
    return next(filter(None, map(shutil.which, PROGRAMS[package])), None)


def missing_programs(packages: tuple[str, ...] = tuple(PROGRAMS)) -> list[str]:
    """The programs of `packages` not on PATH, each with the Debian package that provides it."""
    return [f"{PROGRAMS[package][0]} (Debian package `{package}`)" for package in packages
            if program(package) is None]


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
    """One program, its output in a log file; stopped with SIGTERM, then SIGKILL."""

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


class ProcessGroup:
    """Child processes started in order and stopped in reverse; a probe fails fast when one dies."""

    def __init__(self, workdir: Path, log_dir: Path) -> None:
        # Absolute: Prometheus reads the paths in its configuration from the configuration's directory.
        self.workdir = workdir.resolve()
        self.log_dir = log_dir.resolve()
        self.config_dir = self.log_dir / "config"
        self.processes: list[ChildProcess] = []
        self._http: ClientSession | None = None

    @property
    def http(self) -> ClientSession:
        """A client for probing the programs; opened on first use, closed by `stop`."""
        if self._http is None:
            self._http = ClientSession(timeout=ClientTimeout(total=10))
        return self._http

    def spawn(self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> ChildProcess:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        process = ChildProcess(name, argv, log=self.log_dir / f"{name}.log", env=env, cwd=cwd)
        self.processes.append(process)
        process.start()
        return process

    async def retire(self, process: ChildProcess) -> None:
        """Stop one program for good: it is no longer expected to run."""
        self.processes.remove(process)
        await asyncio.to_thread(process.stop)

    def check_running(self) -> None:
        """Raise if a program has stopped on its own."""
        for process in self.processes:
            if process.exit_code is not None:
                raise StackError(f"{process.describe()}:\n{tail(process.log)}")

    async def stop(self) -> None:
        """Stop every program, the last started first; never raises."""
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(process.stop)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def until_ready(self, process: ChildProcess | None, what: str, probe: Callable[[], Awaitable[bool]], *,
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

    async def answers(self, url: str) -> bool:
        async with self.http.get(url) as response:
            return response.status == 200


class Alerting:
    """Prometheus scraping the service and evaluating its rules; Alertmanager calling its webhook."""

    def __init__(self, group: ProcessGroup, *, settings: Settings, timing: RuleTiming, service: str,
                 webhook_url: str, token: str, interval: str = "1s", thresholds: Thresholds | None = None) -> None:
        self.group = group
        self.settings = settings
        self.thresholds = thresholds or settings.thresholds  # of the rules; the analysis keeps the settings'
        self.timing = timing
        self.service = service
        self.webhook_url = webhook_url
        self.token = token
        self.interval = interval
        self.prometheus_port, self.alertmanager_port = free_ports(2)

    @property
    def prometheus_url(self) -> str:
        return f"http://{LOOPBACK}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{LOOPBACK}:{self.alertmanager_port}"

    async def start_prometheus(self) -> None:
        """Start Prometheus and wait until it has scraped the service."""
        rules_dir = self.group.config_dir / "rules"
        write_rules(self.thresholds, rules_dir, timing=self.timing, setting_names=THRESHOLD_SETTINGS)
        config = prometheus_config(
            yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8")),
            service=self.service, alertmanager=f"{LOOPBACK}:{self.alertmanager_port}",
            rule_files=str(rules_dir / "*.yml"), interval=self.interval,
        )
        config_file = self._write_config("prometheus.yml", config)
        process = self.group.spawn("prometheus", [
            program("prometheus") or "prometheus",
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.group.workdir / 'prometheus'}",
            f"--web.listen-address={LOOPBACK}:{self.prometheus_port}",
            f"--web.external-url={self.prometheus_url}",  # the alerts' generator URLs
        ])
        await self.group.until_ready(process, "Prometheus' /-/ready to answer 200",
                                     lambda: self.group.answers(f"{self.prometheus_url}/-/ready"))

        async def scraped() -> bool:
            return any(t["labels"].get("job") == SCRAPE_JOB and t["health"] == "up"
                       for t in (await self.prometheus_api("targets"))["activeTargets"])

        # Targets are discovered about 5 s after the start.
        await self.group.until_ready(process, f"Prometheus to scrape job {SCRAPE_JOB}", scraped)

    async def start_alertmanager(self) -> None:
        token_file = self.group.workdir / "webhook-token"
        token_file.write_text(self.token + "\n", encoding="utf-8")
        token_file.chmod(0o600)
        config = alertmanager_config(
            yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8")),
            webhook_url=self.webhook_url, token_file=str(token_file), interval=self.interval,
        )
        config_file = self._write_config("alertmanager.yml", config)
        process = self.group.spawn("alertmanager", [
            program("prometheus-alertmanager") or "alertmanager",
            f"--config.file={config_file}",
            f"--storage.path={self.group.workdir / 'alertmanager'}",
            f"--web.listen-address={LOOPBACK}:{self.alertmanager_port}",
            f"--web.external-url={self.alertmanager_url}",
            "--cluster.listen-address=",  # no HA peers: without it, it wants a private address to gossip on
        ])
        await self.group.until_ready(process, "Alertmanager's /-/ready to answer 200",
                                     lambda: self.group.answers(f"{self.alertmanager_url}/-/ready"))

    def _write_config(self, name: str, config: dict) -> Path:
        path = self.group.config_dir / name
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    async def prometheus_api(self, path: str, **params: str) -> dict:
        async with self.group.http.get(f"{self.prometheus_url}/api/v1/{path}", params=params) as response:
            response.raise_for_status()
            body = await response.json()
        if not isinstance(body, dict) or body.get("status") != "success":
            raise StackError(f"Prometheus answered /api/v1/{path} with {body!r}")
        return body["data"]

    async def alerts(self) -> list[dict]:
        """Prometheus' alerts, pending and firing."""
        return (await self.prometheus_api("alerts"))["alerts"]

    async def value(self, expr: str) -> float | None:
        """The value of a query that gives one series; None when it gives none."""
        result = (await self.prometheus_api("query", query=expr))["result"]
        return float(result[0]["value"][1]) if result else None
