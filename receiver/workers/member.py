"""What a process of a worker group does differently: it dies with its parent, and its metrics are the group's."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from .supervisor import MULTIPROC_ENV

_PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent dies, even by SIGKILL: a worker never outlives its group."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's stop is the only one
        return


def shares_metrics() -> bool:
    """Whether this process writes its metrics where its group's other processes read them."""
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What `/prometheus/metrics` shows of the process metrics: the whole group's sums, or this process's."""
    if not shares_metrics():
        return own
    group = CollectorRegistry()
    MultiProcessCollector(group)
    return group
