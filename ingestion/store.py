"""Writing minute buckets to Redis: one pipelined round trip per batch, TTL on every key.

Before it, names this process has not met yet in the current hour (backends, frontends,
routes, status codes, termination states) are admitted under their caps: one more round
trip for each kind of name with newcomers, and none once the hour's names are known,
which is the steady state.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from . import keys
from .buckets import OTHER, SEP, MinuteBucket

# Increment many fields of one hash and refresh its TTL in one call (one key: Cluster-safe).
# The increments travel as one string, "field US value RS ...", because encoding thousands
# of separate arguments costs the client more than the whole rest of a batch.
_HINCR_MANY = r"""
local key = KEYS[1]
for f, v in string.gmatch(ARGV[2], "([^\31]+)\31([^\30]+)\30") do
  redis.call('HINCRBY', key, f, v)
end
redis.call('EXPIRE', key, ARGV[1])
return 1
"""
_UNIT = "\x1f"
_RECORD = "\x1e"

# Admit names into a capped set; answers 1 (admitted) or 0 (over the cap) for each name.
_ADMIT = """
local key, cap, ttl = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  if redis.call('SISMEMBER', key, ARGV[i]) == 1 then
    out[#out + 1] = 1
  elseif redis.call('SCARD', key) < cap then
    redis.call('SADD', key, ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
redis.call('EXPIRE', key, ttl)
return out
"""


@dataclass(frozen=True, slots=True)
class Limits:
    """How many distinct names an hour may bring before the rest fold into `__other__`."""

    backends: int = 100
    frontends: int = 50
    paths: int = 500
    # Each is also bounded by what HAProxy writes (`bounds.py`): 502 codes, 96 states.
    status_codes: int = 60
    states: int = 40


@dataclass(slots=True)
class IngestCounts:
    """Lines a batch accepted and rejected (by reason), for the exposition."""

    source: str
    accepted: int = 0
    rejected: Counter | None = None


class MetricsStore:
    def __init__(
        self,
        redis: Redis,
        *,
        retention_minutes: int = 360,
        limits: Limits = Limits(),
        now: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._ttl = retention_minutes * 60 + 120
        self._limits = limits
        self._now = now
        self._admitted: dict[tuple[str, int], set[str]] = {}
        self._refused: dict[tuple[str, int], set[str]] = {}

    @property
    def retention_minutes(self) -> int:
        return (self._ttl - 120) // 60

    async def write(self, buckets: Mapping[int, MinuteBucket], counts: IngestCounts | None = None) -> None:
        """Add a batch's buckets to Redis. Raises redis errors as they are: the caller answers 503."""
        folded = {minute: await self._fold(minute, bucket) for minute, bucket in buckets.items()}
        day = int(self._now() // 86400)
        pipe = self._redis.pipeline(transaction=False)
        cum_req: Counter = Counter()
        cum_lat: Counter = Counter()
        cum_term: Counter = Counter()
        cum_queue: Counter = Counter()
        for minute, bucket in folded.items():
            self._queue_minute(pipe, minute, bucket)
            for (fe, be, cls), count in bucket.classes.items():
                cum_req[fe + SEP + be + SEP + cls] += count
            for be, agg in bucket.backends.items():
                for index, count in agg.le.items():
                    cum_lat[be + SEP + str(index)] += count
                cum_lat[be + SEP + "sum"] += agg.lat_sum
                cum_lat[be + SEP + "n"] += sum(agg.le.values())
                for term, count in agg.terms.items():
                    cum_term[be + SEP + term] += count
                if agg.queued:
                    cum_queue[be] += agg.queued
        cum_ttl = 2 * 86400
        for kind, counter in (("req", cum_req), ("lat", cum_lat), ("term", cum_term), ("queue", cum_queue)):
            if counter:
                self._incr(pipe, keys.cumulative_key(kind, day), counter.items(), cum_ttl)
        if counts is not None:
            fields = Counter()
            if counts.accepted:
                fields["a" + SEP + counts.source] = counts.accepted
            for reason, count in (counts.rejected or {}).items():
                fields["r" + SEP + counts.source + SEP + reason] = count
            if fields:
                self._incr(pipe, keys.cumulative_key("ingest", day), fields.items(), cum_ttl)
        if len(pipe):
            await pipe.execute()

    def _queue_minute(self, pipe, minute: int, bucket: MinuteBucket) -> None:
        ttl = self._ttl
        totals: list[tuple[str, int]] = [("n", bucket.n)]
        totals += [("c:" + code, count) for code, count in bucket.codes.items()]
        for name, agg in bucket.frontends.items():
            totals += [(f"f:{name}:n", agg.n), (f"f:{name}:4", agg.e4), (f"f:{name}:5", agg.e5)]
        totals += [("b:" + name, agg.n) for name, agg in bucket.backends.items()]
        self._incr(pipe, keys.minute_key(minute), totals, ttl)
        for name, agg in bucket.backends.items():
            self._incr(pipe, keys.backend_key(minute, name), agg.fields(), ttl)
        by_backend: dict[str, list[tuple[str, int]]] = {}
        for (backend, route), agg in bucket.paths.items():
            by_backend.setdefault(backend, []).extend(agg.fields(route + SEP))
        for backend, fields in by_backend.items():
            self._incr(pipe, keys.paths_key(minute, backend), fields, ttl)
        maxima_key = keys.maxima_key(minute)
        pipe.zadd(maxima_key, bucket.maxima(), gt=True)
        pipe.expire(maxima_key, ttl)
        generation = keys.generation_key(minute // 60)
        pipe.hincrby(generation, str(minute), 1)
        pipe.expire(generation, ttl + 3600)

    def _incr(self, pipe, key: str, fields: Iterable[tuple[str, int]], ttl: int) -> None:
        payload = "".join([f"{name}{_UNIT}{value}{_RECORD}" for name, value in fields if value])
        if payload:
            # EVAL, not EVALSHA: Redis caches the compiled script, and a restarted
            # server never answers NOSCRIPT in the middle of a batch.
            pipe.eval(_HINCR_MANY, 1, key, ttl, payload)

    async def _fold(self, minute: int, bucket: MinuteBucket) -> MinuteBucket:
        """Fold names, status codes and termination states beyond the hourly caps into `__other__`."""
        hour = minute // 60
        routes = {route for _, route in bucket.paths}
        states = {state for agg in bucket.backends.values() for state in agg.terms}
        mappings = []
        for kind, names, cap in (
            ("be", bucket.backends.keys(), self._limits.backends),
            ("fe", bucket.frontends.keys(), self._limits.frontends),
            ("p", routes, self._limits.paths),
            ("c", bucket.codes.keys(), self._limits.status_codes),  # every code of the minute is in its totals
            ("t", states, self._limits.states),
        ):
            mappings.append(await self._admission(kind, hour, names, cap))
        if not any(mappings):
            return bucket
        return bucket.renamed(*mappings)

    async def _admission(self, kind: str, hour: int, names: Iterable[str], cap: int) -> dict[str, str]:
        admitted = self._admitted.setdefault((kind, hour), set())
        refused = self._refused.setdefault((kind, hour), set())
        unknown = [n for n in names if n not in admitted and n not in refused and n != OTHER]
        if unknown:
            answers = await self._redis.eval(_ADMIT, 1, keys.seen_key(kind, hour), cap, self._ttl, *unknown)
            for name, ok in zip(unknown, answers):
                (admitted if ok else refused).add(name)
            self._forget_old(hour)
        return {n: OTHER for n in names if n in refused}

    def _forget_old(self, hour: int) -> None:
        for cache in (self._admitted, self._refused):
            for key in [k for k in cache if k[1] < hour - 2 or len(cache[k]) > 100_000]:
                del cache[key]
