"""The stream consumer: takes stored notifications from the alert stream and hands each to the pipeline.

Workers share the stream through a consumer group: each takes new entries, keeps the ones
it works on from looking abandoned, reclaims the entries of workers that died, and sets
aside an entry that failed too many times. Between reads it runs the checks after resolutions
that have come due, each claimed by one worker for a while (another takes it if that one dies).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from redis.exceptions import ResponseError

from ..retry import cancelling, retrying
from . import lifecycle
from .analysis import IncidentAnalysis
from .lifecycle import Policy
from .metrics import IncidentMetrics
from .model import Delivery, Incident
from .pipeline import TRANSIENT, NotificationPipeline, utc_now
from .postmortem import PostmortemWriter
from .repository import IncidentRepository
from .stream import AlertStream, Undecodable

log = logging.getLogger(__name__)


class IncidentWorker:
    """One consumer of the alert stream, processing at most `concurrency` notifications at once."""

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
        on_change: Callable[[Incident], Awaitable[None]] | None = None,
    ) -> None:
        self.stream = stream
        self.incidents = incidents
        self.metrics = metrics
        # A finished analysis is stored again for as long as no other worker may reclaim its entry.
        self.pipeline = NotificationPipeline(
            stream, incidents, analysis, postmortems=postmortems, metrics=metrics, concurrency=concurrency,
            keep_result_seconds=claim_min_idle, retry_seconds=retry_seconds, policy=policy, now=now,
            on_change=on_change)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.concurrency = concurrency
        self.claim_min_idle = claim_min_idle
        self.block_seconds = block_seconds
        self.max_deliveries = max_deliveries
        self.housekeeping_seconds = housekeeping_seconds
        self.retry_seconds = retry_seconds
        self._now = now
        self._jobs: dict[str, asyncio.Task] = {}
        self._rechecks: dict[str, asyncio.Task] = {}
        self._slot_free = asyncio.Event()
        self._group_ready = False
        self._cursor = "0-0"
        self._next_reclaim = 0.0
        self._next_housekeeping = 0.0

    async def handle(self, delivery: Delivery) -> Incident | None:
        """Process one stored notification now; safe to run twice."""
        return await self.pipeline.handle(delivery)

    # The loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Take and process notifications until cancelled, at most `concurrency` at once."""
        log.info("incident worker started", extra={"consumer": self.consumer, "concurrency": self.concurrency})
        keep_alive = asyncio.create_task(self._keep_alive())
        cycle = retrying(TRANSIENT, what="incident worker (redis)", first=self.retry_seconds[0],
                         cap=self.retry_seconds[1])
        try:
            while True:
                # A cancellation swallowed on the way (a client library turning it into a
                # timeout or an empty read) must still stop the worker.
                if cancelling():
                    raise asyncio.CancelledError
                try:
                    await cycle(self._cycle)
                except TRANSIENT:
                    if cancelling():
                        raise asyncio.CancelledError from None
                    raise
        finally:
            running = [keep_alive, *self._jobs.values(), *self._rechecks.values()]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _cycle(self) -> None:
        try:
            await self._take()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # Redis lost the stream (restarted without persistence)

    async def _take(self) -> None:
        if not self._group_ready:
            await self.stream.ensure_group()
            self._group_ready = True
        await self._start_due_rechecks()
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

    async def _start_due_rechecks(self) -> None:
        """Claim and start the checks after resolutions that are due, overdue ones (from before a restart) too."""
        now = self._now()
        for incident_id in await self.incidents.rechecks_due(now, limit=self.concurrency):
            if incident_id in self._rechecks:
                continue
            if not await self.incidents.claim_recheck(incident_id, now, lease_seconds=self.claim_min_idle):
                continue  # another worker has it
            task = asyncio.create_task(self._recheck(incident_id), name=f"incident-recheck-{incident_id}")
            self._rechecks[incident_id] = task
            task.add_done_callback(lambda _, ident=incident_id: self._rechecks.pop(ident, None))

    async def _recheck(self, incident_id: str) -> None:
        try:
            await self.pipeline.recheck(incident_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Still scheduled: taken again, here or elsewhere, once the claim lapses.
            log.exception("check after resolution not done; it will be retried", extra={"incident": incident_id})

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
                await self.incidents.hold_rechecks(list(self._rechecks), self._now(),
                                                   lease_seconds=self.claim_min_idle)
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
            await self.pipeline.abandon(entry, reason)
        fields = entry.fields if isinstance(entry, Undecodable) else await self.stream.fields(entry.entry_id)
        await self.stream.dead_letter(entry.entry_id, fields, reason)
        self._count_dead_letter()
        return True

    def _count_dead_letter(self) -> None:
        if self.metrics is not None:
            self.metrics.dead_lettered.inc()
