"""The pure decisions of a group of worker processes: how many, and how long to wait before a restart."""

from __future__ import annotations

import os
from dataclasses import dataclass


def cores() -> int:
    """Cores this process may run on (its affinity, where the system says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_count(wanted: int, available: int) -> int:
    """`wanted` processes; 0 means one per core."""
    return wanted if wanted > 0 else max(1, available)


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    """A worker that dies soon after its start is restarted after a growing delay; one that ran a while, at once."""

    first: float = 0.5
    cap: float = 30.0
    healthy_after: float = 60.0  # seconds a worker must run for its next death to count as the first

    def delay(self, previous: float, ran_seconds: float) -> float:
        """The wait before the next start, given the wait before this one (0: none yet) and how long it ran."""
        if ran_seconds >= self.healthy_after or previous <= 0:
            return self.first
        return min(self.cap, previous * 2)
