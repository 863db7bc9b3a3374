"""Incident records in Redis, without TTL: they are the history and must never be evicted.

Keys, all under the hash tag `{ic:incidents}` so that one transaction may touch any of them on a
Redis Cluster too: `:incident:<id>` (the record, JSON), `:opened` (sorted set by opening time),
`:summaries` (hash id -> summary JSON, for lists), `:incident-key:<hash>` (the latest incident of
a correlation key: `backend=api`, ...), `:rechecks` (sorted set id -> when its check after the
resolution is due). Every change is a WATCH/MULTI transaction over the key's pointer and the
record, so workers on several machines never interleave their changes; the schedule of checks is
written in the same transaction as the record that owes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from ingestion import RedisClient
from redis.exceptions import WatchError

from .model import Incident, IncidentSummary
from .naming import is_incident_id

PREFIX = "{ic:incidents}"
_INDEX = f"{PREFIX}:opened"
_SUMMARIES = f"{PREFIX}:summaries"
_RECHECKS = f"{PREFIX}:rechecks"
_MAX_ATTEMPTS = 100
_PAGE = 200


class ConcurrentChange(Exception):
    """An incident kept changing under a transaction; the caller may try again later."""


def _record_key(incident_id: str) -> str:
    return f"{PREFIX}:incident:{incident_id}"


def _pointer(correlation_key: str) -> str:
    return f"{PREFIX}:incident-key:{hashlib.sha256(correlation_key.encode()).hexdigest()[:40]}"


def _group_pointer(group_key: str) -> str:
    """Where records older than correlation were found: the latest incident of an Alertmanager group."""
    return f"{PREFIX}:incident-group:{hashlib.sha256(group_key.encode()).hexdigest()[:40]}"


class IncidentRepository:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis

    async def get(self, incident_id: str) -> Incident | None:
        if not is_incident_id(incident_id):
            return None
        raw = await self.redis.get(_record_key(incident_id))
        return None if raw is None else Incident.model_validate_json(raw)

    async def latest_for(self, correlation_key: str) -> Incident | None:
        current = await self.redis.get(_pointer(correlation_key))
        return None if current is None else await self.get(current)

    async def change_latest(
        self, correlation_key: str, change: Callable[[Incident | None], Incident | None], *,
        group_key: str | None = None,
    ) -> tuple[Incident | None, Incident | None]:
        """Apply `change` to the key's latest incident atomically; answers (before, after or None if unchanged).

        A key without an incident yet takes over an open one of `group_key` stored before
        correlation, so an upgrade does not leave it open for good.
        """
        pointer = _pointer(correlation_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_ATTEMPTS):
                try:
                    await pipe.watch(pointer)
                    current_id = await pipe.get(pointer)
                    if current_id is None and group_key is not None:
                        current_id = await self._older_open(pipe, group_key)
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
        raise ConcurrentChange(f"the incident of {correlation_key!r} kept changing")

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
    async def _older_open(pipe, group_key: str) -> str | None:
        older = _group_pointer(group_key)
        await pipe.watch(older)
        incident_id = await pipe.get(older)
        if incident_id is None:
            return None
        raw = await pipe.get(_record_key(incident_id))
        if raw is None:
            return None
        incident = Incident.model_validate_json(raw)
        return incident_id if incident.status == "open" and not incident.correlation_key else None

    @staticmethod
    def _write(pipe, incident: Incident) -> None:
        pipe.set(_record_key(incident.id), incident.model_dump_json())
        pipe.hset(_SUMMARIES, incident.id, incident.summary().model_dump_json())
        pipe.zadd(_INDEX, {incident.id: incident.notified_at.timestamp()})
        # A write while a worker holds the check may hand it to a second one; the record keeps
        # only the first result (`lifecycle.attach_recheck`), so that costs a check, not a duplicate.
        if incident.recheck_due is not None:
            pipe.zadd(_RECHECKS, {incident.id: incident.recheck_due.at.timestamp()})
        else:
            pipe.zrem(_RECHECKS, incident.id)

    # The checks after resolutions -----------------------------------------------------------

    async def rechecks_due(self, now: datetime, *, limit: int = 10) -> list[str]:
        """Incidents whose check after the resolution is due (or overdue) at `now`, oldest first."""
        return await self.redis.zrangebyscore(_RECHECKS, "-inf", now.timestamp(), start=0, num=limit)

    async def claim_recheck(self, incident_id: str, now: datetime, *, lease_seconds: float) -> bool:
        """Take a due check for `lease_seconds`: no other worker runs it meanwhile; if this one dies, one does after."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(_RECHECKS)
                due = await pipe.zscore(_RECHECKS, incident_id)
                if due is None or due > now.timestamp():
                    await pipe.unwatch()
                    return False
                pipe.multi()
                pipe.zadd(_RECHECKS, {incident_id: now.timestamp() + lease_seconds}, xx=True)
                await pipe.execute()
                return True
            except WatchError:
                return False

    async def hold_rechecks(self, incident_ids: list[str], now: datetime, *, lease_seconds: float) -> None:
        """Extend the claims on checks still running, so no other worker takes them."""
        if incident_ids:
            await self.redis.zadd(_RECHECKS, dict.fromkeys(incident_ids, now.timestamp() + lease_seconds), xx=True)

    async def forget_recheck(self, incident_id: str) -> None:
        """Drop a scheduled check the incident (if any) no longer owes."""
        key = _record_key(incident_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                if raw is not None and Incident.model_validate_json(raw).recheck_due is not None:
                    await pipe.unwatch()
                    return
                pipe.multi()
                pipe.zrem(_RECHECKS, incident_id)
                await pipe.execute()
            except WatchError:
                return  # changed meanwhile: the write that changed it set the schedule

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
