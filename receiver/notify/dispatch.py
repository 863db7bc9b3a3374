"""Delivery: events from the outbox to every target their incident is routed to.

The stages, per event and target: route (the notifications file's tree) → dedup (a target
that has the event already is skipped) → retry (attempts with jittered backoff, honouring
`Retry-After`, until delivered, refused, or the give-up time) → record (the outcome under
the event's key; a given-up delivery is reported to `on_given_up`, which shows it on the
incident). Integrations only format and send; these stages decide.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

import aiohttp
from redis.exceptions import ResponseError

from ..ordering import KeyedOrder
from ..retry import REDIS_UNAVAILABLE, cancelling, retrying
from .config import NotifyConfig, Target
from .event import IncidentEvent
from .metrics import NotifyMetrics
from .msteams import MSTeamsWorkflow
from .notifier import DeliveryError, Notifier, NotifyContext
from .outbox import Entry, Outbox
from .slack import SlackBot, SlackWebhook
from .webhook import Webhook

log = logging.getLogger(__name__)

GivenUp = Callable[[IncidentEvent, Target, str], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def notifier_for(target: Target) -> Notifier:
    config = target.config
    if target.integration == "slack":
        return SlackBot(config) if config.token is not None else SlackWebhook(config)  # type: ignore[union-attr, arg-type]
    if target.integration == "msteams":
        return MSTeamsWorkflow(config)  # type: ignore[arg-type]
    return Webhook(config)  # type: ignore[arg-type]


class RetryStage:
    """When to try again: `first`, twice that… up to `cap`, plus up to `first` at random, or what the
    receiver's `Retry-After` asks if longer; never past the deadline."""

    def __init__(self, *, first: float = 0.5, cap: float = 30.0, rand: Callable[[], float] = random.random) -> None:
        self.first = first
        self.cap = cap
        self._rand = rand

    def wait(self, attempt: int, err: DeliveryError) -> float:
        base = min(self.cap, self.first * 2 ** (attempt - 1)) + self._rand() * self.first
        return max(base, err.retry_after or 0.0)


