"""Redis or the model going away: clear 503s with a reason, no crash, nothing lost, recovery without a restart."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from receiver.app import create_app
from receiver.appkeys import ALERT_STREAM
from tests.support import fake_anthropic as fake
from tests.support.redis_server import free_port
from tests.support.settings import with_settings
from tests.support.records import body, line

from tests.support.incidents import Service, eventually, payload

pytestmark = pytest.mark.integration

TEXT = {"Content-Type": "text/plain"}
UNREACHABLE = "model API unreachable"


async def start_service(aiohttp_client, settings, **overrides) -> Service:
    """The app with its own Redis client and its worker, as `incident-copilot serve` runs it."""
    app = create_app(with_settings(settings, run_worker=True, **overrides))
    client = await aiohttp_client(app)
    return Service(client, app[ALERT_STREAM], settings.postmortem_dir)


async def test_redis_stopped_mid_run_gives_503_then_the_service_recovers(aiohttp_client, settings,
                                                                        durable_redis_server):
    client = await aiohttp_client(create_app(with_settings(settings, redis_url=durable_redis_server.url)))
    assert (await client.post("/logs", data=body(line()), headers=TEXT)).status == 202

    durable_redis_server.stop()
    try:
        resp = await client.post("/logs", data=body(line(), line()), headers=TEXT)
        assert resp.status == 503
        answer = await resp.json()
        assert answer["error"] == "redis_unavailable" and "Redis" in answer["detail"]
        assert resp.headers["Retry-After"]
        health = await client.get("/health")
        assert health.status == 503 and (await health.json())["redis"] == "unreachable"
        assert (await client.get("/metrics/overview")).status == 503
    finally:
        durable_redis_server.start()

    assert (await client.get("/health")).status == 200
    assert (await client.post("/logs", data=body(line(), line()), headers=TEXT)).status == 202
    seen = await (await client.get("/metrics/overview")).json()
    assert seen["total_requests"] == 3  # the line taken before the outage and the two after; none of the refused


@pytest.mark.parametrize("answer_while_down", [False, True], ids=["model-answers-after-restart",
                                                                   "model-answers-while-redis-is-down"])
async def test_redis_crash_mid_analysis_loses_no_incident(aiohttp_client, aiohttp_server, settings,
                                                          durable_redis_server, answer_while_down):
    model = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=fake.expert))
    model.hold()
    service = await start_service(aiohttp_client, settings, redis_url=durable_redis_server.url,
                                  anthropic_api_key=SecretStr("sk-test"), anthropic_base_url=model.base_url,
                                  worker_reclaim_idle_seconds=30)
    await service.post(payload("backend-5xx-firing"))

    async def analysing() -> bool:
        return model.in_flight > 0

    async def answered() -> bool:
        return model.in_flight == 0 and bool(model.sent("synthesis"))

    await eventually(analysing)
    durable_redis_server.stop(kill=True)
    if answer_while_down:
        model.release()
        await eventually(answered)  # the report is done, and Redis is not there to take it
    durable_redis_server.start()
    model.release()

    [row] = await service.diagnosed()  # and no notification left pending
    report = (await service.incident(row["id"]))["report"]
    assert report["synthesis"]["mode"] == "llm" and report["diagnosis"].startswith("Model: ")
    assert "No diagnosis yet." not in (service.directory / row["postmortem_file"]).read_text()
    # The finished analysis waited for Redis instead of being thrown away and paid for again.
    assert len(model.sent("synthesis")) == 1


async def test_an_unreachable_model_falls_back_to_the_rules(aiohttp_client, settings, redis_server, real_redis):
    # Nothing listens on the port: every model call is refused at once.
    closed = f"http://127.0.0.1:{free_port()}"
    service = await start_service(aiohttp_client, settings, anthropic_api_key=SecretStr("sk-test"),
                                  anthropic_base_url=closed, redis_url=redis_server.url)

    response = await service.client.post("/analyze", json={"backend": "api"})
    assert response.status == 200
    report = await response.json()
    assert report["synthesis"]["mode"] == "rules"
    assert {f["provenance"]["fallback_reason"] for f in report["findings"]} == {UNREACHABLE}

    await service.post(payload("backend-5xx-firing"))
    [row] = await service.diagnosed()
    report = (await service.incident(row["id"]))["report"]
    assert report["synthesis"]["mode"] == "rules" and report["diagnosis"]
    assert {f["provenance"]["fallback_reason"] for f in report["findings"]} == {UNREACHABLE}


async def test_service_started_without_redis_url_runs_its_own_and_stops_it(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/health")).status == 200
    sock = settings.data_dir.resolve() / "redis.sock"
    assert sock.exists()
    await client.close()
    assert not sock.exists()  # redis-server removes its socket when it exits
