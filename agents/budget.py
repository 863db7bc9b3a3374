"""How much model use the service allows: analyses an hour, calls in flight, tokens an hour.

`LocalBudgets` holds them in the process (one process, the eval CLI). `RedisBudgets` holds them
in Redis, so N workers on one Redis share one budget instead of multiplying it by N: a sliding
hour of analysis starts, leases on call slots that expire if a worker dies holding one, and
token counts per clock hour. Both take an injected wall clock. While Redis cannot be reached,
the Redis-held budgets fall back to this process's own: an analysis is no reason to wait for
Redis, and a lease a worker could not give back expires by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from ingestion import RedisClient
from redis.exceptions import RedisError

from .report import TokenUsage

log = logging.getLogger(__name__)

_HOUR = 3600.0
_UNREACHABLE = (RedisError, OSError)
ANALYSES_REASON = "hourly model budget exhausted"
TOKENS_REASON = "hourly model token budget exhausted"


def billed(tokens: TokenUsage) -> int:
    """The tokens a budget counts: every input and output token, cached or not."""
    return (tokens.input_tokens + tokens.output_tokens + tokens.cache_creation_input_tokens
            + tokens.cache_read_input_tokens)


class Budgets(Protocol):
    async def start_analysis(self) -> str | None:
        """Take one analysis from the hour's budget; the reason it runs on rules only, or None."""

    def slot(self) -> AsyncIterator[None]:
        """Hold one of the call slots for the duration of a call (an async context manager)."""

    async def spend(self, tokens: TokenUsage) -> None:
        """Count a call's tokens against the hour's token budget."""


class LocalBudgets:
    def __init__(self, *, analyses_per_hour: int, max_concurrency: int, tokens_per_hour: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = analyses_per_hour
        self._tokens_limit = tokens_per_hour
        self._clock = clock
        self._starts: deque[float] = deque()
        self._spent: deque[tuple[float, int]] = deque()
        self._slots = asyncio.Semaphore(max_concurrency)

    async def start_analysis(self) -> str | None:
        now = self._clock()
        while self._starts and now - self._starts[0] >= _HOUR:
            self._starts.popleft()
        while self._spent and now - self._spent[0][0] >= _HOUR:
            self._spent.popleft()
        if self._tokens_limit and sum(n for _, n in self._spent) >= self._tokens_limit:
            return TOKENS_REASON
        if len(self._starts) >= self._limit:
            return ANALYSES_REASON
        self._starts.append(now)
        return None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            yield

    async def spend(self, tokens: TokenUsage) -> None:
        self._spent.append((self._clock(), billed(tokens)))


# KEYS[1] the starts (a sorted set by time); ARGV now, hour, limit, member.
_START = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return 1
"""
# KEYS[1] the leases (a sorted set by expiry); ARGV now, expiry, limit, member.
_LEASE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2] - ARGV[1]) + 1)
return 1
"""


class RedisBudgets:
    """The budgets of every worker on one Redis.

    A call slot is a lease that expires after `lease_seconds` (longer than a call may take), so
    a worker that dies holding slots gives them back by itself; waiting for one polls every
    `poll_seconds` and is bounded by the caller's timeout.
    """

    def __init__(self, redis: RedisClient, *, analyses_per_hour: int, max_concurrency: int, tokens_per_hour: int = 0,
                 lease_seconds: float = 120.0, poll_seconds: float = 0.05, prefix: str = "llm",
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._limit = analyses_per_hour
        self._concurrency = max_concurrency
        self._tokens_limit = tokens_per_hour
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._clock = clock
        self._starts_key, self._slots_key, self._tokens_key = (f"{prefix}:{n}" for n in ("starts", "slots", "tokens"))
        self._start = redis.register_script(_START)
        self._take = redis.register_script(_LEASE)
        self._local = LocalBudgets(analyses_per_hour=analyses_per_hour, max_concurrency=max_concurrency,
                                   tokens_per_hour=tokens_per_hour, clock=clock)

    def _hour_key(self, now: float) -> str:
        return f"{self._tokens_key}:{int(now // _HOUR)}"

    async def start_analysis(self) -> str | None:
        now = self._clock()
        try:
            if self._tokens_limit and int(await self._redis.get(self._hour_key(now)) or 0) >= self._tokens_limit:
                return TOKENS_REASON
            if self._limit <= 0:
                return ANALYSES_REASON
            taken = await self._start(keys=[self._starts_key], args=[now, _HOUR, self._limit, uuid.uuid4().hex])
        except _UNREACHABLE as exc:
            log.warning("model budget: Redis unreachable, this process's own budget applies: %s", exc)
            return await self._local.start_analysis()
        return None if taken else ANALYSES_REASON

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        member = uuid.uuid4().hex
        try:
            while True:
                now = self._clock()
                if await self._take(keys=[self._slots_key],
                                    args=[now, now + self._lease, self._concurrency, member]):
                    break
                await asyncio.sleep(self._poll)
        except _UNREACHABLE as exc:
            log.warning("model call slots: Redis unreachable, this process's own cap applies: %s", exc)
            async with self._local.slot():
                yield
            return
        try:
            yield
        finally:
            await self._give_back(member)

    async def _give_back(self, member: str) -> None:
        # A connection Redis closed (a restart) fails once and reconnects; a lease left behind
        # would hold its slot until it expires.
        for attempt in range(3):
            try:
                await self._redis.zrem(self._slots_key, member)
                return
            except _UNREACHABLE:
                await asyncio.sleep(self._poll * (attempt + 1))
        log.warning("model call slot: Redis unreachable; its lease expires in %g s", self._lease)

    async def spend(self, tokens: TokenUsage) -> None:
        key = self._hour_key(self._clock())
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, billed(tokens))
                pipe.expire(key, int(2 * _HOUR))
                await pipe.execute()
        except _UNREACHABLE as exc:
            log.warning("model token budget: Redis unreachable, these tokens count here only: %s", exc)
            await self._local.spend(tokens)