class DeliveryPipeline:
    """route → dedup → retry → record, for one event; safe to run twice for the same event."""

    def __init__(self, config: NotifyConfig, outbox: Outbox, *, metrics: NotifyMetrics | None = None,
                 on_given_up: GivenUp | None = None, retry: RetryStage | None = None,
                 now: Callable[[], datetime] = utc_now,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.config = config
        self.outbox = outbox
        self.metrics = metrics
        self.on_given_up = on_given_up
        self.retry = retry or RetryStage(first=config.global_.backoff_first, cap=config.global_.backoff_cap)
        self._now = now
        self._sleep = sleep
        self._notifiers: dict[str, Notifier] = {}

    def targets(self, event: IncidentEvent) -> list[Target]:
        return [t for t in self.config.targets(event.incident.labels) if t.config.wants(event.kind)]

    async def deliver(self, event: IncidentEvent, session: aiohttp.ClientSession) -> dict[str, str]:
        """Deliver to every target at once; answers each target's outcome."""
        targets = self.targets(event)
        outcomes = await asyncio.gather(*(self._deliver(event, t, session) for t in targets))
        return dict(zip((t.id for t in targets), outcomes))

    async def _deliver(self, event: IncidentEvent, target: Target, session: aiohttp.ClientSession) -> str:
        done = await self.outbox.outcome(event, target.id)
        if done is not None:
            return done
        notifier = self._notifiers.get(target.id)
        if notifier is None:
            notifier = self._notifiers[target.id] = notifier_for(target)
        ctx = NotifyContext(target=target.id, session=session,
                            thread=await self.outbox.thread(event.incident.incident_id, target.id))
        deadline = event.enqueued_at + timedelta(seconds=self.config.global_.give_up_after)
        attempt = 0
        while True:
            attempt += 1
            retry, err = await notifier.notify(ctx, event)
            if ctx.remember:
                await self.outbox.remember_thread(event.incident.incident_id, target.id, ctx.remember)
            if err is None:
                return await self._delivered(event, target, attempt)
            if not retry:
                return await self._given_up(event, target, f"refused: {err.reason}")
            wait = self.retry.wait(attempt, err)
            if self._now() + timedelta(seconds=wait) > deadline:
                spent = _duration(self.config.global_.give_up_after)
                tries = f"{attempt} attempt{'s' if attempt != 1 else ''}"
                return await self._given_up(event, target, f"still failing after {tries} ({spent} allowed): "
                                                           f"{err.reason}")
            log.warning("delivery failed; trying again in %.1f s: %s", wait, err.reason,
                        extra={"target": target.id, "event": event.key})
            self._count(self.metrics and self.metrics.retried, target)
            await self._sleep(wait)

    async def _delivered(self, event: IncidentEvent, target: Target, attempts: int) -> str:
        await self.outbox.record(event, target.id, "sent")
        self._count(self.metrics and self.metrics.sent, target)
        if self.metrics is not None:
            seconds = (self._now() - event.triggered_at).total_seconds()
            self.metrics.latency.labels(target.receiver, target.integration).observe(max(0.0, seconds))
        log.info("incident event delivered", extra={"target": target.id, "event": event.key, "attempts": attempts})
        return "sent"

    async def _given_up(self, event: IncidentEvent, target: Target, reason: str) -> str:
        outcome = f"given up: {reason}"
        await self.outbox.record(event, target.id, outcome)
        self._count(self.metrics and self.metrics.failed, target)
        log.error("incident event not delivered: %s", reason, extra={"target": target.id, "event": event.key})
        if self.on_given_up is not None:
            try:
                await self.on_given_up(event, target, reason)
            except Exception:  # showing it is a courtesy; the outcome is recorded either way
                log.exception("could not show a failed delivery on its incident", extra={"event": event.key})
        return outcome

    @staticmethod
    def _count(counter, target: Target) -> None:
        if counter:
            counter.labels(target.receiver, target.integration).inc()


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


class Dispatcher:
    """A consumer of the outbox: takes events and delivers at most `concurrency` at once, one incident's in order."""

    def __init__(self, config: NotifyConfig, outbox: Outbox, *, metrics: NotifyMetrics | None = None,
                 on_given_up: GivenUp | None = None, consumer: str | None = None, claim_min_idle: float = 60.0,
                 block_seconds: float = 1.0, max_deliveries: int = 10, retry: RetryStage | None = None,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.outbox = outbox
        self.config = config
        self.pipeline = DeliveryPipeline(config, outbox, metrics=metrics, on_given_up=on_given_up, retry=retry,
                                         now=now)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.concurrency = config.global_.concurrency
        self.claim_min_idle = claim_min_idle
        self.block_seconds = block_seconds
        self.max_deliveries = max_deliveries
        self._jobs: dict[str, asyncio.Task] = {}
        self._slot_free = asyncio.Event()
        # One incident's events in the order they were taken: its resolution never overtakes its opening.
        self._in_order = KeyedOrder()
        self._cursor = "0-0"
        self._next_reclaim = 0.0
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        log.info("notification delivery started", extra={"consumer": self.consumer, "concurrency": self.concurrency})
        g = self.config.global_
        connector = aiohttp.TCPConnector(limit=max(g.concurrency * 2, 10), limit_per_host=g.connections_per_host)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=g.timeout)) as session:
            self._session = session
            keep_alive = asyncio.create_task(self._keep_alive())
            cycle = retrying(REDIS_UNAVAILABLE, what="notification delivery (redis)", first=0.5, cap=10.0)
            ready = False
            try:
                while True:
                    if cancelling():  # a cancellation swallowed on the way must still stop the loop
                        raise asyncio.CancelledError
                    if not ready:
                        await cycle(self.outbox.ensure_group)
                        ready = True
                    try:
                        await cycle(self._take)
                    except ResponseError as exc:
                        if "NOGROUP" not in str(exc):
                            raise
                        ready = False
                    except REDIS_UNAVAILABLE:
                        if cancelling():
                            raise asyncio.CancelledError from None
                        raise
            finally:
                running = [keep_alive, *self._jobs.values()]
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)

    async def _take(self) -> None:
        while len(self._jobs) >= self.concurrency:
            self._slot_free.clear()
            await self._slot_free.wait()
        free = self.concurrency - len(self._jobs)
        clock = time.monotonic()
        entries: list[Entry] = []
        if clock >= self._next_reclaim:
            self._cursor, entries = await self.outbox.reclaim(
                self.consumer, min_idle_ms=int(self.claim_min_idle * 1000), count=free, cursor=self._cursor)
            if self._cursor == "0-0":
                self._next_reclaim = clock + min(max(self.claim_min_idle / 2, 0.05), 30.0)
            entries = [e for e in entries if e.entry_id not in self._jobs]
        if not entries:
            entries = await self.outbox.read(self.consumer, count=free, block_ms=int(self.block_seconds * 1000))
            waited = time.monotonic() - clock
            if not entries and waited < self.block_seconds:
                await asyncio.sleep(self.block_seconds - waited)  # a server answering an empty read at once
        for entry in entries:
            task = asyncio.create_task(self._job(entry), name=f"notify-{entry.entry_id}")
            self._jobs[entry.entry_id] = task
            task.add_done_callback(lambda _, ident=entry.entry_id: self._finished(ident))

    def _finished(self, entry_id: str) -> None:
        self._jobs.pop(entry_id, None)
        self._slot_free.set()

    async def _job(self, entry: Entry) -> None:
        try:
            if entry.event is None:
                log.error("unreadable incident event set aside", extra={"entry": entry.entry_id, "error": entry.error})
                await self.outbox.dead_letter(entry, entry.error or "unreadable")
                return
            deliveries = await self.outbox.deliveries(entry.entry_id)
            if deliveries > self.max_deliveries:
                log.error("incident event set aside after %d attempts", deliveries, extra={"entry": entry.entry_id})
                await self.outbox.dead_letter(entry, f"taken {deliveries} times without finishing")
                return
            assert self._session is not None
            async with self._in_order(entry.event.incident.incident_id):
                await self.pipeline.deliver(entry.event, self._session)
            await self.outbox.done(entry.entry_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("incident event not finished; it will be taken again", extra={"entry": entry.entry_id})

    async def _keep_alive(self) -> None:
        while not cancelling():
            await asyncio.sleep(max(self.claim_min_idle / 3, 0.02))
            try:
                await self.outbox.keep(self.consumer, list(self._jobs))
            except (*REDIS_UNAVAILABLE, ResponseError) as exc:
                log.warning("could not refresh events in progress: %s", exc)
