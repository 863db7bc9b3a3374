"""KeyedOrder: one key's blocks one at a time and in arrival order, other keys alongside."""

from __future__ import annotations

import asyncio

from receiver.ordering import KeyedOrder


async def test_one_keys_blocks_run_in_arrival_order_and_other_keys_alongside():
    order = KeyedOrder()
    seen: list[str] = []
    release = asyncio.Event()

    async def work(key: str, name: str, wait: bool = False) -> None:
        async with order(key):
            seen.append(f"{name} in")
            if wait:
                await release.wait()
            seen.append(f"{name} out")

    first = asyncio.create_task(work("a", "a1", wait=True))
    await asyncio.sleep(0)
    second = asyncio.create_task(work("a", "a2"))
    other = asyncio.create_task(work("b", "b1"))
    await other
    assert seen == ["a1 in", "b1 in", "b1 out"]  # a2 waits for a1; b does not
    release.set()
    await asyncio.gather(first, second)
    assert seen[3:] == ["a1 out", "a2 in", "a2 out"]
    assert len(order) == 0  # nothing kept once the work is done
