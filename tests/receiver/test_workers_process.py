"""`serve --workers 2` as real processes on a real redis-server: both serve, counts stay exact, the parent keeps them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession, TCPConnector

from tests.receiver.http.test_logs import entry
from tests.support.incidents import eventually
from tests.support.service_process import ServiceProcess
from tests.support.syslog import expect_total, free_syslog_port, httplog, octet, rfc3164, samples, send_tcp, send_udp

pytestmark = pytest.mark.integration


@pytest.fixture
def group(tmp_path: Path, redis_server, real_redis) -> Iterator[ServiceProcess]:
    service = ServiceProcess(tmp_path, {"REDIS_URL": redis_server.url, "SERVE_WORKERS": "2",
                                        "SYSLOG_PORT": str(free_syslog_port())})
    yield service
    service.stop()


def workers_of(parent: int) -> set[int]:
    """The pids of the worker processes `parent` started."""
    found = set()
    for entry_name in os.listdir("/proc"):
        if not entry_name.isdigit():
            continue
        try:
            with open(f"/proc/{entry_name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            found.add(int(entry_name))
    return found


def socket_owner(inode: int, pids: set[int]) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
        except OSError:
            continue
    return None


def server_side_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the service's end of the loopback connection from `client_port`."""
    with open("/proc/net/tcp") as table:
        for row in table.readlines()[1:]:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                return inode
    return None


def serving_pids(port: int, workers: set[int], connections: int) -> set[int]:
    """Which workers answered `connections` new connections, each kept open until its owner is known."""
    owners = set()
    for _ in range(connections):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            assert conn.recv(64).startswith(b"HTTP/1.1 200")
            inode = server_side_inode(port, conn.getsockname()[1])
            owner = socket_owner(inode, workers) if inode else None
            if owner is not None:
                owners.add(owner)
    return owners


async def start_serving(group: ServiceProcess) -> set[int]:
    """Start the group and wait until both workers take connections; answers their pids."""
    await group.start()
    workers = workers_of(group.process.pid)
    assert len(workers) == 2

    async def both() -> bool:
        return serving_pids(group.port, workers, 32) == workers

    await eventually(both)
    return workers


async def test_both_workers_serve_and_every_line_is_counted_once(group: ServiceProcess) -> None:
    await start_serving(group)

    syslog_port = int(group.settings["SYSLOG_PORT"])
    # New connections each: the kernel spreads them over both workers.
    async with ClientSession(base_url=group.url, connector=TCPConnector(force_close=True)) as http:
        async def post(i: int) -> int:
            async with http.post("/logs", json=entry(backend_name=f"be{i % 4}")) as response:
                return response.status

        tcp = [send_tcp(syslog_port, b"".join(octet(rfc3164(httplog(i + 1000 * n))) for i in range(50)))
               for n in range(6)]
        answers, *_ = await asyncio.gather(asyncio.gather(*(post(i) for i in range(200))), *tcp)
    assert answers == [202] * 200
    send_udp(syslog_port, [rfc3164(httplog(i)) for i in range(100)])

    async with group.session() as http:
        await expect_total(http, 200 + 300 + 100)
        found = await samples(http)
    # Read from Redis once, not once a worker; the process counters are the group's sums.
    assert found[("incident_copilot_ingest_lines_accepted_total", (("source", "http"),))] == 200
    assert found[("incident_copilot_ingest_lines_accepted_total", (("source", "syslog"),))] == 400
    assert found[("incident_copilot_http_requests_total", (("route", "/logs"), ("status", "202")))] == 200


async def test_a_killed_worker_is_restarted_and_the_service_keeps_answering(group: ServiceProcess) -> None:
    victim = min(await start_serving(group))
    os.kill(victim, signal.SIGKILL)
    async with group.session() as http:
        for _ in range(20):  # the other worker answers meanwhile
            async with http.get("/health") as response:
                assert response.status == 200

        async def replaced_and_serving() -> bool:
            now = workers_of(group.process.pid)
            return len(now) == 2 and victim not in now and serving_pids(group.port, now, 32) == now

        await eventually(replaced_and_serving)
    assert "worker exited; restarting it" in group.output()


async def test_sigterm_stops_every_worker_cleanly(group: ServiceProcess) -> None:
    workers = await start_serving(group)
    group.process.terminate()
    assert group.process.wait(30) == 0
    assert all(not Path(f"/proc/{pid}").exists() or _is_zombie(pid) for pid in workers)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
