"""The store and the queries against a real redis-server: what `GET /metrics/*` answers."""

from __future__ import annotations

import itertools
import math
import random
import string
from datetime import datetime, timezone

import pytest

from ingestion import Batch, Limits, MetricsStore, RejectedLine, TimeBounds, collect_metrics
from ingestion.buckets import OTHER

from tests.ingestion.conftest import NOW, clock, write
from tests.support.records import record

pytestmark = pytest.mark.integration

async def test_overview_and_status_codes_count_exactly(store, queries):
    records = [record(NOW - 30, status=200)] * 90 + [record(NOW - 90, status=503)] * 6 + \
              [record(NOW - 200, status=404)] * 4
    await write(store, records)
    seen = await queries.overview(window=5)
    assert (seen.total_requests, seen.errors_4xx, seen.errors_5xx) == (100, 4, 6)
    assert seen.error_rate_5xx_pct == 6.0 and seen.error_rate_4xx_pct == 4.0
    assert seen.requests_per_minute == 20.0
    codes = await queries.status_codes(window=5)
    assert codes.codes == {"200": 90, "503": 6, "404": 4}


async def test_window_excludes_older_minutes_and_at_replays_the_past(store, queries):
    await write(store, [record(NOW - 30)] * 5 + [record(NOW - 3600)] * 7)
    assert (await queries.overview(window=5)).total_requests == 5
    past = datetime.fromtimestamp(NOW - 3590, timezone.utc)
    assert (await queries.overview(window=5, at=past)).total_requests == 7


async def test_backend_percentiles_are_within_two_percent_of_exact(store, queries):
    rng = random.Random(7)
    latencies = [int(rng.lognormvariate(4, 1)) for _ in range(3000)]
    await write(store, [record(NOW - rng.uniform(0, 240), backend="api", ta=ms) for ms in latencies])
    await write(store, [record(NOW - 10, backend="web", ta=5)] * 10)
    stats = {b.backend: b for b in (await queries.backends(window=5)).backends}
    ordered = sorted(latencies)
    for q, got in ((0.5, stats["api"].p50_ms), (0.95, stats["api"].p95_ms), (0.99, stats["api"].p99_ms)):
        want = ordered[math.ceil(q * len(ordered)) - 1]
        assert abs(got - want) / want <= 0.02
    assert [b.backend for b in (await queries.backends(window=5)).backends] == ["api", "web"]
    rt = await queries.response_times(window=5, backend="web")
    assert rt.count == 10 and abs(rt.p99 - 5) / 5 <= 0.02


async def test_paths_are_folded_and_ranked_by_errors_and_latency(store, queries):
    records = [record(NOW - 20, method="POST", path=f"/api/checkout?cart={i}", backend="checkout", status=401)
               for i in range(25)]
    records += [record(NOW - 20, method="POST", path="/api/checkout", backend="checkout", status=200)] * 75
    records += [record(NOW - 20, path=f"/api/items/{i}", ta=1800) for i in range(20)]
    await write(store, records)
    paths = await queries.paths(window=5)
    top = paths.top_by_errors[0]
    assert top.route == "POST /api/checkout"
    assert (top.requests, top.errors_4xx, top.status_codes) == (100, 25, {"401": 25})
    slow = paths.top_by_latency[0]
    assert slow.route == "GET /api/items/{id}" and slow.p95_ms == 2500 and slow.mean_ms == 1800
    only_api = await queries.paths(window=5, backend="api")
    assert [p.route for p in only_api.top_by_latency] == ["GET /api/items/{id}"]


async def test_termination_states_show_who_ended_the_session(store, queries):
    await write(store, [record(NOW - 5, status=504, ta=30000, tr=-1, term="sH--")] * 3
                + [record(NOW - 5, status=503, ta=3005, tr=-1, term="SC--", backend="auth")] * 2
                + [record(NOW - 5)] * 5)
    states = await queries.termination_states(window=5)
    assert states.states == {"--": 5, "sH": 3, "SC": 2}
    assert states.by_backend["auth"] == {"SC": 2}


async def test_rps_is_zero_filled_oldest_first(store, queries):
    await write(store, [record(NOW - 125)] * 3 + [record(NOW - 5)] * 2)
    series = await queries.rps(minutes=4)
    assert [p.requests for p in series.points] == [0, 3, 0, 2]
    assert series.points[0].minute < series.points[-1].minute


async def test_saturation_reports_redis_and_haproxy_queueing(store, queries):
    await write(store, [record(NOW - 5, tw=40, srv_queue=3)] * 4 + [record(NOW - 5)] * 4)
    sat = await queries.saturation(window=5)
    assert sat.redis.used_memory_bytes > 0 and sat.redis.connected_clients >= 1
    assert sat.haproxy.queued_requests == 4 and sat.haproxy.queued_pct == 50.0
    assert sat.haproxy.max_srv_queue == 3 and sat.haproxy.mean_queue_ms == 20.0


async def test_cardinality_beyond_the_cap_folds_into_other(real_redis, queries):
    store = MetricsStore(real_redis, now=clock, limits=Limits(backends=3, frontends=2, paths=5))
    await write(store, [record(NOW - 5, backend=f"be{i}", path=f"/p{i}/x") for i in range(10)])
    names = {b.backend: b.requests for b in (await queries.backends(window=5)).backends}
    assert len(names) == 4 and names["__other__"] == 7
    assert sum(names.values()) == 10


async def test_100000_status_codes_and_states_fold_into_other_and_stay_bounded(store, queries, real_redis):
    batch = Batch()
    bounds = TimeBounds(now=NOW, retention_seconds=6 * 3600, skew_seconds=300)
    rejected = 0
    for status in range(-1, 99_999):
        try:
            batch.add(record(NOW - 5, status=status), bounds)
        except RejectedLine:
            rejected += 1
    # Every first character with every second one (first varies fastest), then the cookie flags.
    letters = "-" + string.ascii_letters
    states = ("".join(reversed(chars)) for chars in itertools.product(letters, repeat=4))
    for state in itertools.islice(states, 100_000):
        batch.add(record(NOW - 5, term=state), bounds)
    await store.write(batch.buckets)

    limits = Limits()
    assert rejected == 100_000 - 502, "only -1, 0 and 100 to 599 are statuses HAProxy writes"
    codes = (await queries.status_codes(window=5)).codes
    assert len(codes) == limits.status_codes + 1 and codes[OTHER] > 0
    assert sum(codes.values()) == 502 + 100_000
    seen = await queries.termination_states(window=5)
    assert len(seen.states) == limits.states + 1 and seen.states[OTHER] > 0
    assert seen.total_requests == 502 + 100_000
    minute = int((NOW - 5) // 60)
    assert await real_redis.hlen(f"ic:m:{{{minute}}}:b:api") < 2 * (limits.status_codes + limits.states) + 100
    families = {family.name: family for family in await collect_metrics(real_redis, now=clock)}
    assert len(families["haproxy_log_termination_states"].samples) == limits.states + 1


async def test_every_key_written_has_a_ttl(store, real_redis):
    await write(store, [record(NOW - 5, status=s) for s in (200, 404, 503)])
    keys = [k async for k in real_redis.scan_iter("*")]
    assert keys
    for key in keys:
        assert await real_redis.ttl(key) > 0, key


async def test_late_lines_for_a_settled_minute_invalidate_the_cache(store, queries):
    await write(store, [record(NOW - 240)] * 3)
    assert (await queries.overview(window=5)).total_requests == 3
    await write(store, [record(NOW - 240)] * 2)
    assert (await queries.overview(window=5)).total_requests == 5
