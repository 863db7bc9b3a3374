"""The service delivers incidents to local servers playing Slack, Teams and a signed webhook receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from receiver.app import create_app
from receiver.appkeys import ALERT_STREAM, INCIDENT_ANALYSIS, REGISTRY
from receiver.incidents import IncidentAnalysis
from receiver.notify import Outbox
from receiver.keyspace import connect_configured
from receiver.settings import Settings
from tests.support.chat_receivers import ChatReceivers
from tests.support.incidents import FakeAnalysis, Service, eventually, group_payload, make_report, ok_report, payload
from tests.support.settings import with_settings

from .conftest import PUBLIC_URL, notifications_file

pytestmark = pytest.mark.integration

OUTBOX = "{ic:notify}:outbox"


async def start(aiohttp_client, redis: Redis, settings: Settings, config: Path, *,
                analyse: FakeAnalysis | None = None, **overrides) -> Service:
    settings = with_settings(settings, run_worker=True, notify_config=config, public_url=PUBLIC_URL, **overrides)
    analyse = analyse or FakeAnalysis(delay=0.01)
    app = create_app(settings, redis=redis)
    app[INCIDENT_ANALYSIS] = IncidentAnalysis(analyse=analyse, recheck=FakeAnalysis(ok_report()))
    client = await aiohttp_client(app)
    service = Service(client, app[ALERT_STREAM], settings.postmortem_dir, analyse=analyse)
    service.app = app  # type: ignore[attr-defined]
    return service


async def delivered_everything(redis: Redis) -> bool:
    """The outbox is empty: every event reached every target or was given up."""
    return await redis.xlen(OUTBOX) == 0


def events(chat: ChatReceivers, path: str = "/hook/pager") -> list[str]:
    return [r.body["event"] for r in chat.on(path)]


def sample(service: Service, name: str, **labels: str) -> float:
    return service.app[REGISTRY].get_sample_value(name, labels) or 0.0  # type: ignore[attr-defined]


async def test_firing_update_and_resolution_reach_every_receiver_once(
        real_redis: Redis, settings: Settings, aiohttp_client, receivers: ChatReceivers, tmp_path: Path) -> None:
    service = await start(aiohttp_client, real_redis, settings, notifications_file(tmp_path, receivers.base))
    await service.post(payload("backend-5xx-firing"))
    await eventually(lambda: _count(receivers, "/hook/pager", 1))
    await eventually(lambda: _all_have(receivers, 1))
    [incident] = await service.incidents()

    # Slack bot: one message in the channel, with the diagnosis and links to known places only.
    [root] = [m for m in receivers.slack_messages.values() if m.thread_ts is None]
    assert root.channel == "C0INCIDENT"
    header = root.blocks[0]["text"]["text"]
    assert "CRITICAL" in header and "5xx errors on backend api" in header
    text = orjson.dumps(root.blocks).decode()
    assert "*Culprit:* api: errors" in text and "`error_rate_5xx_pct` 23.4% (threshold 5%)" in text
    buttons = {b["text"]["text"]: b["url"] for b in root.blocks[-2]["elements"]}
    assert buttons["Post-mortem"] == f"{PUBLIC_URL}/incidents/{incident['id']}/postmortem"
    assert buttons["Runbook"].startswith("https://git.example.com/")
    # The generic webhook: the versioned document, signed (the receiver checked it), keyed per event.
    [opened] = receivers.on("/hook/pager")
    assert opened.body["version"] == "1" and opened.body["incident"]["id"] == incident["id"]
    assert opened.body["incident"]["findings"][0]["evidence"][0]["metric"] == "error_rate_5xx_pct"
    assert opened.headers["Idempotency-Key"].startswith(f"{incident['id']}:1:opened")

    # A new alert whose analysis finds a different culprit: the Slack message is edited, with a reply.
    service.analyse.report = make_report(title="Latency and errors on backend api", backend="api")
    await service.post(payload("backend-5xx-joined"))
    await eventually(lambda: _count(receivers, "/hook/pager", 2))
    await resolve_and_deliver(service, receivers, real_redis, events=3)

    assert events(receivers) == ["opened", "updated", "resolved"]
    assert len({r.headers["Idempotency-Key"] for r in receivers.on("/hook/pager")}) == 3
    assert len(receivers.on("/slack/webhook/oncall")) == 3 and len(receivers.on("/teams/oncall")) == 3
    roots = [m for m in receivers.slack_messages.values() if m.thread_ts is None]
    replies = [m for m in receivers.slack_messages.values() if m.thread_ts == root.ts]
    assert roots == [root] and root.edits == 2 and len(replies) == 2
    assert root.blocks[0]["text"]["text"].startswith("✅ RESOLVED")
    assert "After the resolution:* Signals back to normal" in orjson.dumps(root.blocks).decode()
    assert receivers.refused == []
    assert sample(service, "incident_copilot_notifications_sent_total", receiver="oncall", integration="slack") == 6


async def failed_deliveries_shown(service: Service, chat: ChatReceivers, redis: Redis) -> list[str]:
    """Once the incident is announced and its deliveries are over: what its timeline says failed."""
    await eventually(lambda: _count(chat, "/slack/webhook/oncall", 1))
    await eventually(lambda: delivered_everything(redis))
    [row] = await service.incidents()

    async def shown():
        body = await service.incident(row["id"])
        return [e["text"] for e in body["timeline"] if e["kind"] == "delivery_failed"]

    return await eventually(shown)


async def resolve_and_deliver(service: Service, chat: ChatReceivers, redis, *, events: int) -> None:
    """Resolve the incident and wait until every receiver has its `events` events and nothing is left."""
    await service.post(payload("backend-5xx-resolved"))
    await eventually(lambda: _count(chat, "/hook/pager", events))
    await eventually(lambda: _all_have(chat, events))
    await eventually(lambda: delivered_everything(redis))
    await service.settled()


async def _count(chat: ChatReceivers, path: str, count: int) -> bool:
    return len(chat.on(path)) >= count


async def _all_have(chat: ChatReceivers, count: int) -> bool:
    bot = [r for r in chat.received if r.path == "/slack/api/chat.postMessage"]
    return (len(chat.on("/slack/webhook/oncall")) >= count and len(chat.on("/teams/oncall")) >= count
            and len(bot) >= count)


async def test_a_receiver_failing_twice_then_succeeding_gets_the_event_once(
        real_redis: Redis, settings: Settings, aiohttp_client, receivers: ChatReceivers, tmp_path: Path) -> None:
    receivers.fail("/hook/pager", (503, {}, "busy"), (429, {"Retry-After": "0"}, "slow down"))
    service = await start(aiohttp_client, real_redis, settings, notifications_file(tmp_path, receivers.base))
    await service.post(payload("backend-5xx-firing"))
    await eventually(lambda: _count(receivers, "/hook/pager", 1))
    await eventually(lambda: delivered_everything(real_redis))
    assert events(receivers) == ["opened"]
    assert [path for path, _ in receivers.refused] == ["/hook/pager", "/hook/pager"]
    labels = {"receiver": "oncall", "integration": "webhook"}
    assert sample(service, "incident_copilot_notifications_retried_total", **labels) == 2
    assert sample(service, "incident_copilot_notifications_sent_total", **labels) == 1
    assert sample(service, "incident_copilot_notifications_failed_total", **labels) == 0


async def test_a_refused_delivery_is_given_up_and_shown_on_the_incident(
        real_redis: Redis, settings: Settings, aiohttp_client, receivers: ChatReceivers, tmp_path: Path) -> None:
    receivers.fail("/teams/oncall", (400, {}, "Bad Request"))
    service = await start(aiohttp_client, real_redis, settings, notifications_file(tmp_path, receivers.base))
    await service.post(payload("backend-5xx-firing"))
    [text] = await failed_deliveries_shown(service, receivers, real_redis)
    assert text == "The opened message to oncall (msteams) was not delivered: refused: HTTP 400: Bad Request"
    assert receivers.on("/teams/oncall") == [] and len(receivers.on("/hook/pager")) == 1
    assert sample(service, "incident_copilot_notifications_failed_total", receiver="oncall",
                  integration="msteams") == 1
    assert sample(service, "incident_copilot_notifications_retried_total", receiver="oncall",
                  integration="msteams") == 0


async def test_a_delivery_still_failing_at_the_give_up_time_is_given_up(
        real_redis: Redis, settings: Settings, aiohttp_client, receivers: ChatReceivers, tmp_path: Path) -> None:
    receivers.fail("/hook/pager", *[(502, {}, "bad gateway")] * 1000)
    config = notifications_file(tmp_path, receivers.base, give_up_after="1s")
    service = await start(aiohttp_client, real_redis, settings, config)
    await service.post(payload("backend-5xx-firing"))
    [text] = await failed_deliveries_shown(service, receivers, real_redis)
    assert "(webhook) was not delivered: still failing after" in text and "(1 s allowed): HTTP 502" in text


async def test_a_delivery_pending_when_the_service_stops_is_delivered_once_after_restart(
        real_redis: Redis, settings: Settings, aiohttp_client, receivers: ChatReceivers, tmp_path: Path) -> None:
    receivers.fail("/hook/pager", *[(503, {}, "down")] * 1000)
    config = notifications_file(tmp_path, receivers.base)
    first = await start(aiohttp_client, real_redis, settings, config, worker_reclaim_idle_seconds=0.5)
    await first.post(payload("backend-5xx-firing"))
    await eventually(lambda: _refused_at_least(receivers, 2))
    await first.client.close()  # the service stops with the webhook's delivery pending
    assert await real_redis.xlen(OUTBOX) == 1

    receivers.scripted.clear()
    second = await start(aiohttp_client, real_redis, settings, config, worker_reclaim_idle_seconds=0.5)
    await eventually(lambda: _count(receivers, "/hook/pager", 1))
    await eventually(lambda: delivered_everything(real_redis))
    await second.settled()
    assert events(receivers) == ["opened"]
    # What the first run delivered before it stopped is not delivered again.
    assert len(receivers.on("/slack/webhook/oncall")) == 1 and len(receivers.on("/teams/oncall")) == 1


async def _refused_at_least(chat: ChatReceivers, count: int) -> bool:
    return len(chat.refused) >= count


async def test_a_storm_of_incidents_is_delivered_in_full_with_bounded_connections(
        real_redis: Redis, settings: Settings, aiohttp_client, receivers: ChatReceivers, tmp_path: Path) -> None:
    count = 200
    config = notifications_file(tmp_path, receivers.base, connections_per_host=3, receivers=f"""\
  - name: oncall
    webhook_configs:
      - url: {receivers.base}/hook/pager
        hmac_secret_file: {tmp_path / "secrets" / "hmac"}
