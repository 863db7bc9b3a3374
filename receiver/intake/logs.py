"""One intake for every source of log lines: HTTP bodies, syslog, files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from ingestion import (
    Batch,
    IngestCounts,
    MetricsStore,
    TimeBounds,
    add_entries,
    add_ndjson_lines,
    add_text_lines,
)

from .group_commit import GroupCommit, GroupCommitPolicy
from .metrics import IntakeMetrics

# Parsing is CPU work on the event loop. One batch is parsed at a time, a chunk between
# turns of the loop (about 5 ms), so that a query or a health check waits for one chunk
# rather than for every batch in flight.
_CHUNK = 250


def log_timezone(name: str) -> tzinfo:
    """The zone HAProxy's local dates are read in; empty means this host's zone."""
    if name:
        return ZoneInfo(name)
    local = time.localtime().tm_gmtoff
    return timezone(timedelta(seconds=local)) if local else timezone.utc


class LogIntake:
    def __init__(self, store: MetricsStore, *, tz: tzinfo, retention_minutes: int, skew_seconds: int,
                 metrics: IntakeMetrics | None = None, now: Callable[[], float] = time.time,
                 group_commit: GroupCommitPolicy = GroupCommitPolicy()) -> None:
        self.store = store
        self.tz = tz
        self._retention = retention_minutes * 60
        self._skew = skew_seconds
        self._metrics = metrics
        self._now = now
        self._parsing = asyncio.Lock()
        self._group_commit = group_commit
        self._groups: dict[str, GroupCommit] = {}

    def bounds(self) -> TimeBounds:
        return TimeBounds(now=self._now(), retention_seconds=self._retention, skew_seconds=self._skew)

    async def text(self, lines: Sequence[str], source: str) -> Batch:
        return await self._ingest(add_text_lines, lines, source, tz=self.tz)

    async def ndjson(self, lines: Sequence[bytes], source: str) -> Batch:
        return await self._ingest(add_ndjson_lines, lines, source)

    async def entries(self, items: Sequence[object], source: str) -> Batch:
        return await self._ingest(add_entries, items, source)

    async def _ingest(self, add: Callable[..., None], items: Sequence, source: str, **options) -> Batch:
        batch = Batch()
        async with self._parsing:
            bounds = self.bounds()
            for start in range(0, len(items), _CHUNK):
                if start:
                    await asyncio.sleep(0)
                add(batch, items[start:start + _CHUNK], bounds=bounds, first=start + 1, **options)
        await self._save(batch, source, len(items))
        return batch

    async def _save(self, batch: Batch, source: str, size: int) -> None:
        if self._metrics is not None:
            self._metrics.batch_lines.labels(source).observe(size)
        counts = IngestCounts(source=source, accepted=batch.accepted, rejected=batch.reasons)
        if batch.accepted:
            await self._group(source).write(batch, size)
        elif batch.rejected:
            try:
                await self.store.write({}, counts)
            except Exception:  # counting a rejection must not turn a 400 into a 503
                pass

    def _group(self, source: str) -> GroupCommit:
        group = self._groups.get(source)
        if group is None:
            async def write(batch: Batch) -> None:
                await self.store.write(batch.buckets, IngestCounts(source=source, accepted=batch.accepted,
                                                                   rejected=batch.reasons))

            group = self._groups[source] = GroupCommit(write, self._group_commit)
        return group

    async def close(self) -> None:
        """Write what waits for company; the store is still open."""
        for group in self._groups.values():
            await group.close()
