"""The simulated incidents as the views show them: what an analysis of each would read."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ingestion import Batch, TimeBounds, add_text_lines, generate_lines, scenario_timeline

from tests.ingestion.conftest import NOW

pytestmark = pytest.mark.integration

MINUTES = 12
LAST = int(NOW // 60)
START = datetime.fromtimestamp((LAST - MINUTES + 1) * 60, timezone.utc)
ONSET = MINUTES // 3  # the point of the series where each incident starts


async def ingest(store, scenario: str, rps: float) -> None:
    batch = Batch()
    bounds = TimeBounds(now=NOW, retention_seconds=6 * 3600, skew_seconds=300)
    add_text_lines(batch, generate_lines(scenario, start=START, minutes=MINUTES, rps=rps), tz=timezone.utc,
                   bounds=bounds)
    assert not batch.rejected
    await store.write(batch.buckets)


def test_each_incident_starts_at_the_point_the_tests_read():
    for scenario in ("backend-spike", "server-refusing", "latency-creep", "quiet-broken-backend"):
        onset = scenario_timeline(scenario, START, MINUTES).onset
        assert onset == datetime.fromtimestamp((LAST - MINUTES + 1 + ONSET) * 60, timezone.utc), scenario


async def test_server_refusing_shows_one_server_of_three_answering_every_request_503(store, queries):
    await ingest(store, "server-refusing", rps=5)
    seen = await queries.servers(window=MINUTES - ONSET, backend="web")
    refusing, *healthy = seen.servers
    assert (refusing.server, refusing.error_rate_5xx_pct, refusing.status_codes) == (
        "web-2", 100.0, {"503": refusing.requests})
    assert refusing.termination_states == {"SC": refusing.requests} and refusing.requests > 100
    assert sorted(s.server for s in healthy) == ["web-1", "web-3"]
    assert all(s.error_rate_5xx_pct < 2 and s.requests > 100 for s in healthy)


async def test_backend_spike_shows_on_its_backend_and_much_less_in_the_total(store, queries):
    await ingest(store, "backend-spike", rps=3)
    seen = await queries.series(minutes=MINUTES)
    web = next(b for b in seen.by_backend if b.backend == "web")
    before = sum(p.requests for p in web.points[:ONSET]) / ONSET
    peak = max(p.requests for p in web.points)
    total_before = sum(p.requests for p in seen.points[:ONSET]) / ONSET
    assert peak > 4 * before and max(p.requests for p in seen.points) < 2.5 * total_before
    assert seen.by_backend[0].backend == "web"


async def test_latency_creep_raises_the_backends_median_every_minute(store, queries):
    await ingest(store, "latency-creep", rps=40)
    seen = await queries.series(minutes=MINUTES, backend="checkout")
    medians = [p.p50_ms for p in seen.points[ONSET - 1:]]
    assert all(later > earlier for earlier, later in zip(medians, medians[1:])), medians
    assert seen.points[-1].p95_ms > 3 * seen.points[0].p95_ms


async def test_quiet_broken_backend_fails_under_the_floor_and_the_site_stays_healthy(store, queries):
    await ingest(store, "quiet-broken-backend", rps=3)
    seen = await queries.series(minutes=MINUTES)
    admin = seen.by_backend[-1]
    assert admin.backend == "admin", "the least busy backend"
    assert all(p.requests < 10 for p in admin.points)  # under a floor of ten a minute
    failing = [p for p in admin.points[ONSET:] if p.requests]
    assert failing and all(p.error_rate_5xx_pct == 100 for p in failing)
    assert all(p.error_rate_5xx_pct < 5 for p in seen.points)
