"""Correlation through the real service: alerts about one backend make one incident, whatever the grouping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from redis.asyncio import Redis

from receiver.app import create_app
from receiver.appkeys import ALERT_STREAM, INCIDENT_ANALYSIS
from receiver.incidents import IncidentAnalysis
from receiver.settings import Settings

from tests.support.incidents import T0, FakeAnalysis, Service, eventually, grouped, ok_report, rule_alert

pytestmark = pytest.mark.integration

LATENCY, ERRORS = "BackendLatencyHigh", "Backend5xxRateHigh"


def configured(settings: Settings, **overrides) -> Settings:
    return Settings(_env_file=None, **{**settings.model_dump(), **overrides})


async def start(settings: Settings, redis: Redis, aiohttp_client, **overrides) -> Service:
    settings = configured(settings, analysis_concurrency=3, run_worker=True, **overrides)
    analyse, recheck = FakeAnalysis(delay=0.01), FakeAnalysis(ok_report())
    app = create_app(settings, redis=redis)
    app[INCIDENT_ANALYSIS] = IncidentAnalysis(analyse=analyse, recheck=recheck)
    client = await aiohttp_client(app)
    return Service(client, app[ALERT_STREAM], settings.postmortem_dir, analyse=analyse, recheck=recheck)


@pytest.fixture
async def service(real_redis: Redis, settings: Settings, aiohttp_client) -> Service:
    return await start(settings, real_redis, aiohttp_client)


def latency(**options) -> dict:
    return grouped([rule_alert(LATENCY, "api", **options)])


def errors(**options) -> dict:
    return grouped([rule_alert(ERRORS, "api", **{"starts_at": T0 + timedelta(seconds=40), **options})])


async def only(service: Service) -> dict:
    [row] = await service.incidents()
    return await service.incident(row["id"])


async def test_two_alert_names_on_one_backend_make_one_incident_holding_both(service: Service) -> None:
    await service.post(latency())
    [row] = await service.diagnosed()
    await service.post(errors())

    async def analysed_again():
        body = await service.incident(row["id"])
        return body if len(service.analyse.requests) == 2 and not body["analysis_pending"] else None

    incident = await eventually(analysed_again)
    await service.settled()
    assert [r["id"] for r in await service.incidents()] == [row["id"]]
    assert incident["correlation_key"] == "backend=api" and incident["status"] == "open"
    assert incident["title"] == "Backend api: P99 latency above 1s; 5xx rate above 10%"
    first, second = incident["alerts"]
    assert (first["alertname"], first["group_key"]) == (LATENCY, latency()["groupKey"])
    assert (second["alertname"], second["group_key"]) == (ERRORS, errors()["groupKey"])
    assert second["group_labels"] == {"alertname": ERRORS, "backend": "api"}
    assert first["receiver"] == second["receiver"] == "incident-copilot"
    assert first["first_notified_at"] <= second["first_notified_at"]
    assert {a.alertname for a in service.analyse.requests[1].alerts} == {LATENCY, ERRORS}
    assert all(r.backend == "api" for r in service.analyse.requests)
    text = (service.directory / incident["postmortem_file"]).read_text()
    assert "alertname=BackendLatencyHigh, backend=api" in text and "alertname=Backend5xxRateHigh, backend=api" in text
    assert "Alertmanager groups:**" in text


async def test_a_group_by_alert_name_across_two_backends_opens_two_incidents_once(service: Service) -> None:
    body = grouped([rule_alert(ERRORS, "api"), rule_alert(ERRORS, "web")], by=("alertname",))
    await service.post(body)
    await service.post(body)  # the other Alertmanager of an HA pair
    rows = await service.diagnosed(2)
    incidents = [await service.incident(r["id"]) for r in rows]
    assert sorted(i["correlation_key"] for i in incidents) == ["backend=api", "backend=web"]
    assert all(len(i["alerts"]) == 1 and i["alerts"][0]["group_key"] == body["groupKey"] for i in incidents)
    assert sorted(r.backend for r in service.analyse.requests) == ["api", "web"]  # each analysed once
    assert all([e["kind"] for e in i["timeline"]].count("notified") == 1 for i in incidents)


async def test_one_group_resolving_while_another_fires_keeps_the_incident_open(service: Service) -> None:
    await service.post(latency())
    [row] = await service.diagnosed()
    await service.post(errors())
    await service.post(latency(status="resolved", ends_at=T0 + timedelta(minutes=9)))
    await service.settled()
    incident = await service.incident(row["id"])
    assert incident["status"] == "open" and incident["ended_at"] is None
    assert [a["status"] for a in incident["alerts"]] == ["resolved", "firing"]

    await service.post(errors(status="resolved", ends_at=T0 + timedelta(minutes=12)))
    await service.settled()
    incident = await service.incident(row["id"])
    assert incident["status"] == "resolved"
    assert incident["ended_at"] == (T0 + timedelta(minutes=12)).isoformat().replace("+00:00", "Z")


async def test_a_flap_re_opens_and_a_later_failure_opens_anew(service: Service) -> None:
    await service.post(latency())
    [row] = await service.diagnosed()
    await service.post(latency(status="resolved", ends_at=T0 + timedelta(minutes=20)))
    await service.settled()
    assert (await service.incident(row["id"]))["status"] == "resolved"

    # Fires again four minutes after the end: the same failure, the same incident.
    await service.post(latency(starts_at=T0 + timedelta(minutes=24)))
    await service.settled()
    reopened = await only(service)
    assert reopened["id"] == row["id"] and reopened["status"] == "open" and reopened["ended_at"] is None
    assert "reopened" in [e["kind"] for e in reopened["timeline"]]
    await eventually(lambda: _analyses(service, 2))

    # Resolved again, and firing again long after: a new incident that points to this one.
    await service.post(latency(status="resolved", starts_at=T0 + timedelta(minutes=24),
                               ends_at=T0 + timedelta(minutes=30)))
    await service.post(latency(starts_at=T0 + timedelta(minutes=55)))
    rows = await service.diagnosed(2)
    newest = await service.incident(rows[0]["id"])
    assert newest["id"] != row["id"] and newest["previous_incident"] == row["id"]
    assert (await service.incident(row["id"]))["status"] == "resolved"


async def _analyses(service: Service, count: int) -> bool:
    return len(service.analyse.requests) >= count


async def test_an_alert_without_backend_is_analysed_over_all_backends_and_says_so(service: Service) -> None:
    body = grouped([rule_alert("NodeFilesystemAlmostFull", None, severity="warning", instance="db1:9100")],
                   by=("alertname",))
    await service.post(body)
    [row] = await service.diagnosed()
    incident = await service.incident(row["id"])
    assert incident["correlation_key"] == "*"
    [request] = service.analyse.requests
    assert request.backend is None
    [scope] = [e["text"] for e in incident["timeline"] if e["kind"] == "scope"]
    assert "concern nothing the service measures by backend" in scope and "analysed over all backends" in scope
    assert "analysed over all backends" in (service.directory / incident["postmortem_file"]).read_text()


async def test_the_check_after_a_resolution_looks_at_the_minutes_after_it(real_redis: Redis, settings: Settings,
                                                                          aiohttp_client) -> None:
    service = await start(settings, real_redis, aiohttp_client, recheck_delay_seconds=1)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    await service.post(latency(starts_at=now - timedelta(minutes=3)))
    [row] = await service.diagnosed()
    await service.post(latency(status="resolved", starts_at=now - timedelta(minutes=3), ends_at=now))

    async def checked():
        body = await service.incident(row["id"])
        return body if body["recheck"] and not body["recheck_pending"] else None

    incident = await eventually(checked)
    [check] = service.recheck.requests
    assert check.at == now + timedelta(seconds=1) and check.window_minutes == 1
    assert check.baseline_before == now - timedelta(minutes=3) and check.backend == "api"
    assert incident["recheck"]["window_end"] == (now + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    [entry] = [e["text"] for e in incident["timeline"] if e["kind"] == "recheck"]
    assert entry.startswith("Signals back to normal over") and "after the resolution" in entry
