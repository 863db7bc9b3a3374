"""The service as its own process under harm: killed with work in hand, flooded with syslog."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from receiver.incidents import AlertStream
from tests.support import fake_anthropic as fake
from tests.support.service_process import ServiceProcess

from tests.support.incidents import Service, eventually, group_payload
from tests.support.syslog import free_syslog_port, httplog, rfc3164, samples, total_requests

pytestmark = pytest.mark.integration

TOKEN = "fault-suite-token"
UDP_DROPPED = ("incident_copilot_syslog_dropped_lines_total", (("transport", "udp"),))
KERNEL_DROPPED = ("incident_copilot_syslog_kernel_drops", ())


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    """Make `ServiceProcess`es sharing one working directory; whatever still runs is stopped afterwards."""
    started: list[ServiceProcess] = []

    def spawn(**settings: str) -> ServiceProcess:
        started.append(ServiceProcess(tmp_path, settings))
        return started[-1]

    yield spawn
    for service in started:
        service.stop()


async def test_a_killed_service_leaves_no_incident_unfinished(aiohttp_server, redis_server, real_redis: Redis,
                                                              spawn) -> None:
    hanging = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=fake.expert))
    hanging.hold()  # every analysis waits on the model until the process is gone
    stream = AlertStream(real_redis)
    shared = {"REDIS_URL": redis_server.url, "WEBHOOK_TOKEN": TOKEN, "ANALYSIS_CONCURRENCY": "4",
              "WORKER_RECLAIM_IDLE_SECONDS": "2"}
    first = spawn(**shared, ANTHROPIC_API_KEY="sk-test", ANTHROPIC_BASE_URL=hanging.base_url)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        await first.start()
        async with first.session(headers=auth) as http:
            alertmanager = Service(http, stream, first.postmortem_dir)
            for index in range(4):
                await alertmanager.post(group_payload(index, backend=f"api-{index}"))

        async def all_taken() -> bool:
            return (await stream.depth()).pending == 4 and hanging.in_flight > 0

        await eventually(all_taken)
        first.kill()
    finally:
        hanging.release()

    second = spawn(**shared)  # no API key: the rules finish what the model never answered
    await second.start()
    async with second.session(headers=auth) as http:
        rows = await Service(http, stream, second.postmortem_dir).diagnosed(4)  # and none left pending
    assert sorted(name for row in rows for name in row["alertnames"]) == [f"Storm{i}" for i in range(4)]
    for row in rows:
        assert "No diagnosis yet." not in (second.postmortem_dir / row["postmortem_file"]).read_text()
    assert await real_redis.xlen(stream.dead_letters) == 0


class Flood:
    """Syslog datagrams sent from a thread as fast as the socket takes them, until `stop()`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self._stop = threading.Event()

    def run(self) -> None:
        datagrams = [rfc3164(httplog(i)).encode() for i in range(1000)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.connect(("127.0.0.1", self.port))
            while not self._stop.is_set():
                for datagram in datagrams:
                    udp.send(datagram)
                self.sent += len(datagrams)

    def stop(self) -> None:
        self._stop.set()


@pytest.mark.usefixtures("real_redis")  # an empty database: every request counted comes from the flood
async def test_a_syslog_flood_costs_lines_never_the_api(redis_server, spawn) -> None:
    port = free_syslog_port()
    service = spawn(REDIS_URL=redis_server.url, SYSLOG_PORT=str(port), SYSLOG_QUEUE_LINES="500")
    await service.start()
    flood = Flood(port)
    async with service.session(timeout=5) as http:
        sending = asyncio.create_task(asyncio.to_thread(flood.run))
        try:
            async def dropping() -> bool:
                return (await samples(http))[UDP_DROPPED] > 0

            await eventually(dropping)  # the queue is full: more arrives than Redis takes
            for _ in range(10):  # each answered within the session's 5 s while the flood goes on
                for path in ("/health", "/metrics/overview"):
                    async with http.get(path) as response:
                        assert response.status == 200, path
        finally:
            flood.stop()
            await sending

        async def accounted() -> tuple | None:
            found = await samples(http)
            written, dropped, kernel = await total_requests(http), found[UDP_DROPPED], found[KERNEL_DROPPED]
            return (written, dropped) if written + dropped + kernel == flood.sent else None

        # Every datagram sent was written to Redis, dropped by the listener or dropped by the kernel.
        written, dropped = await eventually(accounted)
    assert written > 0 and dropped > 0
