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


async def test_a_body_over_a_mebibyte_is_a_413(client, real_redis: Redis) -> None:
    body = payload("firing")
    body["commonAnnotations"]["description"] = "x" * (1024 * 1024)
    response = await client.post("/alerts", data=io.BytesIO(orjson.dumps(body)),
                                 headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"

    async def chunks():  # no Content-Length: the limit still holds while reading
        raw = orjson.dumps(body)
        for start in range(0, len(raw), 65536):
            yield raw[start:start + 65536]

    response = await client.post("/alerts", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"
    assert await stored(real_redis) == []


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
