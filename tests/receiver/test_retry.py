"""The one retry policy: it waits out an outage, but never keeps a task that is being cancelled alive."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from receiver.retry import REDIS_UNAVAILABLE, retrying


async def test_an_outage_is_waited_out():
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RedisConnectionError("down")
        return "up"

    assert await retrying(REDIS_UNAVAILABLE, what=None, first=0.001, cap=0.002)(flaky) == "up"
    assert len(calls) == 3


async def test_a_cancellation_turned_into_a_connection_error_stops_the_retries():
    """As a blocking read of a client library may answer a cancellation: the task must still stop."""
    calls = []
    started = asyncio.Event()

    async def swallowing_read() -> None:
        calls.append(1)
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RedisConnectionError("connection closed while reading") from None

    async def loop() -> None:
        await retrying(REDIS_UNAVAILABLE, what=None, first=0.001, cap=0.002)(swallowing_read)

    task = asyncio.create_task(loop())
    await started.wait()
    task.cancel()
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(task, timeout=30)
    assert len(calls) == 1
