"""Delivery from processes of their own: the service killed while a delivery is retried, and a separate worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from receiver.incidents import AlertStream
from tests.receiver.test_faults_process import spawn  # noqa: F401 - the fixture that starts and stops services
from tests.support.chat_receivers import ChatReceivers
from tests.support.incidents import T0, Service, delivery, eventually, payload

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
    assert await real_redis.xlen("{ic:notify}:outbox") == 1
    delivered_before = {path: len(receivers.on(path)) for path in ("/slack/webhook/oncall", "/teams/oncall")}
    assert delivered_before == {"/slack/webhook/oncall": 1, "/teams/oncall": 1}

    receivers.scripted.clear()
    second = spawn(**shared)
    await second.start()

    async def delivered() -> bool:
        return await real_redis.xlen("{ic:notify}:outbox") == 0 and len(receivers.on("/hook/pager")) >= 1

    await eventually(delivered)
    assert [r.body["event"] for r in receivers.on("/hook/pager")] == ["opened"]
    # What the first process delivered before it died is not delivered again.
    assert {path: len(receivers.on(path)) for path in delivered_before} == delivered_before


async def test_incident_copilot_worker_delivers_the_incidents_it_processes(
        redis_server, real_redis: Redis, receivers: ChatReceivers, tmp_path: Path) -> None:
    config = notifications_file(tmp_path, receivers.base)
    await AlertStream(real_redis).add(delivery("backend-5xx-firing", "0-1", T0).notification, received_at=T0)
    env = {**os.environ, "REDIS_URL": redis_server.url, "NOTIFY_CONFIG": str(config), "LOG_FORMAT": "text",
           "POSTMORTEM_DIR": str(tmp_path / "post-mortems"), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "receiver.cli", "worker"], cwd=tmp_path, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        async def delivered() -> bool:
            return len(receivers.on("/hook/pager")) == 1 and await real_redis.xlen("{ic:notify}:outbox") == 0

        await eventually(delivered)
    finally:
        worker.terminate()
        worker.wait(10)
    assert [r.body["event"] for r in receivers.on("/hook/pager")] == ["opened"]
    assert len(receivers.on("/slack/webhook/oncall")) == 1 and len(receivers.on("/teams/oncall")) == 1
