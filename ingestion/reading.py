"""Reading minute buckets back from Redis, with a cache for minutes that no longer change.

A minute's generation counter is bumped by every write to it, so a cached merge of
older minutes stays valid exactly as long as their generations do.

The still-filling minute changes with every write: while ingestion runs, a window ending
now would be read again by every query. With `snapshot_seconds`, such a window is read
once and its answer kept that long; identical queries arriving meanwhile, or while it is
being read, share it. A write is seen by every query that starts `snapshot_seconds` after
it was acknowledged, never later.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from typing import Any
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import keys
from .buckets import SEP, BackendAgg, FrontendAgg, PathAgg
from .client import RedisClient


@dataclass(frozen=True, slots=True)
class Span:
    """The whole minutes a window covers, oldest first; the last one may still be filling."""

    minutes: tuple[int, ...]

    @classmethod
    def ending_at(cls, window: int, at: float) -> "Span":
        last = math.ceil(at / 60) - 1
        return cls(tuple(range(last - window + 1, last + 1)))

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.minutes[0] * 60, timezone.utc)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp((self.minutes[-1] + 1) * 60, timezone.utc)


@dataclass(slots=True, weakref_slot=True)
class Merged:
    """The sum of several minutes, limited to the parts a query asked for."""

    n: int = 0
    codes: Counter = field(default_factory=Counter)
    frontends: dict[str, FrontendAgg] = field(default_factory=dict)
    backend_counts: Counter = field(default_factory=Counter)
    backends: dict[str, BackendAgg] = field(default_factory=dict)
    paths: dict[tuple[str, str], PathAgg] = field(default_factory=dict)
    maxima: dict[str, int] = field(default_factory=dict)

    def add(self, other: "Merged") -> None:
        self.n += other.n
        self.codes.update(other.codes)
        self.backend_counts.update(other.backend_counts)
        for name, agg in other.frontends.items():
            self.frontends.setdefault(name, FrontendAgg()).merge(agg)
        for name, agg in other.backends.items():
            self.backends.setdefault(name, BackendAgg()).merge(agg)
        for key, agg in other.paths.items():
            self.paths.setdefault(key, PathAgg()).merge(agg)
        for member, value in other.maxima.items():
            if value > self.maxima.get(member, -1):
                self.maxima[member] = value


    def plus(self, others: Sequence["Merged"]) -> "Merged":
        """A new sum of this and `others`, none of them changed. What only this one holds is shared, not
        copied: an hour of routes plus the live minutes costs the live minutes' names, not the hour's."""
        out = Merged(n=self.n + sum(o.n for o in others), codes=Counter(self.codes),
                     backend_counts=Counter(self.backend_counts), maxima=dict(self.maxima))
        for other in others:
            out.codes.update(other.codes)
            out.backend_counts.update(other.backend_counts)
            for member, value in other.maxima.items():
                if value > out.maxima.get(member, -1):
                    out.maxima[member] = value
        out.frontends = _plus(self.frontends, [o.frontends for o in others], FrontendAgg)
        out.backends = _plus(self.backends, [o.backends for o in others], BackendAgg)
        out.paths = _plus(self.paths, [o.paths for o in others], PathAgg)
        return out


def _plus(base: dict, others: list[dict], factory: Callable[[], Any]) -> dict:
    """`base` and `others` summed by key into a new dict: aggregates of `base` alone are shared, the rest new."""
    out = dict(base)
    fresh: set = set()
    for other in others:
        for key, agg in other.items():
            if key not in fresh:
                mine = factory()
                if key in base:
                    mine.merge(base[key])
                out[key] = mine
                fresh.add(key)
            out[key].merge(agg)
    return out


_PIPELINE_SLICE = 1000


class Derived:
    """What was computed from a `Merged`, kept for as long as that object lives.

    The reader hands out the same object for a minute that did not change, so whatever a
    query derives from it once (a minute's percentiles) need not be computed again.
    """

    def __init__(self) -> None:
        self._by_object: dict[int, tuple[weakref.ref, dict]] = {}

    def of(self, merged: Merged) -> dict:
        """The values known for `merged`, by any key the caller chooses; add to it what you compute."""
        key = id(merged)
        entry = self._by_object.get(key)
        if entry is not None and entry[0]() is merged:
            return entry[1]
        values: dict = {}

        def forget(ref: weakref.ref, key: int = key) -> None:
            if self._by_object.get(key, (None,))[0] is ref:
                del self._by_object[key]

        self._by_object[key] = (weakref.ref(merged, forget), values)
        return values

    def __len__(self) -> int:
        return len(self._by_object)


class BucketReader:
    """Fetches and merges minute buckets. Expects a client made with decode_responses=True."""

    def __init__(self, redis: RedisClient, *, now: Callable[[], float] = time.time, cache_size: int = 128,
                 snapshot_seconds: float = 0.0) -> None:
        self._redis = redis
        self._now = now
        self._cache: OrderedDict[tuple, Merged] = OrderedDict()
        self._cache_size = cache_size
        self.snapshot_seconds = snapshot_seconds
        self._snapshots: dict[tuple, tuple[float, Merged]] = {}  # a live window: when it was read, and what
        self._reading: dict[tuple, tuple[float, asyncio.Future]] = {}
        self._read_at = Derived()

    def as_of(self, merged: Merged) -> float | None:
        """When `merged`, an answer of `merged()` holding the still-filling minute, was read; None for others."""
        return self._read_at.of(merged).get("at")

    async def merged(self, span: Span, parts: frozenset[str], backend: str | None = None) -> Merged:
        """The sum of the span's minutes. The result is shared with the cache: read it, never change it."""
        if self.snapshot_seconds <= 0 or span.minutes[-1] < int(self._now() // 60) - 1:
            return await self._merged(span, parts, backend)
        key = (parts, backend, span.minutes)
        started = self._now()
        held = self._snapshots.get(key)
        if held is not None and started - held[0] < self.snapshot_seconds:
            return held[1]
        reading = self._reading.get(key)
        if reading is not None and started - reading[0] < self.snapshot_seconds:
            return await asyncio.shield(reading[1])
        done = asyncio.get_running_loop().create_future()
        self._reading[key] = (started, done)
        try:
            result = await self._merged(span, parts, backend)
        except BaseException as exc:
            done.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            done.exception()  # those waiting raise it; none waiting is no warning
            raise
        finally:
            if self._reading.get(key, (None, done))[1] is done:
                del self._reading[key]
        done.set_result(result)
        self._read_at.of(result)["at"] = started
        self._keep_snapshot(key, started, result)
        return result

    def _keep_snapshot(self, key: tuple, at: float, result: Merged) -> None:
        # Expired ones go at once: a window's key changes every minute, and each holds a window's sum.
        for stale in [k for k, (taken, _) in self._snapshots.items() if at - taken >= self.snapshot_seconds]:
            del self._snapshots[stale]
        self._snapshots[key] = (at, result)
        while len(self._snapshots) > self._cache_size:
            del self._snapshots[next(iter(self._snapshots))]

    async def _merged(self, span: Span, parts: frozenset[str], backend: str | None) -> Merged:
        now_minute = int(self._now() // 60)
        generations = dict(zip(span.minutes, await self._generations(span.minutes)))
        whole_key = (parts, backend, tuple(generations.items()))
        cached = self._cached(whole_key)
        if cached is not None:
            return cached
        settled = [m for m in span.minutes if m < now_minute - 1]
        live = [m for m in span.minutes if m >= now_minute - 1]
        base = Merged()
        if settled:
            settled_key = (parts, backend, tuple((m, generations[m]) for m in settled))
            base = self._cached(settled_key)
            if base is None:
                base = await self._fetch([m for m in settled if generations[m]], parts, backend)
                self._remember(settled_key, base)
            if not live:
                return base
        live_parts = []
        for minute in live:
            # Each live minute on its own: the one before the current stops changing soon after it ends.
            minute_key = (parts, backend, ((minute, generations[minute]),))
            part = self._cached(minute_key)
            if part is None:
                part = await self._fetch([minute] if generations[minute] else [], parts, backend)
                self._remember(minute_key, part)
            live_parts.append(part)
        result = base.plus(live_parts)
        self._remember(whole_key, result)
        return result

    def _cached(self, key: tuple) -> Merged | None:
        value = self._cache.get(key)
        if value is not None:
            self._cache.move_to_end(key)
        return value

    async def minute_counts(self, span: Span, backend: str | None = None) -> list[int]:
        pipe = self._redis.pipeline(transaction=False)
        for minute in span.minutes:
            if backend is None:
                pipe.hget(keys.minute_key(minute), "n")
            else:
                pipe.hget(keys.backend_key(minute, backend), "n")
        return [int(v or 0) for v in await pipe.execute()]

    def _remember(self, key: tuple, value: Merged) -> None:
        self._cache[key] = value
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _generations(self, minutes: Sequence[int]) -> list[int]:
        by_hour: dict[int, list[int]] = {}
        for minute in minutes:
            by_hour.setdefault(minute // 60, []).append(minute)
        pipe = self._redis.pipeline(transaction=False)
        for hour, members in by_hour.items():
            pipe.hmget(keys.generation_key(hour), [str(m) for m in members])
        found: dict[int, int] = {}
        for (hour, members), values in zip(by_hour.items(), await pipe.execute()):
            for minute, value in zip(members, values):
                found[minute] = int(value or 0)
        return [found[m] for m in minutes]

    async def each_minute(self, span: Span, parts: frozenset[str], backend: str | None = None) -> list[Merged]:
        """Each minute of the span on its own, oldest first, in a fixed number of round trips.

        Minutes are cached one by one under the keys `merged` gives the live ones; results are
        shared with the cache: read them, never change them.
        """
        generations = dict(zip(span.minutes, await self._generations(span.minutes)))
        found: dict[int, Merged] = {}
        missing = []
        for minute in span.minutes:
            cached = self._cached((parts, backend, ((minute, generations[minute]),)))
            if cached is not None:
                found[minute] = cached
            elif generations[minute]:
                missing.append(minute)
            else:
                found[minute] = Merged()
        if missing:
            fetched = {minute: Merged() for minute in missing}
            await self._fetch(missing, parts, backend, into=fetched.__getitem__)
            for minute, part in fetched.items():
                self._remember((parts, backend, ((minute, generations[minute]),)), part)
            found.update(fetched)
        return [found[m] for m in span.minutes]

    async def _fetch(self, minutes: Sequence[int], parts: frozenset[str], backend: str | None,
                     into: Callable[[int], Merged] | None = None) -> Merged:
        """The minutes' sum, or with `into` each minute added to the `Merged` it names for that minute."""
        merged = Merged()
        if not minutes:
            return merged
        target = into or (lambda minute: merged)
        pipe = self._redis.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(keys.minute_key(minute))
        if "maxima" in parts:
            for minute in minutes:
                pipe.zrange(keys.maxima_key(minute), 0, -1, withscores=True)
        replies = await pipe.execute()
        names_by_minute: list[tuple[int, list[str]]] = []
        for minute, raw in zip(minutes, replies):
            names = _add_totals(target(minute), raw)
            names_by_minute.append((minute, [backend] if backend is not None else names))
        if "maxima" in parts:
            for minute, raw in zip(minutes, replies[len(minutes):]):
                maxima = target(minute).maxima
                for member, score in raw:
                    value = int(score)
                    if value > maxima.get(member, -1):
                        maxima[member] = value
        wanted = [(m, name, kind) for m, names in names_by_minute for name in names
                  for kind in ("backends", "paths") if kind in parts]
        if not wanted:
            return merged
        # Replies are parsed and merged without a pause for the event loop: in slices of a thousand
        # hashes, a day of a hundred backends an hour holds it briefly many times, not a second at once.
        for start in range(0, len(wanted), _PIPELINE_SLICE):
            part = wanted[start:start + _PIPELINE_SLICE]
            pipe = self._redis.pipeline(transaction=False)
            for minute, name, kind in part:
                key = keys.backend_key(minute, name) if kind == "backends" else keys.paths_key(minute, name)
                pipe.hgetall(key)
            for (minute, name, kind), raw in zip(part, await pipe.execute()):
                if not raw:
                    continue
                if kind == "backends":
                    target(minute).backends.setdefault(name, BackendAgg()).merge(BackendAgg.from_fields(raw))
                else:
                    _add_paths(target(minute).paths, name, raw)
        return merged


def _add_totals(merged: Merged, raw: dict[str, str]) -> list[str]:
    backends = []
    frontends = merged.frontends
    for name, value in raw.items():
        count = int(value)
        kind = name[:2]
        if name == "n":
            merged.n += count
        elif kind == "c:":
            merged.codes[name[2:]] += count
        elif kind == "b:":
            backends.append(name[2:])
            merged.backend_counts[name[2:]] += count
        elif kind == "f:":
            frontend, stat = name[2:].rsplit(":", 1)
            agg = frontends.get(frontend)
            if agg is None:
                agg = frontends[frontend] = FrontendAgg()
            if stat == "n":
                agg.n += count
            elif stat == "4":
                agg.e4 += count
            elif stat == "5":
                agg.e5 += count
    return backends


def _add_paths(paths: dict[tuple[str, str], PathAgg], backend: str, raw: dict[str, str]) -> None:
    for name, value in raw.items():
        route, _, stat = name.rpartition(SEP)
        key = (backend, route)
        agg = paths.get(key)
        if agg is None:
            agg = paths[key] = PathAgg()
        agg.add_field(stat, int(value))
