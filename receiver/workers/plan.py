"""The pure decisions of a group of worker processes: how many, and how long to wait before a restart."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path


_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cores() -> int:
    """Cores this process may use: its affinity, and no more than its cgroup's CPU quota (a container's limit)."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    try:
        quota = cpu_quota(_CGROUP_CPU_MAX.read_text())
    except OSError:
        quota = None
    return max(1, min(available, quota) if quota else available)


def cpu_quota(cpu_max: str) -> int | None:
    """Whole cores a cgroup v2 `cpu.max` ("200000 100000", or "max 100000") allows, rounded up; None: no limit."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return max(1, math.ceil(quota / period)) if period > 0 and quota > 0 else None


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
