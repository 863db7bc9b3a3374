"""One way to wait and try again: exponential backoff with jitter.

Built on tenacity, a long-kept retry library that knows asyncio, rather than on loops of our
own. Every place that waits out something unavailable (the incident worker and Redis, the
syslog flusher and Redis, storing a finished analysis, `incident-copilot ingest` and the
service) uses this policy and says only what it retries, for how long, and how it sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
)
from tenacity.wait import wait_base, wait_exponential, wait_random

log = logging.getLogger(__name__)

Errors = type[BaseException] | tuple[type[BaseException], ...]

# What Redis raises while it is down or refusing connections, restarting, loading (BusyLoadingError is a
# ConnectionError), out of memory or a read-only replica: worth trying again later. Any
# other Redis error (WRONGTYPE, an overflow...) is an answer the same request would get again.
# On a Cluster, a master that is down or a failover under way (CLUSTERDOWN, TRYAGAIN, a slot no node
# serves) is the same: its slots come back. (A Sentinel without a master raises a ConnectionError.)
REDIS_UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError, RedisTimeoutError, OutOfMemoryError, ReadOnlyError, ConnectionRefusedError,
    ClusterDownError, TryAgainError, SlotNotCoveredError,
)


def backoff(first: float, cap: float) -> wait_base:
    """`first`, twice that, four times… up to `cap`, each plus up to `first` at random, so that
    clients that failed together do not all come back at the same instant."""
    return wait_exponential(multiplier=first, max=cap) + wait_random(0, first)


def retrying(on: Errors, *, what: str | None, first: float, cap: float, within: float | None = None,
             attempts: int | None = None, until: Callable[[], bool] | None = None,
             sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncRetrying:
    """Retry `on` these errors with `backoff(first, cap)`; the last error is raised as it is.

    Gives up once a wait would end more than `within` seconds after the first try, after
    `attempts` tries, or as soon as `until()` is true; otherwise never. Each wait is logged as
    a warning naming `what`, unless it is None (the caller logs the outage itself).
    """
    stop = stop_never
    if within is not None:
        stop = stop | stop_before_delay(within)
    if attempts is not None:
        stop = stop | stop_after_attempt(attempts)
    if until is not None:
        stop = stop | (lambda _: until())

    def warn(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s failed; trying again in %.1f s: %s", what, wait, error)

    return AsyncRetrying(retry=retry_if_exception_type(on), wait=backoff(first, cap),
                         stop=stop | _stop_when_cancelling, sleep=sleep, before_sleep=warn if what else None,
                         reraise=True)


def cancelling() -> bool:
    """The running task is being cancelled. A client library may have turned the cancellation into a
    connection error or an empty answer; a loop that carried on would keep a stopping task alive."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _stop_when_cancelling(_: RetryCallState) -> bool:
    return cancelling()
