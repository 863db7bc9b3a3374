"""The incident worker: takes stored notifications from the stream and turns them into incidents.

For each notification, `IncidentWorker.handle` runs the stages after the HTTP edge's validate and
persist: dedup (the lifecycle decision, saved atomically) → analyse (or recheck after a
resolution) → render (the post-mortem) → record (acknowledge, count). The entry is acknowledged
only after the incident is saved, so a worker that dies leaves its entry pending, and another
worker reclaims it; every stage can run twice without doing anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, ConnectionError as RedisConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agents import AnalysisRequest, Report, SignalsUnavailable

from ..settings import Settings
from . import lifecycle
from .lifecycle import Action, Decision, Policy, Reason
from .metrics import IncidentMetrics
from .model import Delivery, Incident
from .postmortem import PostmortemWriter
from .repository import IncidentRepository
from .stream import AlertStream, Undecodable

log = logging.getLogger(__name__)

Analyse = Callable[[AnalysisRequest], Awaitable[Report]]
# Failures a later attempt can get past: the entry is left pending and retried, never recorded as final.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ConnectionRefusedError)
# An analysis that could not read the metrics is tried again (up to `max_deliveries`), not recorded as failed.
ANALYSIS_RETRIES = (*TRANSIENT, SignalsUnavailable)
INDEX_LIMIT = 1000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class IncidentAnalysis:
    """How incidents are analysed: `analyse` when alerts fire or join, `recheck` (rules only) after resolution.

    Without `recheck`, the check after a resolution calls `analyse` too.
    """

    analyse: Analyse
    recheck: Analyse | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """A notification's lifecycle decision and the group's incident before and after it (None: unchanged)."""

    decision: Decision
    before: Incident | None
    after: Incident | None

    @property
    def touches_incident(self) -> bool:
        """Written now, or written by an earlier attempt whose work may be unfinished."""
        return self.after is not None or self.decision.reason is Reason.ALREADY_APPLIED


class IncidentWorker:
    def __init__(
        self,
        stream: AlertStream,
        incidents: IncidentRepository,
        analysis: IncidentAnalysis,
        *,
        postmortems: PostmortemWriter | None = None,
        metrics: IncidentMetrics | None = None,
        consumer: str | None = None,
        concurrency: int = 2,
        claim_min_idle: float = 60.0,
        block_seconds: float = 1.0,
        max_deliveries: int = 5,
        housekeeping_seconds: float = 30.0,
        retry_seconds: tuple[float, float] = (0.5, 10.0),
        policy: Policy = lifecycle.DEFAULT_POLICY,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.stream = stream
        self.incidents = incidents
        self.analysis = analysis
        self.postmortems = postmortems
        self.metrics = metrics
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.concurrency = concurrency
        self.claim_min_idle = claim_min_idle
        self.block_seconds = block_seconds
        self.max_deliveries = max_deliveries
        self.housekeeping_seconds = housekeeping_seconds
        self.retry_seconds = retry_seconds
        self.policy = policy
        self._now = now
        self._analyses = asyncio.Semaphore(concurrency)
        self._jobs: dict[str, asyncio.Task] = {}
        self._slot_free = asyncio.Event()
        self._group_order: dict[str, list] = {}
        self._group_ready = False
        self._cursor = "0-0"
        self._next_reclaim = 0.0
        self._next_housekeeping = 0.0

    # The loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Take and process notifications until cancelled, at most `concurrency` at once."""
        log.info("incident worker started", extra={"consumer": self.consumer, "concurrency": self.concurrency})
        keep_alive = asyncio.create_task(self._keep_alive())
        delay = self.retry_seconds[0]
        me = asyncio.current_task()
        try:
            while True:
                if me is not None and me.cancelling():
                    # A cancellation swallowed on the way (a client library turning it into a
                    # timeout or an empty read) must still stop the worker.
                    raise asyncio.CancelledError
                try:
                    await self._cycle()
                    delay = self.retry_seconds[0]
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    self._group_ready = False  # Redis lost the stream (restarted without persistence)
                except TRANSIENT as exc:
                    log.warning("redis unavailable; incident worker retries in %.1f s: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_seconds[1])
        finally:
            running = [keep_alive, *self._jobs.values()]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _cycle(self) -> None:
        if not self._group_ready:
            await self.stream.ensure_group()
            self._group_ready = True
        while len(self._jobs) >= self.concurrency:
            self._slot_free.clear()
            await self._slot_free.wait()
        clock = time.monotonic()
        if clock >= self._next_housekeeping:
            self._next_housekeeping = clock + self.housekeeping_seconds
            await self._housekeeping()
        free = self.concurrency - len(self._jobs)
        entries: list[Delivery | Undecodable] = []
        if clock >= self._next_reclaim:
            self._cursor, entries = await self.stream.reclaim(
                self.consumer, min_idle_ms=int(self.claim_min_idle * 1000), count=free, cursor=self._cursor)
            if self._cursor == "0-0":  # scanned the whole pending list: wait before the next pass
                self._next_reclaim = clock + min(max(self.claim_min_idle / 2, 0.05), 30.0)
            entries = [e for e in entries if e.entry_id not in self._jobs]
            entries = [e for e in entries if not await self._gave_up(e)]
        if not entries:
            entries = await self.stream.read(self.consumer, count=free, block_ms=int(self.block_seconds * 1000))
            waited = time.monotonic() - clock
            if not entries and waited < self.block_seconds:
                # A server that answers an empty blocking read at once (fakes, proxies) must not make this spin.
                await asyncio.sleep(self.block_seconds - waited)
        for entry in entries:
            self._start(entry)

    def _start(self, entry: Delivery | Undecodable) -> None:
        task = asyncio.create_task(self._job(entry), name=f"incident-job-{entry.entry_id}")
        self._jobs[entry.entry_id] = task

        def finished(_: asyncio.Task) -> None:
            self._jobs.pop(entry.entry_id, None)
            self._slot_free.set()

        task.add_done_callback(finished)

    async def _job(self, entry: Delivery | Undecodable) -> None:
        try:
            if isinstance(entry, Undecodable):
                log.error("unreadable notification set aside", extra={"entry": entry.entry_id, "error": entry.error})
                await self.stream.dead_letter(entry.entry_id, entry.fields, f"unreadable: {entry.error}")
                self._count_dead_letter()
                return
            await self.handle(entry)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left pending: another pass (here or on another worker) reclaims it once idle.
            log.exception("notification not processed; it will be retried", extra={"entry": entry.entry_id})

    async def _keep_alive(self) -> None:
        """Keep the entries in progress from looking abandoned to other workers."""
        me = asyncio.current_task()
        while me is None or not me.cancelling():
            await asyncio.sleep(max(self.claim_min_idle / 3, 0.02))
            try:
                await self.stream.keep(self.consumer, list(self._jobs))
            except (*TRANSIENT, ResponseError) as exc:
                log.warning("could not refresh entries in progress: %s", exc)

    async def _housekeeping(self) -> None:
        await self.stream.trim_acknowledged()
        await self.stream.forget_idle_consumers(idle_ms=24 * 3600 * 1000)
        if self.metrics is not None:
            self.metrics.queue(await self.stream.depth())

    async def _gave_up(self, entry: Delivery | Undecodable) -> bool:
        """Set aside an entry that was delivered too often: it fails every worker that takes it."""
        deliveries = await self.stream.deliveries(entry.entry_id)
        if deliveries <= self.max_deliveries:
            return False
        reason = f"gave up after {deliveries - 1} failed attempts"
        log.error("notification set aside", extra={"entry": entry.entry_id, "reason": reason})
        if isinstance(entry, Delivery):
            current = await self.incidents.latest_for_group(entry.notification.group_key)
            if current is not None and (lifecycle.owed_analysis(current, entry.entry_id)
                                        or lifecycle.owed_recheck(current, entry.entry_id)):
                text = f"Processing of a notification {reason}."
                await self._render(await self.incidents.change(
                    current.id, lambda c: lifecycle.abandon(c, entry.entry_id, text, now=self._now())))
        fields = entry.fields if isinstance(entry, Undecodable) else await self.stream.fields(entry.entry_id)
        await self.stream.dead_letter(entry.entry_id, fields, reason)
        self._count_dead_letter()
        return True

    def _count_dead_letter(self) -> None:
        if self.metrics is not None:
            self.metrics.dead_lettered.inc()

    # One notification ------------------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> Incident | None:
        """dedup → analyse → render → record, for one stored notification; safe to run twice."""
        applied = await self._dedup(delivery)
        incident = applied.after or applied.before
        if incident is not None and applied.touches_incident:
            owed = (lifecycle.owed_analysis(incident, delivery.entry_id)
                    or lifecycle.owed_recheck(incident, delivery.entry_id))
            if owed:
                await self._render(incident)  # the draft exists while the analysis runs
            incident = await self._analyse(incident, delivery.entry_id)
            incident = await self._recheck(incident, delivery.entry_id)
            await self._render(incident)
        await self._record(delivery, applied)
        return incident

    async def _dedup(self, delivery: Delivery) -> Applied:
        decisions: list[Decision] = []

        def change(current: Incident | None) -> Incident | None:
            decisions.append(lifecycle.decide(current, delivery, policy=self.policy))
            return lifecycle.apply(current, delivery, decisions[-1], now=self._now(), policy=self.policy)

        async with self._in_order(delivery.notification.group_key):
            before, after = await self.incidents.change_group(delivery.notification.group_key, change)
        return Applied(decisions[-1], before, after)

    async def _analyse(self, incident: Incident, entry_id: str) -> Incident:
        due = lifecycle.owed_analysis(incident, entry_id)
        if due is None:
            return incident
        report, error = await self._run("analysis", self.analysis.analyse, lifecycle.analysis_request(incident, due))
        if report is not None:
            return await self._keep_result(
                incident.id, lambda c: lifecycle.attach_report(c, due, report, now=self._now()))
        return await self.incidents.change(
            incident.id, lambda c: lifecycle.record_analysis_failure(c, due, error or "unknown error", now=self._now()))

    async def _recheck(self, incident: Incident, entry_id: str) -> Incident:
        due = lifecycle.owed_recheck(incident, entry_id)
        if due is None:
            return incident
        check = self.analysis.recheck or self.analysis.analyse
        report, error = await self._run("recheck", check, lifecycle.recheck_request(incident, due))
        if report is not None:
            return await self._keep_result(
                incident.id, lambda c: lifecycle.attach_recheck(c, due, report, now=self._now()))
        return await self.incidents.change(
            incident.id, lambda c: lifecycle.record_recheck_failure(c, due, error or "unknown error", now=self._now()))

    async def _keep_result(self, incident_id: str, change: Callable[[Incident], Incident]) -> Incident:
        """Store a finished analysis, waiting out a short Redis outage rather than analysing again.

        Retried for as long as no other worker may reclaim the notification; after that the
        error stands, and whoever reclaims it runs the analysis again.
        """
        delay = self.retry_seconds[0]
        deadline = time.monotonic() + self.claim_min_idle
        while True:
            try:
                return await self.incidents.change(incident_id, change)
            except TRANSIENT as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("redis unavailable; storing the analysis again in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_seconds[1])

    async def _run(self, kind: str, analyse: Analyse, request: AnalysisRequest) -> tuple[Report | None, str | None]:
        """One analysis under the concurrency limit; a failure is returned, a transient one raised."""
        async with self._analyses:
            if self.metrics is not None:
                self.metrics.analyses_running.inc()
            started = time.perf_counter()
            try:
                report = await analyse(request)
            except ANALYSIS_RETRIES:
                self._count_analysis(kind, "none", "retry", started)
                raise
            except Exception as exc:  # the analysis' own failure: recorded on the incident, not retried
                log.warning("%s failed", kind, exc_info=True)
                self._count_analysis(kind, "none", "failed", started)
                return None, f"{type(exc).__name__}: {exc}"[:500]
            finally:
                if self.metrics is not None:
                    self.metrics.analyses_running.dec()
        self._count_analysis(kind, report.synthesis.mode, "ok", started)
        return report, None

    def _count_analysis(self, kind: str, mode: str, outcome: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.analyses.labels(kind, mode, outcome).inc()
            self.metrics.analysis_seconds.labels(kind).observe(time.perf_counter() - started)

    async def _render(self, incident: Incident) -> None:
        if self.postmortems is None:
            return
        await self.postmortems.write(incident)
        await self.postmortems.write_index(lambda: self.incidents.summaries(limit=INDEX_LIMIT))

    async def _record(self, delivery: Delivery, applied: Applied) -> None:
        await self.stream.ack(delivery.entry_id)
        decision, before, after = applied.decision, applied.before, applied.after
        incident = after or before
        log.info("notification processed", extra={
            "entry": delivery.entry_id, "action": decision.action.value, "reason": decision.reason.value,
            "incident": incident.id if incident else None,
        })
        if self.metrics is None:
            return
        self.metrics.decisions.labels(decision.action.value, decision.reason.value).inc()
        if after is not None and decision.action is Action.OPEN:
            self.metrics.opened.inc()
        if after is not None and after.status == "resolved" and (
                before is None or before.id != after.id or before.status != "resolved"):
            self.metrics.resolved.inc()

    @contextlib.asynccontextmanager
    async def _in_order(self, group_key: str) -> AsyncIterator[None]:
        """Apply one group's notifications in the order this worker took them."""
        slot = self._group_order.setdefault(group_key, [asyncio.Lock(), 0])
        slot[1] += 1
        try:
            async with slot[0]:
                yield
        finally:
            slot[1] -= 1
            if slot[1] == 0:
                del self._group_order[group_key]


def build_worker(redis: Redis, analysis: IncidentAnalysis, settings: Settings, *,
                 metrics: IncidentMetrics | None = None, consumer: str | None = None) -> IncidentWorker:
    """A worker configured from the service settings."""
    return IncidentWorker(
        AlertStream(redis), IncidentRepository(redis), analysis,
        postmortems=PostmortemWriter(settings.postmortem_dir, slo_target_pct=settings.slo_target_pct),
        metrics=metrics, consumer=consumer, concurrency=settings.analysis_concurrency,
        claim_min_idle=settings.worker_reclaim_idle_seconds,
        policy=Policy(min_window_minutes=settings.incident_window_min_minutes),
    )


async def run_worker(redis: Redis, analysis: IncidentAnalysis, settings: Settings, *,
                     registry: CollectorRegistry | None = None, consumer: str | None = None) -> None:
    """Process stored notifications until cancelled: what `incident-copilot worker` runs, on any machine.

    `redis` must decode responses (`receiver.app.connect` does). Start as many as you like; they
    share the work through the consumer group.
    """
    metrics = IncidentMetrics.create(registry) if registry is not None else None
    await build_worker(redis, analysis, settings, metrics=metrics, consumer=consumer).run()
