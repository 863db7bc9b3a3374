"""`GET /metrics/samples`: a few failing or slow requests kept whole, against a real redis-server."""

from __future__ import annotations

import pytest

from ingestion import Limits, MetricsStore
from ingestion.buckets import SAMPLES_PER_BACKEND

from tests.ingestion.conftest import NOW, clock, write
from tests.support.records import record

pytestmark = pytest.mark.integration


async def test_failures_first_then_the_slowest_without_client_address_or_query_string(store, queries):
    await write(store, [
        record(NOW - 30, backend="api", server="api-2", path="/api/items/17?token=secret", status=503, ta=1510,
               term="SC--"),
        record(NOW - 20, backend="api", server="api-1", path="/api/search?q=x", ta=1800),
        record(NOW - 10, backend="api", server="api-1", ta=20),  # fast and fine: not kept
        record(NOW - 5, backend="web", server="web-1", status=500, ta=40),
    ])

    seen = await queries.samples(window=5)

    assert [(s.backend, s.server, s.status) for s in seen.requests] == [
        ("api", "api-2", 503), ("web", "web-1", 500), ("api", "api-1", 200)]
    refused = seen.requests[0]
    assert (refused.route, refused.termination_state, refused.time_active_ms) == ("GET /api/items/{id}", "SC--", 1510)
    assert "secret" not in seen.model_dump_json() and "10.0.0.1" not in seen.model_dump_json()
    assert [s.backend for s in (await queries.samples(window=5, backend="web")).requests] == ["web"]


async def test_only_the_best_few_of_a_minute_are_kept_across_batches(store, queries, real_redis):
    for batch in range(3):
        await write(store, [record(NOW - 30 + batch + i / 10, backend="api", ta=1000 + 100 * batch + i)
                            for i in range(4)])
    await write(store, [record(NOW - 20, backend="api", status=502, ta=5)])

    seen = await queries.samples(window=1, limit=25)

    assert len(seen.requests) == SAMPLES_PER_BACKEND
    assert seen.requests[0].status == 502  # a failure outranks any slow success
    assert [s.time_active_ms for s in seen.requests[1:]] == [1203, 1202, 1201, 1200]
    keys = [k async for k in real_redis.scan_iter("ic:m:{*}:s:*")]
    assert len(keys) == 1 and await real_redis.ttl(keys[0]) > 0


async def test_a_folded_backend_keeps_its_samples_under_other(real_redis, queries):
    store = MetricsStore(real_redis, limits=Limits(backends=1), now=clock)
    await write(store, [record(NOW - 10, backend="api", status=500), record(NOW - 9, backend="extra", status=500)])

    seen = await queries.samples(window=1)

    assert sorted(s.backend for s in seen.requests) == ["__other__", "api"]
