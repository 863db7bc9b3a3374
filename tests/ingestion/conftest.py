"""A store and queries on a real redis-server, under one fixed clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ingestion import Batch, MetricsQueries, MetricsStore, TimeBounds

NOW = 1_795_000_000.0  # a fixed clock, 40 s into its minute
AT = datetime.fromtimestamp(NOW, timezone.utc)


def clock() -> float:
    return NOW


async def write(store: MetricsStore, records) -> None:
    """Aggregate records as a batch of the ingestion would, and write it."""
    batch = Batch()
    bounds = TimeBounds(now=NOW, retention_seconds=6 * 3600, skew_seconds=300)
    for r in records:
        batch.add(r, bounds)
    await store.write(batch.buckets)


@pytest.fixture
def store(real_redis):
    return MetricsStore(real_redis, retention_minutes=360, now=clock)


@pytest.fixture
def queries(real_redis):
    return MetricsQueries(real_redis, now=clock)
