"""The service end to end: Alertmanager posts, the in-process worker analyses, users read incidents."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from receiver.app import create_app
from receiver.appkeys import ALERT_STREAM, INCIDENT_ANALYSIS
from receiver.incidents import IncidentAnalysis
from receiver.settings import Settings

from tests.support.incidents import FakeAnalysis, Service, eventually, group_payload, ok_report, payload

pytestmark = pytest.mark.integration


def configured(settings: Settings, **overrides) -> Settings:
    return Settings(_env_file=None, **{**settings.model_dump(), **overrides})


@pytest.fixture
async def service(real_redis: Redis, settings: Settings, aiohttp_client) -> Service:
    # Redis is set up first so that it is closed last, after the app (and its worker) stopped.
    settings = configured(settings, analysis_concurrency=3, run_worker=True)
    analyse, recheck = FakeAnalysis(delay=0.01), FakeAnalysis(ok_report())
    app = create_app(settings, redis=real_redis)
    app[INCIDENT_ANALYSIS] = IncidentAnalysis(analyse=analyse, recheck=recheck)
    client = await aiohttp_client(app)
    return Service(client, app[ALERT_STREAM], settings.postmortem_dir, analyse=analyse, recheck=recheck)


async def test_from_alert_to_post_mortem(service: Service) -> None:
    await service.post(payload("backend-5xx-firing"))
    [row] = await service.diagnosed()
    assert row["status"] == "open" and row["severity"] == "critical"
    assert row["title"] == "Backend api: 5xx rate above 10%"

    detail = await service.incident(row["id"])
    assert detail["report"]["title"] == "5xx errors on backend api"
    assert detail["alerts"][0]["labels"]["backend"] == "api"
    assert "applied" not in detail and "seen" not in detail

    await service.post(payload("backend-5xx-resolved"))

    async def resolved():
        body = await service.incident(row["id"])
        return body if body["status"] == "resolved" and body["recheck"] else None

    closed = await eventually(resolved)
    await service.settled()  # the worker renders the post-mortem again before it acknowledges
    assert closed["durations_seconds"]["time_to_resolve"] > 0

    async def checked_in_the_postmortem():  # the check is saved, then its post-mortem rendered: the last write
        return "A rules-only check over the" in (service.directory / row["postmortem_file"]).read_text()

    await eventually(checked_in_the_postmortem)

    response = await service.client.get(f"/incidents/{row['id']}/postmortem")
    assert response.status == 200
    assert response.content_type == "text/markdown" and response.charset == "utf-8"
    text = await response.text()
    assert text.startswith(f"# Incident {row['id']}: Backend api: 5xx rate above 10%")
    assert text == (service.directory / row["postmortem_file"]).read_text()
    assert row["id"] in (service.directory / "README.md").read_text()


async def test_duplicate_http_deliveries_make_one_incident(service: Service) -> None:
    await asyncio.gather(*(service.post(payload("firing")) for _ in range(3)))
    await service.diagnosed()
    await service.settled()
    assert len(await service.incidents()) == 1
    assert len(service.analyse.requests) == 1


async def test_a_storm_of_200_groups_is_processed_k_at_a_time(service: Service) -> None:
    service.analyse.hold()  # until the worker has as many analyses running as it may

    async def all_slots_busy() -> bool:
        return service.analyse.running == 3

    await asyncio.gather(*(service.post(group_payload(i)) for i in range(200)))
    await eventually(all_slots_busy)
    service.analyse.release()
    rows = await service.diagnosed(200)
    assert len({r["id"] for r in rows}) == 200
    assert len(service.analyse.requests) == 200
    assert service.analyse.most_at_once == 3
    assert len(list(service.directory.glob("2026-*.md"))) == 200


async def test_incidents_are_listed_newest_first_and_filtered(service: Service) -> None:
    for index in range(3):
        await service.post(group_payload(index))
        await service.diagnosed(index + 1)
    resolved = group_payload(1, status="resolved")
    await service.post(resolved)

    async def one_resolved():
        rows = await service.incidents(status="resolved")
        return rows if len(rows) == 1 else None

    [closed] = await eventually(one_resolved)
    rows = await service.incidents()
    assert [r["title"] for r in rows] == ["test alert from curl"] * 3
    assert [r["notified_at"] for r in rows] == sorted((r["notified_at"] for r in rows), reverse=True)
    assert closed["id"] == rows[1]["id"]
    assert [r["id"] for r in await service.incidents(status="open")] == [rows[0]["id"], rows[2]["id"]]
    assert len(await service.incidents(limit=1)) == 1
    for bad in ({"limit": "0"}, {"status": "closed"}, {"order": "asc"}):
        assert (await service.client.get("/incidents", params=bad)).status == 422


async def test_unknown_and_malformed_ids(service: Service) -> None:
    assert (await service.client.get("/incidents/inc-20260101-0123abcd")).status == 404
    assert (await service.client.get("/incidents/inc-20260101-0123abcd/postmortem")).status == 404
    response = await service.client.get("/incidents/INC-1")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_incident_id"


@pytest.mark.parametrize("path", [
    "/incidents/..%2F..%2Fsecret/postmortem",
    "/incidents/%2e%2e%2f%2e%2e%2fsecret/postmortem",
    "/incidents/..%252F..%252Fsecret/postmortem",
    "/incidents/..%5C..%5Csecret/postmortem",
    "/incidents/%2Fetc%2Fpasswd/postmortem",
    "/incidents//etc/passwd/postmortem",
    "/incidents/inc-20260101-0123abcd%2F..%2F..%2Fsecret/postmortem",
    "/incidents/inc-20260101-0123abcd%00.md/postmortem",
])
async def test_ids_cannot_reach_outside_the_post_mortems(service: Service, path: str) -> None:
    secret = service.directory.parent / "secret"
    secret.write_text("TOP SECRET")
    (service.directory.parent / "secret.md").write_text("TOP SECRET")
    response = await service.client.get(path)
    assert response.status in (400, 404)
    assert "TOP SECRET" not in await response.text()


async def test_a_tampered_file_name_in_a_record_is_not_followed(service: Service, real_redis: Redis) -> None:
    await service.post(payload("firing"))
    [row] = await service.diagnosed()
    (service.directory.parent / "secret.md").write_text("TOP SECRET")
    key = f"{{ic:incidents}}:incident:{row['id']}"
    record = (await real_redis.get(key)).replace(row["postmortem_file"], "../secret.md")
    await real_redis.set(key, record)
    response = await service.client.get(f"/incidents/{row['id']}/postmortem")
    assert response.status == 200
    text = await response.text()
    assert "TOP SECRET" not in text and text.startswith(f"# Incident {row['id']}")


async def test_a_record_the_service_cannot_read_is_its_own_error_not_the_clients(service: Service,
                                                                                 real_redis: Redis) -> None:
    await service.post(payload("firing"))
    [row] = await service.diagnosed()
    await real_redis.set(f"{{ic:incidents}}:incident:{row['id']}", '{"id": "not an incident"}')

    response = await service.client.get(f"/incidents/{row['id']}")

    assert response.status == 500  # the request was valid: a 422 would tell the client to change it
    assert (await response.json())["error"] == "internal_error"


async def test_a_post_mortem_completed_by_the_team_is_served_and_kept(service: Service) -> None:
    await service.post(payload("firing"))
    [row] = await service.diagnosed()
    path = service.directory / row["postmortem_file"]
    edited = path.read_text().replace("_To be filled in by the team._", "We had a runbook.", 1)
    path.write_text(edited)

    await service.post(payload("resolved"))

    async def resolved():
        body = await service.incident(row["id"])
        return body if body["status"] == "resolved" and body["recheck"] else None

    await eventually(resolved)
    await service.settled()  # rendered again since: the team's text is kept, not merely not yet overwritten
    assert path.read_text() == edited
    assert await (await service.client.get(f"/incidents/{row['id']}/postmortem")).text() == edited


async def test_the_service_recovers_after_redis_restarts(service: Service, redis_server) -> None:
    redis_server.stop()
    try:
        assert (await service.client.post("/alerts", json=payload("firing"))).status == 503
    finally:
        redis_server.start()  # empty: the stream and its consumer group are gone too
    await service.post(payload("firing"))
    await service.diagnosed()


async def test_incident_metrics_are_exposed(service: Service) -> None:
    await service.post(payload("firing"))
    await service.diagnosed()
    await service.post(payload("resolved"))
    text = ""

    async def scraped():
        nonlocal text
        text = await (await service.client.get("/prometheus/metrics")).text()
        # The check after the resolution runs when it is due, after the resolution is recorded.
        return ("incident_copilot_incidents_resolved_total 1.0" in text
                and 'incident_copilot_incident_analysis_duration_seconds_count{kind="recheck"} 1.0' in text)

    await eventually(scraped)
    assert "incident_copilot_incidents_opened_total 1.0" in text
    assert 'incident_copilot_incident_analyses_total{kind="analysis",mode="rules",outcome="ok"} 1.0' in text
    assert 'incident_copilot_incident_analysis_duration_seconds_count{kind="recheck"} 1.0' in text
    assert "incident_copilot_alert_queue_depth" in text and "incident_copilot_alert_jobs_pending" in text
