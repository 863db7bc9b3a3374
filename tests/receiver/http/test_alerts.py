"""`POST /alerts`: what Alertmanager sees (status codes per its retry contract) and what gets stored."""

from __future__ import annotations

import base64
import io
import json

import orjson
import pytest
from redis.asyncio import Redis

from receiver.app import create_app
from receiver.incidents.stream import STREAM
from receiver.settings import Settings

from tests.support.incidents import payload

pytestmark = pytest.mark.integration

TOKEN = "hook-secret"


def configured(settings: Settings, **overrides) -> Settings:
    return Settings(_env_file=None, **{**settings.model_dump(), **overrides})


@pytest.fixture
async def client(real_redis: Redis, settings: Settings, aiohttp_client):
    app = create_app(configured(settings, run_worker=False), redis=real_redis)
    return await aiohttp_client(app)


@pytest.fixture
async def guarded(real_redis: Redis, settings: Settings, aiohttp_client):
    app = create_app(configured(settings, run_worker=False, webhook_token=TOKEN), redis=real_redis)
    return await aiohttp_client(app)


async def stored(redis: Redis) -> list[dict]:
    return [fields for _, fields in await redis.xrange(STREAM)]


async def test_a_notification_is_in_the_stream_before_200(client, real_redis: Redis) -> None:
    response = await client.post("/alerts", json=payload("firing"))
    assert response.status == 200
    answer = await response.json()
    [fields] = await stored(real_redis)
    assert answer["entry"] == (await real_redis.xrange(STREAM))[0][0]
    notification = json.loads(fields["notification"])
    assert notification["groupKey"] == '{}:{alertname="FeasTest"}'
    assert notification["alerts"][0]["fingerprint"] == "c472b0ebc3f6c4c9"


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401),
    ("Bearer wrong", 401),
    ("Bearer " + TOKEN, 200),
    ("Basic " + base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode(), 200),
    ("Basic " + base64.b64encode(b"alertmanager:wrong").decode(), 401),
    ("Token " + TOKEN, 401),
])
async def test_the_webhook_token(guarded, real_redis: Redis, authorization: str | None, status: int) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await guarded.post("/alerts", json=payload("firing"), headers=headers)
    assert response.status == status
    assert len(await stored(real_redis)) == (1 if status == 200 else 0)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_malformed_json_is_a_final_400(client, real_redis: Redis) -> None:
    response = await client.post("/alerts", data=b'{"receiver": "hook", ', headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"] == "malformed_json"
    assert await stored(real_redis) == []


async def test_a_body_that_is_not_a_notification_is_a_422_naming_the_fields(client, real_redis: Redis) -> None:
    body = payload("firing")
    del body["alerts"][0]["startsAt"]
    body["status"] = "pending"
    response = await client.post("/alerts", json=body)
    assert response.status == 422
    answer = await response.json()
    assert answer["error"] == "invalid_body"
    assert {tuple(e["loc"]) for e in answer["detail"]} == {("status",), ("alerts", 0, "startsAt")}
    assert (await client.post("/alerts", json=[payload("firing")])).status == 422
    assert await stored(real_redis) == []


@pytest.fixture
async def small(real_redis: Redis, settings: Settings, aiohttp_client):
    app = create_app(configured(settings, run_worker=False, alerts_max_body_bytes=64 * 1024, alerts_max_alerts=3),
                     redis=real_redis)
    return await aiohttp_client(app)


async def test_a_body_over_alerts_max_body_bytes_is_a_413_and_counted(small, real_redis: Redis) -> None:
    body = payload("firing")
    body["commonAnnotations"]["description"] = "x" * (64 * 1024)
    response = await small.post("/alerts", data=io.BytesIO(orjson.dumps(body)),
                                headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"

    async def chunks():  # no Content-Length: the limit still holds while reading
        raw = orjson.dumps(body)
        for start in range(0, len(raw), 16384):
            yield raw[start:start + 16384]

    response = await small.post("/alerts", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"
    assert await stored(real_redis) == []
    text = await (await small.get("/prometheus/metrics")).text()
    assert 'incident_copilot_alert_notifications_oversize_total{outcome="refused"} 2.0' in text


async def test_the_default_limit_takes_ten_thousand_alerts(client, real_redis: Redis) -> None:
    raw = orjson.dumps(storm(10_000))
    assert len(raw) > 4 * 1024 * 1024  # four times the old fixed limit
    response = await client.post("/alerts", data=io.BytesIO(raw), headers={"Content-Type": "application/json"})
    assert response.status == 200
    answer = await response.json()
    assert (answer["alerts"], answer["truncatedAlerts"]) == (1000, 9000)


async def test_too_many_alerts_keeps_the_first_and_counts_the_rest(small, real_redis: Redis) -> None:
    body = storm(5)
    body["truncatedAlerts"] = 7  # what Alertmanager's own max_alerts left out adds up
    response = await small.post("/alerts", json=body)
    assert response.status == 200
    assert (await response.json())["truncatedAlerts"] == 9
    [fields] = await stored(real_redis)
    notification = json.loads(fields["notification"])
    assert [a["fingerprint"] for a in notification["alerts"]] == [a["fingerprint"] for a in body["alerts"][:3]]
    assert notification["truncatedAlerts"] == 9
    text = await (await small.get("/prometheus/metrics")).text()
    assert 'incident_copilot_alert_notifications_oversize_total{outcome="truncated"} 1.0' in text


def storm(count: int) -> dict:
    """One group of `count` alerts, each about as large as a real one with its annotations."""
    body = payload("firing")
    template = body["alerts"][0]
    body["alerts"] = [{**template, "fingerprint": f"{i:016x}",
                       "labels": {**template["labels"], "instance": f"node-{i}.internal:9100"},
                       "annotations": {"summary": f"node-{i} is down", "description": "d" * 200}}
                      for i in range(count)]
    return body


async def test_redis_down_is_a_503_alertmanager_retries_and_the_service_recovers(client, real_redis, redis_server):
    redis_server.stop()
    try:
        response = await client.post("/alerts", json=payload("firing"))
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert (await response.json())["error"] == "redis_unavailable"
    finally:
        redis_server.start()
    retried = await client.post("/alerts", json=payload("firing"))
    assert retried.status == 200
    assert len(await stored(real_redis)) == 1


async def test_notifications_are_counted_by_status(client) -> None:
    for name in ("firing", "firing", "resolved"):
        assert (await client.post("/alerts", json=payload(name))).status == 200
    await client.post("/alerts", data=b"nonsense")
    text = await (await client.get("/prometheus/metrics")).text()
    assert 'incident_copilot_alert_notifications_total{status="firing"} 2.0' in text
    assert 'incident_copilot_alert_notifications_total{status="resolved"} 1.0' in text
