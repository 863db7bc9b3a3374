"""The service on a real Redis Cluster of three masters: the same answers as on one Redis, alerts
made incidents, a master that stops and comes back; and two replicas of the service on one Redis
or one cluster."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_sync
from prometheus_client.parser import text_string_to_metric_families
from redis.crc import key_slot

from agents.budget import ANALYSES_REASON, TOKENS_REASON, RedisBudgets
from agents.report import TokenUsage
from ingestion import METRIC_NAMES, METRIC_VIEWS, generate_lines
from receiver.app import create_app
from receiver.appkeys import ALERT_STREAM, REGISTRY
from receiver.incidents import AlertStream
from receiver.incidents.stream import STREAM
from receiver.keyspace import connect_configured
from receiver.settings import Settings
from tests.receiver.test_faults_process import spawn  # noqa: F401 - the fixture that starts and stops services
from tests.support.incidents import Service, eventually, grouped, payload, rule_alert
from tests.support.settings import with_settings
from tests.support.syslog import (
    expect_total,
    free_syslog_port,
    httplog,
    octet,
    rfc3164,
    rfc5424,
    send_tcp,
    send_udp,
)

pytestmark = pytest.mark.integration

TEXT = {"Content-Type": "text/plain"}
OK = {200, 202}
TRY_AGAIN = 503


def traffic(at: datetime, *, minutes: int = 20) -> list[str]:
    """A deploy regression on `api` over the minutes before `at`: lines of many minutes, so of many slots."""
    return list(generate_lines("deploy-regression", start=at - timedelta(minutes=minutes), minutes=minutes, rps=2,
                               seed=7))


def chunks(lines: list[str], size: int = 400) -> list[str]:
    return ["\n".join(lines[i:i + size]) + "\n" for i in range(0, len(lines), size)]


def the_minute() -> datetime:
    return datetime.now(timezone.utc).replace(second=0, microsecond=0)


async def ingest(client, lines: list[str]) -> int:
    accepted = 0
    for body in chunks(lines):
        response = await client.post("/logs", data=body, headers=TEXT)
        assert response.status == 202, await response.text()
        accepted += (await response.json())["accepted"]
    return accepted


async def every_view(client, at: datetime) -> dict[str, object]:
    """Every `/metrics/*` view over the whole traffic, and the golden-signal exposition, as a user reads them."""
    answers: dict[str, object] = {}
    for view in METRIC_VIEWS:
        query = {"at": at.isoformat()}
        if "window" in view.parameters:
            query["window"] = "30"
        if "minutes" in view.parameters:
            query["minutes"] = "30"
        response = await client.get(view.path, params=query)
        assert response.status == 200, (view.path, await response.text())
        answer = await response.json()
        if view.name == "saturation":  # each Redis reports its own memory and clients
            answer.pop("redis")
        answers[view.path] = answer
    response = await client.get("/prometheus/metrics")
    assert response.status == 200
    signals = tuple(name for name in METRIC_NAMES if not name.startswith("incident_copilot_redis_"))
    answers["/prometheus/metrics"] = sorted(line for line in (await response.text()).splitlines()
                                            if line.startswith(signals))
    return answers


def cluster_settings(settings, cluster, **overrides):
    return with_settings(settings, redis_url=cluster.url, redis_cluster=True, **overrides)


async def test_every_view_answers_on_a_cluster_as_on_one_redis(aiohttp_client, settings, redis_cluster,
                                                              redis_server, real_redis):
    at = the_minute()
    lines = traffic(at)
    on_cluster = await aiohttp_client(create_app(cluster_settings(settings, redis_cluster)))
    on_one = await aiohttp_client(create_app(with_settings(settings, redis_url=redis_server.url)))

    assert await ingest(on_cluster, lines) == await ingest(on_one, lines) == len(lines)

    cluster_answers = await every_view(on_cluster, at)
    assert cluster_answers == await every_view(on_one, at)
    assert cluster_answers["/metrics/overview"]["total_requests"] == len(lines)
    assert cluster_answers["/prometheus/metrics"]  # the exposition has the counters, not only its headers
    # The metric keys spread over the masters: every one of them holds some.
    assert all(count > 0 for count in redis_cluster.key_counts())


async def test_saturation_shows_the_master_nearest_its_maxmemory(aiohttp_client, settings, redis_cluster):
    client = await aiohttp_client(create_app(cluster_settings(settings, redis_cluster)))
    fullest = redis_cluster.nodes[1]
    server = redis_sync.Redis(port=fullest.port)
    used = server.info("memory")["used_memory"]
    server.config_set("maxmemory", 4 * used)
    try:
        saturation = await (await client.get("/metrics/saturation")).json()
        exposition = await (await client.get("/prometheus/metrics")).text()
    finally:
        server.config_set("maxmemory", 0)

    assert saturation["redis"]["maxmemory_bytes"] == 4 * used
    assert 10 < saturation["redis"]["memory_used_pct"] < 50  # that master's, a quarter full or so
    gauges = {sample.name: sample.value for family in text_string_to_metric_families(exposition)
              for sample in family.samples}
    assert gauges["incident_copilot_redis_memory_max_bytes"] == 4 * used


async def test_syslog_over_udp_and_tcp_reaches_a_cluster(aiohttp_client, settings, redis_cluster):
    port = free_syslog_port()
    client = await aiohttp_client(create_app(cluster_settings(settings, redis_cluster, syslog_port=port)))

    send_udp(port, [rfc3164(httplog(i)) for i in range(5)])
    await send_tcp(port, b"".join(octet(rfc5424(httplog(i, status=503))) for i in range(5, 8)), pieces=3)

    await expect_total(client, 8)


async def test_an_alert_becomes_an_analysed_incident_on_a_cluster(aiohttp_client, settings, redis_cluster):
    app = create_app(cluster_settings(settings, redis_cluster, run_worker=True))
    client = await aiohttp_client(app)
    await ingest(client, traffic(the_minute(), minutes=5))
    service = Service(client, app[ALERT_STREAM], settings.postmortem_dir)

    await service.post(payload("backend-5xx-firing"))

    [row] = await service.diagnosed()
    incident = await service.incident(row["id"])
    assert incident["report"]["synthesis"]["mode"] == "rules" and incident["report"]["diagnosis"]
    assert (settings.postmortem_dir / row["postmortem_file"]).exists()

    await service.post(payload("backend-5xx-resolved"))
    await eventually(lambda: _status(service, row["id"], "resolved"))


async def test_an_unreadable_notification_is_set_aside_on_a_cluster(aiohttp_client, settings, redis_cluster):
    app = create_app(cluster_settings(settings, redis_cluster, run_worker=True))
    client = await aiohttp_client(app)
    stream = app[ALERT_STREAM]
    await stream.redis.xadd(STREAM, {"notification": "not json", "received_at": "never"})

    await Service(client, stream, settings.postmortem_dir).settled()  # taken, set aside and acknowledged
    [(_, fields)] = await stream.redis.xrange(stream.dead_letters)
    assert fields["notification"] == "not json" and fields["reason"]


async def _status(service: Service, ident: str, status: str) -> bool:
    return (await service.incident(ident))["status"] == status


async def test_a_master_restarted_mid_run_costs_503s_and_loses_nothing(aiohttp_client, settings, redis_cluster):
    # A notification whose processing the outage broke is taken again once idle this long.
    app = create_app(cluster_settings(settings, redis_cluster, run_worker=True, worker_reclaim_idle_seconds=2))
    client = await aiohttp_client(app)
    service = Service(client, app[ALERT_STREAM], settings.postmortem_dir)
    before = traffic(the_minute(), minutes=5)
    await ingest(client, before)
    await service.post(payload("backend-5xx-firing"))
    [first] = await service.diagnosed()

    node = redis_cluster.node_for(STREAM)  # the master of the alert stream (and of whatever else lands there)
    await service.post(grouped([rule_alert("Backend5xxRateHigh", "db")]))  # acknowledged, maybe not yet taken
    node.stop()
    try:
        late = grouped([rule_alert("BackendLatencyHigh", "web")])
        response = await client.post("/alerts", json=late)
        assert response.status == TRY_AGAIN and response.headers["Retry-After"]
        assert (await response.json())["error"] == "redis_unavailable"
        probe = "\n".join(traffic(the_minute(), minutes=3)[-50:]).replace(" api/", " probe/") + "\n"
        answers = [
            await client.post("/logs", data=probe, headers=TEXT),
            await client.get("/metrics/overview"),
            await client.get("/incidents"),
            await client.get("/prometheus/metrics"),
        ]
        # Until the other masters notice, what lives on them is served; nothing is a 500.
        assert {r.status for r in answers} <= OK | {TRY_AGAIN}, [(r.url.path, r.status) for r in answers]

        async def declared_down() -> bool:  # by the other masters, after the cluster's node timeout
            return set(redis_cluster.states()) == {"fail"}

        await eventually(declared_down)
        answers = [await client.get("/health"), await client.get("/incidents"),
                   await client.get("/metrics/overview"), await client.post("/logs", data=probe, headers=TEXT)]
        assert [r.status for r in answers] == [TRY_AGAIN] * 4
    finally:
        node.start()
    redis_cluster.wait_ok()

    # Alertmanager sends again what was refused; the worker that lost its Redis carries on.
    async def accepted_again() -> bool:
        return (await client.post("/alerts", json=late)).status == 200

    await eventually(accepted_again)
    rows = await service.diagnosed(3)
    assert sorted(name for r in rows for name in r["alertnames"]) == [
        "Backend5xxRateHigh", "Backend5xxRateHigh", "BackendLatencyHigh"]
    assert first["id"] in {r["id"] for r in rows}
    after = traffic(the_minute(), minutes=3)
    await ingest(client, after)
    overview = await (await client.get("/metrics/overview", params={"window": "30", "backend": "api"})).json()
    # Every line of `api` taken before the outage, and after it (the refused ones were of another backend).
    assert overview["total_requests"] == sum(" api/" in line for line in before + after)


@pytest.fixture(params=["one-redis", "cluster"])
def shared_redis(request, settings):
    """The settings of replicas that share one Redis server, or one Redis Cluster."""
    if request.param == "cluster":
        return cluster_settings(settings, request.getfixturevalue("redis_cluster"), run_worker=True)
    request.getfixturevalue("real_redis")  # emptied
    return with_settings(settings, redis_url=request.getfixturevalue("redis_server").url, run_worker=True)


async def test_two_replicas_answer_alike_and_analyse_a_notification_once(aiohttp_client, settings, shared_redis):
    apps = [create_app(shared_redis) for _ in range(2)]
    first, second = [await aiohttp_client(app) for app in apps]
    at = the_minute()
    lines = traffic(at)
    half = len(lines) // 2
    # A load balancer spreads the log shippers' requests over the replicas.
    assert await ingest(first, lines[:half]) + await ingest(second, lines[half:]) == len(lines)
    assert await every_view(first, at) == await every_view(second, at)

    # Alertmanager in HA sends the same notification through both replicas at once.
    notification = payload("backend-5xx-firing")
    answers = await asyncio.gather(first.post("/alerts", json=notification),
                                   second.post("/alerts", json=notification))
    assert [r.status for r in answers] == [200, 200]

    rows = await Service(first, apps[0][ALERT_STREAM], settings.postmortem_dir).diagnosed()
    await Service(second, apps[1][ALERT_STREAM], settings.postmortem_dir).settled()
    assert [r["id"] for r in await (await second.get("/incidents")).json()] == [rows[0]["id"]]
    analyses = sum(sample.value for app in apps for metric in app[REGISTRY].collect()
                   if metric.name == "incident_copilot_incident_analyses"
                   for sample in metric.samples
                   if sample.name.endswith("_total") and sample.labels.get("kind") == "analysis")
    assert analyses == 1


def test_the_alert_stream_and_its_dead_letters_share_a_slot():
    assert key_slot(STREAM.encode()) == key_slot(f"{STREAM}:dead".encode())


async def test_replicas_on_a_cluster_share_one_model_budget(settings, redis_cluster):
    clients = [connect_configured(cluster_settings(settings, redis_cluster)) for _ in range(2)]
    try:
        first, second = (RedisBudgets(c, analyses_per_hour=1, max_concurrency=1, tokens_per_hour=100) for c in clients)
        assert await first.start_analysis() is None
        assert await second.start_analysis() == ANALYSES_REASON
        async with first.slot():
            assert not await asyncio.wait_for(_took_slot(second), 1)  # the one call slot is held elsewhere
        await second.spend(TokenUsage(input_tokens=100))
        async with second.slot():
            pass
        assert await first.start_analysis() == TOKENS_REASON
    finally:
        for client in clients:
            await client.aclose()


async def _took_slot(budgets: RedisBudgets) -> bool:
    try:
        async with asyncio.timeout(0.3), budgets.slot():
            return True
    except TimeoutError:
        return False


async def test_two_service_processes_configured_by_the_environment_share_a_cluster(
        redis_cluster, spawn):  # noqa: F811
    shared = {"REDIS_URL": redis_cluster.url, "REDIS_CLUSTER": "true"}
    first, second = spawn(**shared), spawn(**shared)
    await asyncio.gather(first.start(), second.start())
    at = the_minute()
    lines = traffic(at, minutes=5)
    notification = payload("backend-5xx-firing")
    async with first.session() as one, second.session() as other:
        half = len(lines) // 2
        assert await ingest(one, lines[:half]) + await ingest(other, lines[half:]) == len(lines)
        query = {"window": "10", "at": at.isoformat()}
        overviews = [await (await http.get("/metrics/overview", params=query)).json() for http in (one, other)]
        for overview in overviews:  # when each replica read it: the rest must be the same
            overview.pop("as_of", None)
        assert overviews[0] == overviews[1] and overviews[0]["total_requests"] == len(lines)

        answers = await asyncio.gather(one.post("/alerts", json=notification), other.post("/alerts", json=notification))
        assert [r.status for r in answers] == [200, 200]
        stream = AlertStream(connect_configured(Settings(_env_file=None, redis_url=redis_cluster.url,
                                                         redis_cluster=True)))
        try:
            [row] = await Service(one, stream, first.postmortem_dir).diagnosed()
        finally:
            await stream.redis.aclose()
        assert [r["id"] for r in await (await other.get("/incidents")).json()] == [row["id"]]
