"""The syslog listener's queue: lines waiting to be written, bounded, oldest first."""

from __future__ import annotations

from collections import Counter, deque
from itertools import islice


class LineQueue:
    """Lines waiting to be written, oldest first, bounded. A batch leaves only once written.

    Lines are kept as bare strings and their transports as runs: strings are not
    tracked by the garbage collector, whereas a container per datagram would be, and
    at 50,000 a second those survivors bring full collections of 150 ms, long
    enough for the kernel's receive buffer to overflow.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lines: deque[str] = deque()
        self._runs: deque[list] = deque()  # [transport, lines], oldest first

    @property
    def held(self) -> int:
        return len(self._lines)

    def offer(self, lines: list[str], transport: str) -> int:
        """Keep what fits; answers how many lines did not."""
        room = self.capacity - len(self._lines)
        if room <= 0:
            return len(lines)
        dropped = max(0, len(lines) - room)
        if dropped:
            lines = lines[:room]
        self._lines.extend(lines)
        if self._runs and self._runs[-1][0] == transport:
            self._runs[-1][1] += len(lines)
        else:
            self._runs.append([transport, len(lines)])
        return dropped

    def peek(self, limit: int) -> list[str]:
        """The oldest `limit` lines, left in the queue."""
        return list(islice(self._lines, limit))

    def commit(self, count: int) -> Counter:
        """Forget the oldest `count` lines; answers how many came by each transport."""
        popleft = self._lines.popleft
        for _ in range(count):
            popleft()
        removed: Counter = Counter()
        while count:
            run = self._runs[0]
            taken = min(count, run[1])
            removed[run[0]] += taken
            run[1] -= taken
            count -= taken
            if not run[1]:
                self._runs.popleft()
        return removed

    def clear(self) -> Counter:
        return self.commit(len(self._lines))
