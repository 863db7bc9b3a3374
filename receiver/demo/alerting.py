"""The demo's incident delivered through real Prometheus and Alertmanager.

HAProxy lines of the scenario are sent as they happen, healthy, then in the incident, then
healed. Prometheus scrapes the service every second and evaluates the rules of
alert_rules/ with 10-second windows; Alertmanager, configured as deploy/ configures it,
calls the webhook with the bearer token. Nothing is posted on their behalf.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path

import aiohttp
from ingestion import LiveTraffic

from .stack import (
    ALERTING_PACKAGES,
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    Alerting,
    ProcessGroup,
    missing_programs,
)
from ..rules import RuleTiming
from ..settings import Settings

# Windows of seconds rather than minutes; the traffic baseline keeps its hour, so the traffic
# alerts stay silent in a Prometheus that has only just started.
DEMO_TIMING = RuleTiming(window="10s", hold="5s", silence="20s", rejections="30s")
# A 10-second window of a smaller backend holds a few dozen requests, whose P99 is their slowest
# one: one refused connection (1.5 s of retries) would page. The demo's rules alert only on
# backends busier than this, which leaves api (about 600 a minute) and quiets the others.
DEMO_RULE_FLOOR_PER_MINUTE = 480.0
FEED_SECONDS = 0.5
# Until the deploy the feed runs this far behind the clock, as a log shipper with a backlog would;
# at the deploy the backlog arrives at once, already failing. The analysis reads minutes: an
# incident seconds old would fill half of one and blur its onset, where this one is minutes old
# in the logs when its first alert fires.
LAG_SECONDS = 150.0
QUIET_SECONDS = 40.0
FIRE_SECONDS = 60.0
RESOLVE_SECONDS = 90.0


def unavailable() -> str | None:
    """Why the demo cannot run Prometheus and Alertmanager here; None when it can."""
    missing = missing_programs(ALERTING_PACKAGES)
    if missing:
        return f"not installed: {', '.join(missing)}"
    absent = [str(path) for path in (PROMETHEUS_CONFIG, ALERTMANAGER_CONFIG) if not path.is_file()]
    return f"configuration not found: {', '.join(absent)}" if absent else None


class LiveFeed:
    """Posts the scenario's lines to `POST /logs` every half second, for the half second just gone.

    Until the incident starts, it stays `lag` seconds behind the clock; then it catches up at once.
    """

    def __init__(self, session: aiohttp.ClientSession, base: str, traffic: LiveTraffic, start: float,
                 lag: float = 0.0) -> None:
        self.session = session
        self.base = base
        self.traffic = traffic
        self.incident = False
        self.lag = lag
        self.sent = 0
        self._until = start
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="demo-feed")

    def check(self) -> None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            raise RuntimeError(f"sending the lines failed: {self._task.exception()!r}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FEED_SECONDS)
            if self.incident:
                self.lag = 0.0
            now = time.time() - self.lag
            lines = self.traffic.lines(self._until, now, incident=self.incident)
            self._until = max(self._until, now)
            if not lines:
                continue
            body = "\n".join(lines) + "\n"
            async with self.session.post(f"{self.base}/logs", data=body,
                                         headers={"Content-Type": "text/plain"}) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"ingestion refused the lines: {resp.status} {await resp.text()}")
            self.sent += len(lines)


class Progress:
    """Prints each change of Prometheus' alerts and of the service's incidents, with the time it was seen."""

    def __init__(self, session: aiohttp.ClientSession, base: str, alerting: Alerting, feed: LiveFeed) -> None:
        self.session = session
        self.base = base
        self.alerting = alerting
        self.feed = feed
        self.started = time.monotonic()
        self._seen: set[tuple[str, ...]] = set()

    async def until(self, what: str, done: Callable[[list[dict], list[dict]], bool], timeout: float, *,
                    show: bool = True) -> list[dict]:
        """Poll until `done(alerts, incidents)`, printing every new state seen; answers the incidents."""
        deadline = time.monotonic() + timeout
        while True:
            self.alerting.group.check_running()
            self.feed.check()
            alerts, incidents = await self.alerting.alerts(), await self._incidents()
            if show:
                self._show(alerts, incidents)
            if done(alerts, incidents):
                return incidents
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                   f"logs of Prometheus and Alertmanager: {self.alerting.group.log_dir}")
            await asyncio.sleep(0.25)

    async def sleep(self, seconds: float) -> None:
        """Wait, still failing fast if Prometheus, Alertmanager or the feed stops."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.alerting.group.check_running()
            self.feed.check()
            await asyncio.sleep(min(0.25, left))

    async def _incidents(self) -> list[dict]:
        async with self.session.get(f"{self.base}/incidents") as resp:
            resp.raise_for_status()
            rows = await resp.json()
        return [{**row, **await self._incident(row["id"])} for row in rows]  # rows name the alerts

    async def _incident(self, ident: str) -> dict:
        async with self.session.get(f"{self.base}/incidents/{ident}") as resp:
            resp.raise_for_status()
            return await resp.json()

    def _show(self, alerts: list[dict], incidents: list[dict]) -> None:
        for alert in alerts:
            labels = alert["labels"]
            self._say(("alert", labels["alertname"], labels.get("backend", ""), alert["state"]),
                      f"Prometheus: {labels['alertname']} on {labels.get('backend', '-')} is {alert['state']}")
        for incident in incidents:
            names = ", ".join(incident["alertnames"])
            self._say(("incident", incident["id"]), f"Alertmanager -> POST /alerts: incident {incident['id']} "
                                                    f"opened ({names})")
            if incident.get("report"):
                report = incident["report"]
                self._say(("diagnosed", incident["id"]),
                          f"incident {incident['id']} diagnosed ({report['synthesis']['mode']} mode): "
                          f"{report['title']}")
            if incident["status"] == "resolved":
                self._say(("resolved", incident["id"]), f"Alertmanager -> POST /alerts: incident {incident['id']} "
                                                        "resolved")

    def _say(self, key: tuple[str, ...], text: str) -> None:
        if key not in self._seen:
            self._seen.add(key)
            print(f"    {time.monotonic() - self.started:5.1f} s  {text}", flush=True)


