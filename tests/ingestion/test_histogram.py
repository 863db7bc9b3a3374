"""Percentiles from the mergeable histogram against the exact values of the same data."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given, settings, strategies as st

from ingestion.histogram import ALPHA, bucket_index, le_index, le_quantile, quantiles, LE_BOUNDS_MS

QS = (0.50, 0.95, 0.99)


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def histogram(values) -> Counter:
    return Counter(bucket_index(v) for v in values)


latencies = st.lists(
    st.one_of(st.integers(0, 600_000), st.floats(0.001, 600_000, allow_nan=False)), min_size=1, max_size=400
)


@settings(max_examples=300, deadline=None)
@given(latencies)
def test_percentiles_are_within_two_percent_of_exact(values):
    for q, got in zip(QS, quantiles(histogram(values), QS)):
        want = exact(values, q)
        if want == 0:
            assert got == 0
        else:
            assert abs(got - want) / want <= ALPHA * (1 + 1e-9), (q, want, got)


@settings(max_examples=100, deadline=None)
@given(latencies, latencies)
def test_histograms_merge_by_addition(a, b):
    merged = histogram(a) + histogram(b)
    assert merged == histogram(a + b)
    for q, got in zip(QS, quantiles(merged, QS)):
        want = exact(a + b, q)
        assert want == 0 and got == 0 or abs(got - want) / want <= ALPHA * (1 + 1e-9)


def test_empty_histogram_has_no_percentiles():
    assert quantiles(Counter(), QS) == [None, None, None]
    assert le_quantile(Counter(), 0.95) is None


def test_le_buckets_follow_prometheus_convention():
    # `le` is inclusive: 500 ms is counted in the 0.5 s bucket, 501 ms in the next.
    assert LE_BOUNDS_MS[le_index(500)] == 500
    assert LE_BOUNDS_MS[le_index(501)] == 750
    assert le_index(10_001) == len(LE_BOUNDS_MS)
    assert le_quantile(Counter({le_index(30): 90, le_index(800): 10}), 0.95) == 1000
