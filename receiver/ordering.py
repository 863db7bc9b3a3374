"""One key's work in the order it was taken, while other keys' work runs alongside."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable


class KeyedOrder:
    """`async with order(key):` runs the blocks of one key one at a time, in the order they arrived.

    asyncio's locks wake waiters first in, first out; a key's lock is dropped once nobody holds or
    waits for it, so the table stays as small as the work in flight.
    """

    def __init__(self) -> None:
        self._slots: dict[Hashable, list] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, key: Hashable) -> AsyncIterator[None]:
        slot = self._slots.setdefault(key, [asyncio.Lock(), 0])
        slot[1] += 1
        try:
            async with slot[0]:
                yield
        finally:
            slot[1] -= 1
            if slot[1] == 0:
                del self._slots[key]

    def __len__(self) -> int:
        return len(self._slots)
