"""`GET /metrics/servers` against a real redis-server: which server of a backend fails."""

from __future__ import annotations

import pytest

from ingestion import Limits, MetricsStore
from ingestion.buckets import OTHER

from tests.ingestion.conftest import NOW, clock, write
from tests.support.records import record

pytestmark = pytest.mark.integration


async def test_servers_put_the_failing_one_first_and_its_healthy_peers_after(store, queries):
    await write(store, [record(NOW - 30, backend="web", server="web-1", ta=40)] * 50
                + [record(NOW - 30, backend="web", server="web-3", ta=60)] * 60
                + [record(NOW - 30, backend="web", server="web-2", status=503, ta=1503, tr=-1, term="SC--")] * 20
                + [record(NOW - 30, backend="web", server="web-2", status=404, ta=10)] * 2
                + [record(NOW - 30, backend="api", server="api-1", status=500, ta=30)] * 1)
    seen = await queries.servers(window=5)
    assert [(s.backend, s.server) for s in seen.servers] == [
        ("web", "web-2"), ("api", "api-1"), ("web", "web-3"), ("web", "web-1")]
    failing = seen.servers[0]
    assert (failing.requests, failing.errors_5xx, failing.errors_4xx) == (22, 20, 2)
    assert failing.status_codes == {"503": 20, "404": 2}
    assert failing.termination_states == {"SC": 20}
    assert failing.error_rate_5xx_pct == pct(20, 22) and failing.mean_ms == pytest.approx((20 * 1503 + 20) / 22, 1e-3)
    healthy = seen.servers[-1]
    assert (healthy.errors_5xx, healthy.status_codes, healthy.termination_states, healthy.mean_ms) == (0, {}, {}, 40)


def pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 3)


@pytest.mark.parametrize("backend, limit, want, more", [
    (None, 20, ["web/web-2", "api/api-2", "api/api-1", "web/web-1"], 0),
    (None, 2, ["web/web-2", "api/api-2"], 2),
    ("api", 20, ["api/api-2", "api/api-1"], 0),
    ("api", 1, ["api/api-2"], 1),
    ("nowhere", 20, [], 0),
])
async def test_servers_by_backend_and_limit(store, queries, backend, limit, want, more):
    await write(store, [record(NOW - 30, backend="api", server="api-1")] * 5
                + [record(NOW - 30, backend="api", server="api-2")] * 9
                + [record(NOW - 30, backend="web", server="web-1")] * 3
                + [record(NOW - 30, backend="web", server="web-2", status=502, term="SH--")])
    seen = await queries.servers(window=5, backend=backend, limit=limit)
    assert [f"{s.backend}/{s.server}" for s in seen.servers] == want
    assert seen.more_servers == more and seen.backend == backend


async def test_servers_beyond_the_hourly_cap_fold_into_other_per_backend(real_redis, queries):
    store = MetricsStore(real_redis, now=clock, limits=Limits(servers=3))
    await write(store, [record(NOW - 30, backend="api", server=f"api-{i}") for i in range(2)]
                + [record(NOW - 30, backend="web", server="web-0")])
    # Those admitted in the hour stay admitted; newcomers beyond the cap fold, in whichever backend.
    await write(store, [record(NOW - 20, backend="web", server=f"web-{i}") for i in range(4)]
                + [record(NOW - 20, backend="api", server="api-0"), record(NOW - 20, backend="api", server="api-9")])
    rows = {(s.backend, s.server): s.requests for s in (await queries.servers(window=5)).servers}
    assert rows == {("api", "api-0"): 2, ("api", "api-1"): 1, ("api", OTHER): 1,
                    ("web", "web-0"): 2, ("web", OTHER): 3}
