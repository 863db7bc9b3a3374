"""The service as its own process, killed while a delivery is still being retried."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.receiver.test_faults_process import spawn  # noqa: F401 - the fixture that starts and stops services
from tests.support.chat_receivers import ChatReceivers
from tests.support.incidents import Service, eventually, payload

from .conftest import notifications_file

pytestmark = pytest.mark.integration


async def test_a_delivery_pending_when_the_service_is_killed_is_delivered_once_after_restart(
        redis_server, real_redis: Redis, receivers: ChatReceivers, spawn, tmp_path: Path) -> None:  # noqa: F811
    receivers.fail("/hook/pager", *[(503, {}, "down")] * 10_000)
    (tmp_path / "config").mkdir()
    config = notifications_file(tmp_path / "config", receivers.base)
    shared = {"REDIS_URL": redis_server.url, "NOTIFY_CONFIG": str(config), "WORKER_RECLAIM_IDLE_SECONDS": "1"}
    first = spawn(**shared)
    await first.start()
    async with first.session() as http:
        await Service(http, None, first.postmortem_dir).post(payload("backend-5xx-firing"))

    async def retried_twice() -> bool:
        return sum(path == "/hook/pager" for path, _ in receivers.refused) >= 2

    await eventually(retried_twice)
    first.kill()  # SIGKILL: the webhook's delivery is left pending in the outbox
    assert await real_redis.xlen("ic:notify:outbox") == 1
    delivered_before = {path: len(receivers.on(path)) for path in ("/slack/webhook/oncall", "/teams/oncall")}
    assert delivered_before == {"/slack/webhook/oncall": 1, "/teams/oncall": 1}

    receivers.scripted.clear()
    second = spawn(**shared)
    await second.start()

    async def delivered() -> bool:
        return await real_redis.xlen("ic:notify:outbox") == 0 and len(receivers.on("/hook/pager")) >= 1

    await eventually(delivered)
    assert [r.body["event"] for r in receivers.on("/hook/pager")] == ["opened"]
    # What the first process delivered before it died is not delivered again.
    assert {path: len(receivers.on(path)) for path in delivered_before} == delivered_before
