"""Durable intake: notifications go to a Redis Stream before Alertmanager is answered, and leave it
only when a worker of the consumer group acknowledges them (after the incident is saved).

An entry a worker took but did not acknowledge stays pending; another worker reclaims it once it
has been idle long enough (XAUTOCLAIM). Acknowledged entries are trimmed away; the length cap is
only a backstop for a stream nobody consumes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from ingestion import RedisClient
from pydantic import ValidationError
from redis.exceptions import ResponseError

from .model import Delivery
from .notification import Notification, parse_go_time
from ..streams import ensure_group

# The stream and its dead letters share a hash tag: on a Redis Cluster one transaction moves an entry between them.
STREAM = "{ic:alerts}"
GROUP = "incident-workers"
# A backstop, far above any storm: trimming by length could drop entries nobody has read yet.
MAX_LEN = 100_000
DEAD_LETTERS_MAX_LEN = 10_000
# Writes in flight at once: a storm of webhook calls waits here rather than exhausting the
# Redis connection pool (whose overflow would answer 503 to every other request as well).
MAX_CONCURRENT_WRITES = 32


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An entry that cannot be read back as a notification; it goes to the dead letters."""

    entry_id: str
    fields: dict[str, str]
    error: str


@dataclass(frozen=True, slots=True)
class QueueDepth:
    waiting: int  # not yet delivered to any worker
    pending: int  # delivered, not yet acknowledged


class AlertStream:
    def __init__(self, redis: RedisClient, *, key: str = STREAM, group: str = GROUP, max_len: int = MAX_LEN) -> None:
        self.redis = redis
        self.key = key
        self.group = group
        self.dead_letters = f"{key}:dead"
        self.max_len = max_len
        self._writes = asyncio.Semaphore(MAX_CONCURRENT_WRITES)

    async def add(self, notification: Notification, *, received_at: datetime) -> str:
        """Store a notification; once this returns, it will be processed even if this process dies."""
        async with self._writes:
            return await self.redis.xadd(
                self.key, {"notification": notification.to_json(), "received_at": received_at.isoformat()},
                maxlen=self.max_len, approximate=True,
            )

    async def ensure_group(self) -> None:
        await ensure_group(self.redis, self.key, self.group)

    async def read(self, consumer: str, *, count: int, block_ms: int) -> list[Delivery | Undecodable]:
        """New entries for this consumer, waiting up to `block_ms` for the first."""
        reply = await self.redis.xreadgroup(self.group, consumer, {self.key: ">"}, count=count, block=block_ms)
        entries: list[Delivery | Undecodable] = []
        for _stream, rows in reply or []:
            entries += [decode(entry_id, fields) for entry_id, fields in rows if fields is not None]
        return entries

    async def reclaim(self, consumer: str, *, min_idle_ms: int, count: int,
                      cursor: str = "0-0") -> tuple[str, list[Delivery | Undecodable]]:
        """Take over entries idle for `min_idle_ms` (their worker died); answers the next cursor and them."""
        reply = await self.redis.xautoclaim(self.key, self.group, consumer, min_idle_ms, start_id=cursor, count=count)
        next_cursor, rows = reply[0], reply[1]
        return next_cursor, [decode(entry_id, fields) for entry_id, fields in rows if fields is not None]

    async def keep(self, consumer: str, entry_ids: list[str]) -> None:
        """Reset the idle time of entries still being worked on, so no one reclaims them."""
        if entry_ids:
            await self.redis.xclaim(self.key, self.group, consumer, 0, entry_ids, justid=True)

    async def deliveries(self, entry_id: str) -> int:
        rows = await self.redis.xpending_range(self.key, self.group, min=entry_id, max=entry_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 0

    async def ack(self, entry_id: str) -> None:
        await self.redis.xack(self.key, self.group, entry_id)

    async def dead_letter(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        """Keep an entry that cannot be processed aside, with why, and acknowledge it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_letters, {**fields, "entry": entry_id, "reason": reason[:1000]},
                      maxlen=DEAD_LETTERS_MAX_LEN, approximate=True)
            pipe.xack(self.key, self.group, entry_id)
            await pipe.execute()

    async def fields(self, entry_id: str) -> dict[str, str]:
        rows = await self.redis.xrange(self.key, min=entry_id, max=entry_id, count=1)
        return dict(rows[0][1]) if rows else {}

    async def depth(self) -> QueueDepth:
        group = await self._group_info()
        if group is None:
            return QueueDepth(waiting=await self.redis.xlen(self.key), pending=0)
        lag = group.get("lag")
        if lag is None:  # Redis cannot tell after some deletions: count what lies past the group's position
            lag = len(await self.redis.xrange(self.key, min=f"({group['last-delivered-id']}", count=MAX_LEN))
        return QueueDepth(waiting=int(lag), pending=int(group.get("pending", 0)))

    async def trim_acknowledged(self) -> None:
        """Drop entries every worker is done with: those before the oldest pending or undelivered one."""
        group = await self._group_info()
        if group is None:
            return
        summary = await self.redis.xpending(self.key, self.group)
        if summary and summary.get("pending"):
            keep_from = summary["min"]
        else:
            last = group.get("last-delivered-id") or "0-0"
            if last == "0-0":
                return
            millis, _, seq = last.partition("-")
            keep_from = f"{millis}-{int(seq or 0) + 1}"
        await self.redis.xtrim(self.key, minid=keep_from, approximate=False)

    async def forget_idle_consumers(self, *, idle_ms: int) -> None:
        """Remove consumers (workers long gone) that hold no entries, so the group stays readable."""
        try:
            consumers = await self.redis.xinfo_consumers(self.key, self.group)
        except ResponseError:
            return
        for consumer in consumers:
            if int(consumer.get("pending", 0)) == 0 and int(consumer.get("idle", 0)) >= idle_ms:
                await self.redis.xgroup_delconsumer(self.key, self.group, consumer["name"])

    async def _group_info(self) -> dict | None:
        try:
            groups = await self.redis.xinfo_groups(self.key)
        except ResponseError:  # no stream yet
            return None
        return next((g for g in groups if g.get("name") == self.group), None)


def decode(entry_id: str, fields: dict[str, str]) -> Delivery | Undecodable:
    try:
        notification = Notification.model_validate_json(fields["notification"])
        received_at = parse_go_time(fields["received_at"])
        if not isinstance(received_at, datetime):
            raise ValueError("received_at is not a timestamp")
    except (KeyError, ValueError, ValidationError) as exc:
        return Undecodable(entry_id, dict(fields), f"{type(exc).__name__}: {exc}")
    return Delivery(entry_id=entry_id, received_at=received_at, notification=notification)
