"""The durable outbox: incident events in a Redis Stream, and what was delivered of each.

`offer` decides the next event of an incident and enqueues it in one Lua script that first
checks nothing was enqueued meanwhile (compare and set on the incident's last event): a
notification processed twice, or by two workers, enqueues its event once. Delivery
consumers share the stream through a consumer group, as the alert intake does; an event
leaves it once every target has it, or has been given up. Each target's outcome is kept
under the event's key, so an event taken again after a crash skips what was delivered.

Keys, all under the hash tag `{ic:notify}` so that the script and the transactions run on a
Redis Cluster too: `{ic:notify}:outbox` (the stream), `{ic:notify}:announced:<incident>` (the
last event enqueued), `{ic:notify}:done:<event key>:<target>`, `{ic:notify}:thread:<incident>:<target>`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import orjson
from ingestion import RedisClient
from pydantic import ValidationError

from .event import Announced, IncidentEvent, IncidentSnapshot, event_key, next_event, triggered_at
from ..streams import ensure_group

log = logging.getLogger(__name__)

PREFIX = "{ic:notify}"
STREAM = f"{PREFIX}:outbox"
GROUP = "notifiers"
MAX_LEN = 100_000  # a backstop far above any storm; delivered entries are deleted as they go
DEAD_LETTERS_MAX_LEN = 10_000
KEEP_SECONDS = 90 * 24 * 3600  # incidents live longer than this rarely; their events' bookkeeping not at all

_OFFER = """
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[5])
"""


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    event: IncidentEvent | None
    error: str | None = None
    raw: str = ""


class Outbox:
    def __init__(self, redis: RedisClient, *, key: str = STREAM, group: str = GROUP) -> None:
        self.redis = redis
        self.key = key
        self.group = group
        self.dead_letters = f"{key}:dead"
        self._offer = redis.register_script(_OFFER)

    async def offer(self, snapshot: IncidentSnapshot, *, now: datetime) -> IncidentEvent | None:
        """Enqueue the event the incident is owed now, if any and not enqueued already; answers it."""
        announced = f"{PREFIX}:announced:{snapshot.incident_id}"
        for _ in range(10):
            raw = await self.redis.get(announced)
            last = Announced.model_validate_json(raw) if raw else None
            kind = next_event(snapshot, last)
            if kind is None:
                return None
            sequence = last.sequence + 1 if last else 1
            event = IncidentEvent(key=event_key(snapshot.incident_id, kind, sequence), kind=kind, sequence=sequence,
                                  triggered_at=triggered_at(snapshot, kind), enqueued_at=now, incident=snapshot)
            mark = Announced(kind=kind, material=snapshot.material(), sequence=sequence).model_dump_json()
            added = await self._offer(keys=[announced, self.key],
                                      args=[raw or "", mark, KEEP_SECONDS, MAX_LEN, event.model_dump_json()])
            if added:
                log.info("incident event enqueued", extra={"incident": snapshot.incident_id, "event": kind,
                                                           "key": event.key})
                return event
        log.warning("incident events kept changing; not enqueued now", extra={"incident": snapshot.incident_id})
        return None

    async def owes(self, snapshot: IncidentSnapshot) -> bool:
        """Whether the incident, as it is now, is owed an event not enqueued yet."""
        raw = await self.redis.get(f"{PREFIX}:announced:{snapshot.incident_id}")
        return next_event(snapshot, Announced.model_validate_json(raw) if raw else None) is not None

    # The consumer side ------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        await ensure_group(self.redis, self.key, self.group)

    async def read(self, consumer: str, *, count: int, block_ms: int) -> list[Entry]:
        reply = await self.redis.xreadgroup(self.group, consumer, {self.key: ">"}, count=count, block=block_ms)
        return [_decode(entry_id, fields) for _, rows in reply or [] for entry_id, fields in rows
                if fields is not None]

    async def reclaim(self, consumer: str, *, min_idle_ms: int, count: int, cursor: str) -> tuple[str, list[Entry]]:
        """Entries another consumer took and left idle (it died); answers the next cursor and them."""
        reply = await self.redis.xautoclaim(self.key, self.group, consumer, min_idle_ms, start_id=cursor, count=count)
        return reply[0], [_decode(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]

    async def keep(self, consumer: str, entry_ids: list[str]) -> None:
        if entry_ids:
            await self.redis.xclaim(self.key, self.group, consumer, 0, entry_ids, justid=True)

    async def done(self, entry_id: str) -> None:
        """Every target has the event or was given up: the entry leaves the stream."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.key, self.group, entry_id)
            pipe.xdel(self.key, entry_id)
            await pipe.execute()

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_letters, {"event": entry.raw, "entry": entry.entry_id, "reason": reason[:1000]},
                      maxlen=DEAD_LETTERS_MAX_LEN, approximate=True)
            pipe.xack(self.key, self.group, entry.entry_id)
            pipe.xdel(self.key, entry.entry_id)
            await pipe.execute()

    async def deliveries(self, entry_id: str) -> int:
        rows = await self.redis.xpending_range(self.key, self.group, min=entry_id, max=entry_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 0

    async def pending(self) -> int:
        """Events enqueued and not yet delivered everywhere (taken or not)."""
        return await self.redis.xlen(self.key)

    # What each target has of each event -----------------------------------------------------

    async def outcome(self, event: IncidentEvent, target: str) -> str | None:
        return await self.redis.get(f"{PREFIX}:done:{event.key}:{target}")

    async def record(self, event: IncidentEvent, target: str, outcome: str) -> None:
        await self.redis.set(f"{PREFIX}:done:{event.key}:{target}", outcome[:500], ex=KEEP_SECONDS)

    async def outcomes(self, incident_id: str) -> list[tuple[str, str, str]]:
        """(event, target, outcome) of every delivery of an incident's events so far, oldest event first."""
        prefix = f"{PREFIX}:done:{incident_id}:"
        keys = [key async for key in self.redis.scan_iter(match=prefix.replace("*", "\\*") + "*", count=500)]
        rows = []
        for key, outcome in zip(keys, await self.redis.mget(keys) if keys else []):
            sequence, kind, target = key.removeprefix(prefix).split(":", 2)
            rows.append((int(sequence), kind, target, outcome or ""))
        return [(kind, target, outcome) for _, kind, target, outcome in sorted(rows)]

    async def thread(self, incident_id: str, target: str) -> dict[str, str] | None:
        raw = await self.redis.get(f"{PREFIX}:thread:{incident_id}:{target}")
        return orjson.loads(raw) if raw else None

    async def remember_thread(self, incident_id: str, target: str, thread: dict[str, str]) -> None:
        await self.redis.set(f"{PREFIX}:thread:{incident_id}:{target}", orjson.dumps(thread), ex=KEEP_SECONDS)


def _decode(entry_id: str, fields: dict[str, str]) -> Entry:
    raw = fields.get("event", "")
    try:
        return Entry(entry_id, IncidentEvent.model_validate_json(raw), raw=raw)
    except ValidationError as exc:
        return Entry(entry_id, None, f"unreadable event: {exc.error_count()} errors", raw=raw)
