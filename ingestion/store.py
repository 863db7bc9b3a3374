"""Writing minute buckets to Redis: one script per batch, all of it or nothing, TTL on every key.

On a Redis Cluster a script reaches one hash slot only: a batch is then one script per slot
(a minute, a day's counters; then an hour's generations), each of them all or nothing. A batch
that failed on one master and was sent again counts again what the others took.

Before it, names this process has not met yet in the current hour (backends, frontends,
routes, status codes, termination states, servers) are admitted under their caps: one more round
trip for each kind of name with newcomers, and none once the hour's names are known,
which is the steady state.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from redis.crc import key_slot

from . import keys
from .buckets import OTHER, SAMPLES_PER_BACKEND, SEP, MinuteBucket
from .client import RedisClient, is_cluster

# A batch's every increment and peak in one script, so that Redis applies all of it or none:
# a client that retries a failed batch never counts part of it twice. First every key's type
# is checked, since a key some other writer made a string would fail halfway through; the
# only error left is Redis refusing the first write (out of memory), before anything changed:
# a field another writer set to a non-number is replaced rather than failing the rest.
# KEYS are the batch's keys; ARGV holds three values a key: 'h' (increment hash fields), 'z' (raise
# sorted-set scores) or 's' (add request samples, then keep only the best few), its TTL, and
# its payload as one string, "name US value RS
# ...", because encoding thousands of separate arguments costs the client more than the
# rest of a batch.
# Bounds at the door (`bounds.py`) keep every sum far below 2^63; should one still reach
# it, the field stays at the largest value Redis holds instead of failing the batch.
_WRITE_BATCH = r"""
for i, key in ipairs(KEYS) do
  local want = ARGV[3 * i - 2] == 'h' and 'hash' or 'zset'
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. kind .. ', not a ' .. want ..
                             '; nothing of the batch was written')
  end
end
for i, key in ipairs(KEYS) do
  local payload = ARGV[3 * i]
  if ARGV[3 * i - 2] == 'z' then
    for m, v in string.gmatch(payload, "([^\31]+)\31([^\30]+)\30") do
      redis.call('ZADD', key, 'GT', v, m)
    end
  elseif ARGV[3 * i - 2] == 's' then
    for m, v in string.gmatch(payload, "([^\31]+)\31([^\30]+)\30") do
      redis.call('ZADD', key, v, m)
    end
    redis.call('ZREMRANGEBYRANK', key, 0, -SAMPLES_KEPT - 1)
  else
    for f, v in string.gmatch(payload, "([^\31]+)\31([^\30]+)\30") do
      local done = redis.pcall('HINCRBY', key, f, v)
      if type(done) == 'table' then
        if string.find(done['err'], 'overflow', 1, true) then
          redis.call('HSET', key, f, '9223372036854775807')
        elseif string.find(done['err'], 'not an integer', 1, true) then
          redis.call('HSET', key, f, v)
        else
          return done
        end
      end
    end
  end
  redis.call('EXPIRE', key, ARGV[3 * i - 1])
