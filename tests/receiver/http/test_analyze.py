"""`POST /analyze` through the real app: the report as JSON, 422 on bad input, the model behind it."""

from __future__ import annotations

import fakeredis
import pytest
from pydantic import SecretStr

from agents import LLMClient
from receiver.app import create_app
from tests.support import fake_anthropic as fake
from tests.support.settings import with_settings

AT = "2026-03-02T09:15:00Z"


def build(settings, redis, *, llm=None):
    return create_app(settings, redis=redis, llm=llm)


@pytest.fixture
async def client(aiohttp_client, settings, fake_redis):
    return await aiohttp_client(build(settings, fake_redis))


async def test_analyze_answers_the_report(client):
    response = await client.post("/analyze", json={"at": AT, "window_minutes": 15, "backend": "api"})

    assert response.status == 200
    report = await response.json()
    assert report["window_minutes"] == 15
    assert report["window_end"].startswith("2026-03-02T09:15:00")
    assert report["backend"] == "api"
    assert [f["specialist"] for f in report["findings"]] == ["latency", "errors", "saturation", "traffic"]
    assert report["synthesis"]["mode"] == "rules"
    assert report["recommendations"]
    assert "postmortem" not in report


async def test_an_empty_body_uses_the_defaults(client):
    response = await client.post("/analyze")

    assert response.status == 200
    assert (await response.json())["window_minutes"] == 10


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"window_minutes": 0}, ["window_minutes"]),
        ({"window_minutes": 10_000}, ["window_minutes"]),
        ({"at": "yesterday"}, ["at"]),
        ({"at": "2026-03-02T09:15:00"}, ["at"]),  # a time without its zone is ambiguous
        ({"backend": ""}, ["backend"]),
        ({"postmortem": "please"}, ["postmortem"]),
        ({"windows": 5}, ["windows"]),
    ],
)
async def test_bad_input_is_422_with_field_errors(client, body, loc):
    response = await client.post("/analyze", json=body)

    assert response.status == 422
    answer = await response.json()
    assert answer["error"] == "invalid_body"
    assert [e["loc"] for e in answer["detail"]] == [loc]


async def test_a_body_that_is_not_an_object_is_422(client):
    response = await client.post("/analyze", json=[1, 2])

    assert response.status == 422


async def test_malformed_json_is_400(client):
    response = await client.post("/analyze", data=b"{", headers={"Content-Type": "application/json"})

    assert response.status == 400
    assert (await response.json())["error"] == "malformed_json"


async def test_postmortem_flag_answers_a_draft_of_the_report(client, settings):
    response = await client.post("/analyze", json={"at": AT, "backend": "api", "postmortem": True})

    answer = await response.json()
    draft = answer["postmortem"]
    assert draft["file_name"].startswith("2026-03-02-") and draft["file_name"].endswith(".md")
    assert draft["markdown"].startswith("# ")
    assert answer["title"] in draft["markdown"]
    assert "api" in draft["markdown"]
    assert not settings.postmortem_dir.exists() or not any(settings.postmortem_dir.iterdir())  # a draft only


async def test_the_analyze_token_is_required_when_set(aiohttp_client, settings, fake_redis):
    client = await aiohttp_client(build(with_settings(settings, analyze_token=SecretStr("s3cret")), fake_redis))

    assert (await client.post("/analyze")).status == 401
    assert (await client.post("/analyze", headers={"Authorization": "Bearer s3cret"})).status == 200


async def test_unreadable_metrics_are_503(aiohttp_client, settings):
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server, decode_responses=True)
    client = await aiohttp_client(build(settings, redis))
    server.connected = False

    response = await client.post("/analyze")

    assert response.status == 503
    assert (await response.json())["error"] == "signals_unavailable"
    assert response.headers["Retry-After"] == "5"
    await redis.aclose()


async def test_the_model_runs_behind_the_route(aiohttp_client, aiohttp_server, settings, fake_redis):
    api = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=fake.expert))
    configured = with_settings(settings, anthropic_api_key=SecretStr("k"), anthropic_base_url=api.base_url)
    client = await aiohttp_client(build(configured, fake_redis))

    report = await (await client.post("/analyze", json={"at": AT})).json()

    assert report["synthesis"]["mode"] == "llm"
    assert {f["provenance"]["mode"] for f in report["findings"]} == {"llm"}
    assert report["tokens"]["input_tokens"] > 0
    metrics = await (await client.get("/prometheus/metrics")).text()
    assert 'incident_copilot_analyses_total{mode="llm",outcome="ok"} 1.0' in metrics
    assert 'incident_copilot_llm_tokens_total{kind="input"}' in metrics


async def test_an_llm_passed_in_is_used_and_left_open(aiohttp_client, aiohttp_server, settings, fake_redis):
    api = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=fake.expert))
    llm = LLMClient.from_config(
        with_settings(settings, anthropic_api_key=SecretStr("k"), anthropic_base_url=api.base_url).analysis_config())
    client = await aiohttp_client(build(settings, fake_redis, llm=llm))

    report = await (await client.post("/analyze", json={"at": AT})).json()
    await client.close()

    assert report["synthesis"]["mode"] == "llm"
    assert await llm.start_analysis() is None  # still usable
    await llm.close()
