"""How many model-backed analyses an hour may start: a sliding window over an injected clock."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

_HOUR = 3600.0


class HourlyBudget:
    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._starts: deque[float] = deque()

    def try_acquire(self) -> bool:
        """Take one analysis from the budget; False when this hour's are spent."""
        now = self._clock()
        while self._starts and now - self._starts[0] >= _HOUR:
            self._starts.popleft()
        if len(self._starts) >= self._limit:
            return False
        self._starts.append(now)
        return True