end
return 1
"""
_WRITE_BATCH = _WRITE_BATCH.replace("SAMPLES_KEPT", str(SAMPLES_PER_BACKEND))
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
    servers: int = 300  # pairs of backend and server, over all backends


@dataclass(slots=True)
class IngestCounts:
    """Lines a batch accepted and rejected (by reason), for the exposition."""

    source: str
    accepted: int = 0
    rejected: Counter | None = None


class MetricsStore:
    def __init__(
        self,
        redis: RedisClient,
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
        """Add a batch's buckets to Redis, all or nothing (on a Cluster: each slot's share).

        Raises redis errors as they are.
        """
        folded = {minute: await self._fold(minute, bucket) for minute, bucket in buckets.items()}
        day = int(self._now() // 86400)
        writes = _Writes()
        cum_req: Counter = Counter()
        cum_lat: Counter = Counter()
        cum_term: Counter = Counter()
        cum_queue: Counter = Counter()
        bumped: dict[int, Counter] = {}
        for minute, bucket in folded.items():
            self._queue_minute(writes, minute, bucket)
            bumped.setdefault(minute // 60, Counter())[str(minute)] += 1
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
                writes.incr(keys.cumulative_key(kind, day), counter.items(), cum_ttl)
        if counts is not None:
            fields = Counter()
            if counts.accepted:
                fields["a" + SEP + counts.source] = counts.accepted
            for reason, count in (counts.rejected or {}).items():
                fields["r" + SEP + counts.source + SEP + reason] = count
            if fields:
                writes.incr(keys.cumulative_key("ingest", day), fields.items(), cum_ttl)
        # Last: a reader that sees a minute's generation change sees the data that changed it.
        generation_keys = {keys.generation_key(hour) for hour in bumped}
        for hour, generations in sorted(bumped.items()):
            writes.incr(keys.generation_key(hour), generations.items(), self._ttl + 3600)
        if not writes.keys:
            return
        # EVAL, not EVALSHA: Redis caches the compiled script, and a restarted
        # server never answers NOSCRIPT.
        if not is_cluster(self._redis):
            await self._redis.eval(_WRITE_BATCH, len(writes.keys), *writes.keys, *writes.args)
            return
        # A Cluster runs a script on one slot's keys: one script per slot, all or nothing each, in
        # one pipeline (one round trip per node, in no set order); the generations in a second one.
        data, bumps = [], []
        for slot_keys, slot_args in writes.by_slot():
            (bumps if generation_keys.intersection(slot_keys) else data).append((slot_keys, slot_args))
        for stage in (data, bumps):
            pipe = self._redis.pipeline(transaction=False)
            for slot_keys, slot_args in stage:
                pipe.eval(_WRITE_BATCH, len(slot_keys), *slot_keys, *slot_args)
            await pipe.execute()

    def _queue_minute(self, writes: "_Writes", minute: int, bucket: MinuteBucket) -> None:
        ttl = self._ttl
        totals: list[tuple[str, int]] = [("n", bucket.n)]
        totals += [("c:" + code, count) for code, count in bucket.codes.items()]
        for name, agg in bucket.frontends.items():
            totals += [(f"f:{name}:n", agg.n), (f"f:{name}:4", agg.e4), (f"f:{name}:5", agg.e5)]
        totals += [("b:" + name, agg.n) for name, agg in bucket.backends.items()]
        writes.incr(keys.minute_key(minute), totals, ttl)
        for name, agg in bucket.backends.items():
            writes.incr(keys.backend_key(minute, name), agg.fields(), ttl)
        by_backend: dict[str, list[tuple[str, int]]] = {}
        for (backend, route), agg in bucket.paths.items():
            by_backend.setdefault(backend, []).extend(agg.fields(route + SEP))
        for backend, fields in by_backend.items():
            writes.incr(keys.paths_key(minute, backend), fields, ttl)
        writes.add(keys.maxima_key(minute), "z", _payload(bucket.maxima().items(), keep_zero=True), ttl)
        for name, kept in bucket.samples.items():
            # 's': added, then only the best SAMPLES_PER_BACKEND of the minute are kept.
            writes.add(keys.samples_key(minute, name), "s", _payload((m, score) for score, m in kept), ttl)

    async def _fold(self, minute: int, bucket: MinuteBucket) -> MinuteBucket:
        """Fold names, status codes and termination states beyond the hourly caps into `__other__`."""
        hour = minute // 60
        routes = {route for _, route in bucket.paths}
        states = {state for agg in bucket.backends.values() for state in agg.terms}
        servers = {backend + SEP + server for backend, agg in bucket.backends.items() for server in agg.servers}
        mappings = []
        for kind, names, cap in (
            ("be", bucket.backends.keys(), self._limits.backends),
            ("fe", bucket.frontends.keys(), self._limits.frontends),
            ("p", routes, self._limits.paths),
            ("c", bucket.codes.keys(), self._limits.status_codes),  # every code of the minute is in its totals
            ("t", states, self._limits.states),
            ("s", servers, self._limits.servers),
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


class _Writes:
    """A batch's keys and what to add to each: the arguments of one `_WRITE_BATCH` call."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.args: list[str | int] = []
        self._index: dict[str, int] = {}

    def incr(self, key: str, fields: Iterable[tuple[str, int]], ttl: int) -> None:
        self.add(key, "h", _payload(fields), ttl)

    def add(self, key: str, kind: str, payload: str, ttl: int) -> None:
        if not payload:
            return
        at = self._index.get(key)
        if at is None:
            self._index[key] = len(self.keys)
            self.keys.append(key)
            self.args += (kind, ttl, payload)
        else:
            self.args[3 * at + 2] += payload

    def by_slot(self) -> list[tuple[list[str], list[str | int]]]:
        """The keys and arguments of one script call per Cluster hash slot, in the order the keys came."""
        groups: dict[int, tuple[list[str], list[str | int]]] = {}
        for at, key in enumerate(self.keys):
            slot_keys, slot_args = groups.setdefault(key_slot(key.encode()), ([], []))
            slot_keys.append(key)
            slot_args += self.args[3 * at:3 * at + 3]
        return list(groups.values())


def _payload(fields: Iterable[tuple[str, int]], keep_zero: bool = False) -> str:
    items = [(name, value) for name, value in fields if value or keep_zero]
    payload = "".join([f"{name}{_UNIT}{value}{_RECORD}" for name, value in items])
    if payload.count(_UNIT) + payload.count(_RECORD) != 2 * len(items):
        # A name holding a separator (no HAProxy writes one) must not shift every field after it.
        clean = str.maketrans(_UNIT + _RECORD, "  ")
        payload = "".join([f"{name.translate(clean)}{_UNIT}{value}{_RECORD}" for name, value in items])
    return payload