""")
    service = await start(aiohttp_client, real_redis, settings, config, analysis_concurrency=8,
                          analyse=FakeAnalysis())
    await asyncio.gather(*(service.post(group_payload(i)) for i in range(count)))
    await eventually(lambda: _count(receivers, "/hook/pager", count))
    await eventually(lambda: delivered_everything(real_redis))
    await service.settled()
    ids = [r.body["incident"]["id"] for r in receivers.on("/hook/pager")]
    assert len(ids) == len(set(ids)) == count
    assert 1 <= receivers.most_in_flight <= 3


async def test_every_receiver_gets_each_event_once_on_a_redis_cluster(
        redis_cluster, settings: Settings, aiohttp_client, receivers: ChatReceivers, tmp_path: Path) -> None:
    cluster_settings = with_settings(settings, redis_url=redis_cluster.url, redis_cluster=True)
    redis = connect_configured(cluster_settings)
    try:
        service = await start(aiohttp_client, redis, cluster_settings, notifications_file(tmp_path, receivers.base))
        await service.post(payload("backend-5xx-firing"))
        await eventually(lambda: _count(receivers, "/hook/pager", 1))
        await resolve_and_deliver(service, receivers, redis, events=2)

        assert events(receivers) == ["opened", "resolved"]
        assert len(receivers.on("/slack/webhook/oncall")) == 2 and len(receivers.on("/teams/oncall")) == 2
        [incident] = await service.incidents()
        delivered = await Outbox(redis).outcomes(incident["id"])
        assert sorted({(kind, outcome) for kind, _, outcome in delivered}) == [("opened", "sent"), ("resolved", "sent")]
        assert len(delivered) == 2 * len({target for _, target, _ in delivered})  # each target, each event
    finally:
        await redis.aclose()