async def deliver_through_alerting(session: aiohttp.ClientSession, base: str, *, port: int, settings: Settings,
                                   token: str, data_dir: Path, traffic: LiveTraffic, backend: str,
                                   step: Callable[[str], None]) -> list[dict]:
    """Run the incident live until Alertmanager has resolved it; answers the incidents it opened."""
    group = ProcessGroup(data_dir / "alerting", data_dir / "logs")
    group.workdir.mkdir(parents=True, exist_ok=True)
    alerting = Alerting(group, settings=settings, timing=DEMO_TIMING, service=f"127.0.0.1:{port}",
                        webhook_url=f"{base}/alerts", token=token,
                        thresholds=replace(settings.thresholds, min_requests_per_minute=DEMO_RULE_FLOOR_PER_MINUTE))
    feed = LiveFeed(session, base, traffic, time.time() - LAG_SECONDS, lag=LAG_SECONDS)
    progress = Progress(session, base, alerting, feed)
    feed.start()
    try:
        step(f"starting Prometheus ({alerting.prometheus_url}): 1 s scrapes, the rules of alert_rules/ "
             f"with {DEMO_TIMING.window} windows and {DEMO_TIMING.hold} holds")
        await alerting.start_prometheus()
        await progress.until("a quiet start (no alert pending or firing)",
                             lambda alerts, _: not alerts, QUIET_SECONDS, show=False)
        step(f"starting Alertmanager ({alerting.alertmanager_url}), its webhook POST {base}/alerts with the token")
        await alerting.start_alertmanager()

        step(f"the deploy went out {LAG_SECONDS / 60:g} min ago: {backend} slows down and fails, and the log "
             "shipper's backlog of it arrives now; waiting for the alerts and the analysis")
        feed.incident = True
        incidents = await progress.until("the alert to reach the service and its analysis",
                                         lambda _, found: bool(found) and all(i.get("report") for i in found),
                                         FIRE_SECONDS)
        # The check after the resolution reads whole minutes: the rollback lands on a minute's
        # start, so the minute it reads holds only healthy requests.
        wait = 60.0 - time.time() % 60.0
        rollback = time.strftime("%H:%M:%S", time.gmtime(time.time() + wait))
        step(f"rolling back, at the start of the next minute ({rollback} UTC, in {wait:.0f} s): {backend} is "
             "healthy again; waiting for the alerts to resolve and the check after the resolution")
        await progress.sleep(wait)
        feed.incident = False
        opened = {i["id"] for i in incidents}
        return await progress.until(
            "the resolution", lambda _, found: {i["id"] for i in found} >= opened and all(
                i["status"] == "resolved" and i.get("recheck") is not None for i in found if i["id"] in opened),
            RESOLVE_SECONDS)
    finally:
        await feed.stop()
        await group.stop()
        print(f"    {feed.sent:,} lines sent live; logs of Prometheus and Alertmanager in {group.log_dir}")

