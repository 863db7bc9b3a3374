"""Incident records in Redis, without TTL: they are the history and must never be evicted.

Keys: `ic:incident:<id>` (the record, JSON), `ic:incidents:opened` (sorted set by opening time),
`ic:incidents:summaries` (hash id -> summary JSON, for lists), `ic:incident-group:<hash>` (the
latest incident of an Alertmanager group). Every change is a WATCH/MULTI transaction over the
group pointer and the record, so workers on several machines never interleave their changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import WatchError

from .model import Incident, IncidentSummary
from .naming import is_incident_id

PREFIX = "ic"
_INDEX = f"{PREFIX}:incidents:opened"
_SUMMARIES = f"{PREFIX}:incidents:summaries"
_MAX_ATTEMPTS = 100
_PAGE = 200


class ConcurrentChange(Exception):
    """An incident kept changing under a transaction; the caller may try again later."""


def _record_key(incident_id: str) -> str:
    return f"{PREFIX}:incident:{incident_id}"


def _group_key(group_key: str) -> str:
    return f"{PREFIX}:incident-group:{hashlib.sha256(group_key.encode()).hexdigest()[:40]}"


class IncidentRepository:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, incident_id: str) -> Incident | None:
        if not is_incident_id(incident_id):
            return None
        raw = await self.redis.get(_record_key(incident_id))
        return None if raw is None else Incident.model_validate_json(raw)

    async def latest_for_group(self, group_key: str) -> Incident | None:
        current = await self.redis.get(_group_key(group_key))
        return None if current is None else await self.get(current)

    async def change_group(
        self, group_key: str, change: Callable[[Incident | None], Incident | None]
    ) -> tuple[Incident | None, Incident | None]:
        """Apply `change` to the group's latest incident atomically; answers (before, after or None if unchanged)."""
        pointer = _group_key(group_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_ATTEMPTS):
                try:
                    await pipe.watch(pointer)
                    current_id = await pipe.get(pointer)
                    current = None
                    if current_id is not None:
                        await pipe.watch(_record_key(current_id))
                        raw = await pipe.get(_record_key(current_id))
                        current = None if raw is None else Incident.model_validate_json(raw)
                    after = change(current)
                    if after is None:
                        await pipe.unwatch()
                        return current, None
                    pipe.multi()
                    self._write(pipe, after)
                    pipe.set(pointer, after.id)
                    await pipe.execute()
                    return current, after
                except WatchError:
                    continue
        raise ConcurrentChange(f"the incident of group {group_key!r} kept changing")

    async def change(self, incident_id: str, change: Callable[[Incident], Incident]) -> Incident:
        """Apply `change` to one incident atomically and answer the record as written."""
        key = _record_key(incident_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_ATTEMPTS):
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise LookupError(f"no incident {incident_id}")
                    after = change(Incident.model_validate_json(raw))
                    pipe.multi()
                    self._write(pipe, after)
                    await pipe.execute()
                    return after
                except WatchError:
                    continue
        raise ConcurrentChange(f"incident {incident_id} kept changing")

    @staticmethod
    def _write(pipe, incident: Incident) -> None:
        pipe.set(_record_key(incident.id), incident.model_dump_json())
        pipe.hset(_SUMMARIES, incident.id, incident.summary().model_dump_json())
        pipe.zadd(_INDEX, {incident.id: incident.notified_at.timestamp()})

    async def count(self) -> int:
        return await self.redis.zcard(_INDEX)

    async def summaries(self, *, limit: int = 50,
                        status: Literal["open", "resolved"] | None = None) -> list[IncidentSummary]:
        """Newest first, optionally only open or only resolved ones."""
        found: list[IncidentSummary] = []
        seen: set[str] = set()
        start = 0
        while len(found) < limit:
            ids = await self.redis.zrevrange(_INDEX, start, start + _PAGE - 1)
            if not ids:
                break
            start += len(ids)
            # Incidents opened meanwhile push the older ones down the index: a page may begin with
            # ones the previous page held. The index only grows, so none is skipped.
            ids = [ident for ident in ids if ident not in seen]
            seen.update(ids)
            for raw in await self.redis.hmget(_SUMMARIES, ids) if ids else []:
                if raw is None:
                    continue
                summary = IncidentSummary.model_validate_json(raw)
                if status is None or summary.status == status:
                    found.append(summary)
        return found[:limit]
