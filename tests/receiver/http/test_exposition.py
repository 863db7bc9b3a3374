"""`GET /prometheus/metrics`: names, labels and histogram buckets a scrape sees."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from receiver.app import create_app
from tests.support.records import body, line


async def scrape(client) -> dict:
    resp = await client.get("/prometheus/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def test_requests_latency_and_ingest_counters_are_exposed(aiohttp_client, settings, fake_redis):
    client = await aiohttp_client(create_app(settings, redis=fake_redis))
    lines = [line(backend="api", ta=120)] * 3 + [line(backend="api", status=503, ta=3005, term="SC--")]
    await client.post("/logs", data=body(*lines, "junk"), headers={"Content-Type": "text/plain"})
    s = await scrape(client)
    key = ("haproxy_log_requests_total", (("backend", "api"), ("code_class", "2xx"), ("frontend", "fe_http")))
    assert s[key] == 3
    assert s[("haproxy_log_requests_total", (("backend", "api"), ("code_class", "5xx"), ("frontend", "fe_http")))] == 1
    bucket = "haproxy_log_request_duration_seconds_bucket"
    assert s[(bucket, (("backend", "api"), ("le", "0.1")))] == 0
    assert s[(bucket, (("backend", "api"), ("le", "0.25")))] == 3
    assert s[(bucket, (("backend", "api"), ("le", "+Inf")))] == 4
    assert s[("haproxy_log_request_duration_seconds_count", (("backend", "api"),))] == 4
    assert abs(s[("haproxy_log_request_duration_seconds_sum", (("backend", "api"),))] - 3.365) < 1e-9
    assert s[("haproxy_log_termination_states_total", (("backend", "api"), ("state", "SC")))] == 1
    assert s[("incident_copilot_ingest_lines_accepted_total", (("source", "http"),))] == 4
    assert s[("incident_copilot_ingest_lines_rejected_total", (("reason", "parse_error"), ("source", "http")))] == 1
    assert ("incident_copilot_redis_memory_used_bytes", ()) in s
    assert ("incident_copilot_ingest_batch_lines_count", (("source", "http"),)) in s
