"""Latency histograms that merge by addition: across minutes, backends and replicas.

Two bucketings of the same values (milliseconds):
- log-linear buckets (relative width 2*ALPHA): a quantile read from them is within
  ALPHA of the exact value at that rank; this backs P50/P95/P99.
- Prometheus' `le` buckets (seconds), for the exposition and for coarse per-path bounds.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from functools import lru_cache

ALPHA = 0.02
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
# Values down to 1 µs get a positive index; 0 (and below) has bucket 0.
_OFFSET = 1 - math.ceil(math.log(0.001) / _LOG_GAMMA)

LE_BOUNDS_SECONDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
LE_BOUNDS_MS: tuple[float, ...] = tuple(b * 1000 for b in LE_BOUNDS_SECONDS)
LE_INF = len(LE_BOUNDS_MS)  # index of the +Inf bucket


@lru_cache(maxsize=65536)
def bucket_index(ms: float) -> int:
    """Log-linear bucket of a latency in milliseconds."""
    if ms <= 0:
        return 0
    return max(1, math.ceil(math.log(ms) / _LOG_GAMMA) + _OFFSET)


def bucket_value(index: int) -> float:
    """The value reported for a bucket: within ALPHA of anything that falls in it."""
    if index <= 0:
        return 0.0
    upper = GAMMA ** (index - _OFFSET)
    return 2 * upper / (GAMMA + 1)


@lru_cache(maxsize=65536)
def le_index(ms: float) -> int:
    """Index of the smallest `le` bound that holds ms (LE_INF for +Inf)."""
    return bisect_left(LE_BOUNDS_MS, ms)


def quantiles(counts: Mapping[int, int], qs: tuple[float, ...]) -> list[float | None]:
    """Nearest-rank quantiles from log-linear bucket counts; None for an empty histogram."""
    total = sum(counts.values())
    if total <= 0:
        return [None] * len(qs)
    ranks = [max(1, math.ceil(q * total)) for q in qs]
    out: list[float | None] = [None] * len(qs)
    order = sorted(range(len(qs)), key=lambda i: ranks[i])
    seen = 0
    pending = iter(order)
    current = next(pending, None)
    for index in sorted(counts):
        seen += counts[index]
        while current is not None and seen >= ranks[current]:
            out[current] = bucket_value(index)
            current = next(pending, None)
        if current is None:
            break
    return out


def le_quantile(counts: Mapping[int, int], q: float) -> float | None:
    """Upper bound (ms) of the `le` bucket that holds the q-quantile; inf past the last bound."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return LE_BOUNDS_MS[index] if index < LE_INF else math.inf
    return math.inf
