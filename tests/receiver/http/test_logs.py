"""`POST /logs`: every format, the batch answer, and the 4xx a sender can act on."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import orjson
import pytest

from receiver.app import create_app
from tests.support.settings import with_settings
from tests.support.records import body, line

HAPROXY_OK = '127.0.0.1:59732 [{d}.074] fe_httplog be/s1 0/0/0/1/1 200 142 - - ---- 1/1/0/0/0 0/0 "GET /api/items?id=1 HTTP/1.1"'
HAPROXY_DOWN = '127.0.0.1:59740 [{d}.100] fe_httplog be/s1 0/0/-1/-1/3005 503 217 - - SC-- 1/1/0/0/3 0/0 "GET /x HTTP/1.1"'


def haproxy_date(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts or time.time() - 1, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S")


def entry(**overrides) -> dict:
    value = {
        "time_local": datetime.now(timezone.utc).isoformat(), "client_ip": "10.1.2.3",
        "frontend_name": "fe_http", "backend_name": "api", "http_request": "GET /api/items/7 HTTP/1.1",
        "status_code": 200, "bytes_read": 512, "time_request": 0, "time_connect": 1, "time_response": 30,
        "time_active": 31, "termination_state": "----",
    }
    value.update(overrides)
    return value


@pytest.fixture
async def client(aiohttp_client, settings, fake_redis):
    return await aiohttp_client(create_app(settings, redis=fake_redis))


async def overview(client) -> dict:
    resp = await client.get("/metrics/overview")
    assert resp.status == 200
    return await resp.json()


async def test_raw_lines_from_haproxy_are_counted_and_a_bad_line_is_reported_alone(client):
    d = haproxy_date()
    resp = await client.post("/logs", data=body(HAPROXY_OK.format(d=d), "not a log line", HAPROXY_DOWN.format(d=d)),
                             headers={"Content-Type": "text/plain"})
    assert resp.status == 202
    answer = await resp.json()
    assert answer["accepted"] == 2 and answer["rejected"] == 1
    assert answer["errors"][0]["line"] == 2
    assert "not an HAProxy httplog line" in answer["errors"][0]["reason"]
    seen = await overview(client)
    assert (seen["total_requests"], seen["errors_5xx"]) == (2, 1)


async def test_syslog_framed_lines_land_in_the_same_aggregation(client):
    d = haproxy_date()
    rfc3164 = "<134>Nov 25 16:33:09 haproxy[14155]: " + HAPROXY_OK.format(d=d)
    rfc5424 = "<134>1 2026-11-25T16:33:12.844762+00:00 - haproxy 14155 - - " + HAPROXY_DOWN.format(d=d)
    resp = await client.post("/logs", data=body(rfc3164, rfc5424), headers={"Content-Type": "text/plain"})
    assert resp.status == 202
    assert (await overview(client))["total_requests"] == 2


async def test_json_entry_array_and_ndjson_are_accepted(client):
    assert (await client.post("/logs", json=entry())).status == 202
    assert (await client.post("/logs", json=[entry(status_code=500), entry(status_code=404)])).status == 202
    ndjson = b"\n".join([orjson.dumps(entry()), b"{broken", orjson.dumps(entry(status_code=503))])
    resp = await client.post("/logs", data=ndjson, headers={"Content-Type": "application/x-ndjson"})
    answer = await resp.json()
    assert resp.status == 202 and answer["accepted"] == 2 and answer["rejected"] == 1
    assert answer["errors"] == [{"line": 2, "reason": answer["errors"][0]["reason"]}]
    assert "not valid JSON" in answer["errors"][0]["reason"]
    seen = await overview(client)
    assert (seen["total_requests"], seen["errors_4xx"], seen["errors_5xx"]) == (5, 1, 2)


async def test_wrong_types_get_422_with_the_field_named(client):
    resp = await client.post("/logs", json=entry(status_code="two hundred"))
    assert resp.status == 422
    detail = (await resp.json())["detail"]
    assert any(problem["loc"] == ["status_code"] for problem in detail)


async def test_a_batch_keeps_its_good_entries_when_one_has_wrong_types(client):
    resp = await client.post("/logs", json=[entry(), entry(time_active="slow")])
    answer = await resp.json()
    assert resp.status == 202 and answer["accepted"] == 1
    assert "time_active" in answer["errors"][0]["reason"]


async def test_malformed_json_is_400_and_unknown_type_415(client):
    resp = await client.post("/logs", data=b"[{", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"] == "malformed_json"
    resp = await client.post("/logs", data=b"x", headers={"Content-Type": "application/xml"})
    assert resp.status == 415


async def test_nothing_accepted_is_400(client):
    resp = await client.post("/logs", data="garbage\nmore garbage\n", headers={"Content-Type": "text/plain"})
    assert resp.status == 400
    assert (await resp.json())["rejected"] == 2


async def test_body_over_the_limit_is_413(aiohttp_client, settings, fake_redis):
    small = with_settings(settings, max_body_bytes=2048)
    client = await aiohttp_client(create_app(small, redis=fake_redis))
    resp = await client.post("/logs", data="x" * 4096, headers={"Content-Type": "text/plain"})
    assert resp.status == 413
    assert (await resp.json())["error"] == "body_too_large"

    async def chunks():  # no Content-Length: the limit holds while reading, under the same name
        for _ in range(4):
            yield b"x" * 1024

    resp = await client.post("/logs", data=chunks(), headers={"Content-Type": "text/plain"})
    assert resp.status == 413
    assert (await resp.json())["error"] == "body_too_large"


async def test_timestamps_outside_retention_or_skew_are_rejected_with_the_reason(client):
    old = time.time() - 7 * 3600
    future = time.time() + 3600
    resp = await client.post("/logs", data=body(line(old), line(future), line()),
                             headers={"Content-Type": "text/plain"})
    answer = await resp.json()
    assert answer["accepted"] == 1 and answer["rejected"] == 2
    reasons = [e["reason"] for e in answer["errors"]]
    assert "older than the retention" in reasons[0]
    assert "in the future" in reasons[1]


async def test_request_id_is_returned_and_kept_when_given(client):
    resp = await client.get("/health")
    assert len(resp.headers["X-Request-ID"]) >= 16
    resp = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"


async def test_ingest_token_is_enforced_when_configured(aiohttp_client, settings, fake_redis):
    locked = with_settings(settings, ingest_token="s3cret")
    client = await aiohttp_client(create_app(locked, redis=fake_redis))
    assert (await client.post("/logs", json=entry())).status == 401
    resp = await client.post("/logs", json=entry(), headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 202
