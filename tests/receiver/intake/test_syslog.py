"""The syslog listener in the real app: real sockets on loopback, a real redis-server, a real HAProxy."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from redis.asyncio import Redis

from ingestion import MetricsQueries
from receiver.app import create_app
from receiver.appkeys import SYSLOG, SYSLOG_LIMITS
from receiver.settings import Settings
from receiver.intake import SyslogLimits
from receiver.intake.line_queue import LineQueue
from receiver.intake.syslog import udp_drops

from tests.support.syslog import (
    eventually,
    expect_total,
    free_syslog_port,
    httplog,
    octet,
    rfc3164,
    rfc5424,
    samples,
    send_tcp,
    send_udp,
    total_requests,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def syslog_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"syslog_port": free_syslog_port()})


@pytest.fixture
def start_app(aiohttp_client, real_redis: Redis, syslog_settings: Settings):
    async def start(limits: SyslogLimits | None = None):
        app = create_app(syslog_settings, redis=real_redis)
        if limits is not None:
            app[SYSLOG_LIMITS] = limits
        return await aiohttp_client(app)

    return start


@pytest.mark.parametrize("wrap", [rfc3164, rfc5424, lambda line: line + "\n"], ids=["rfc3164", "rfc5424", "bare"])
async def test_udp_lines_show_in_the_overview(start_app, syslog_settings: Settings, wrap) -> None:
    client = await start_app()
    send_udp(syslog_settings.syslog_port, [wrap(httplog(i, 503 if i % 4 == 0 else 200)) for i in range(20)])
    await expect_total(client, 20)
    overview = await (await client.get("/metrics/overview")).json()
    assert overview["errors_5xx"] == 5


async def test_tcp_newline_and_octet_counted_connections_both_show(start_app, syslog_settings: Settings) -> None:
    client = await start_app()
    port = syslog_settings.syslog_port
    newline = "".join(rfc3164(httplog(i)) + ("\r\n" if i % 2 else "\n") for i in range(30)).encode()
    counted = b"".join(octet(rfc5424(httplog(i))) for i in range(30, 55))
    await asyncio.gather(send_tcp(port, newline, pieces=7), send_tcp(port, counted, pieces=11))
    await expect_total(client, 55)


async def test_held_lines_are_written_once_redis_is_back(start_app, syslog_settings: Settings, redis_server,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    client = await start_app(SyslogLimits(max_backoff_seconds=0.5))
    listener = client.app[SYSLOG]
    caplog.set_level(logging.WARNING, logger="receiver.syslog_listener")
    await asyncio.to_thread(redis_server.stop)
    try:
        send_udp(syslog_settings.syslog_port, [rfc3164(httplog(i)) for i in range(40)])
        await send_tcp(syslog_settings.syslog_port, "".join(rfc3164(httplog(i)) + "\n" for i in range(25)).encode())

        async def tried_and_held() -> bool:
            return listener.held == 65 and "redis unavailable" in caplog.text

        await eventually(tried_and_held)
        await asyncio.sleep(1.5)  # several retries fail meanwhile
    finally:
        await asyncio.to_thread(redis_server.start)
    await expect_total(client, 65)
    assert listener.held == 0
    assert sum("redis unavailable" in r.getMessage() for r in caplog.records) == 1, "logged once per outage"
    dropped = await samples(client)
    assert dropped[("incident_copilot_syslog_dropped_lines_total", (("transport", "udp"),))] == 0


async def test_a_batch_redis_refuses_is_dropped_once_and_counts_nothing(start_app, syslog_settings: Settings,
                                                                       real_redis: Redis) -> None:
    client = await start_app(SyslogLimits(max_backoff_seconds=0.2))
    port = syslog_settings.syslog_port
    send_udp(port, [rfc3164(httplog(i)) for i in range(3)])
    await expect_total(client, 3)
    # The peaks of this minute and the next holding another type: Redis answers WRONGTYPE to
    # their write, which comes after the batch's counters.
    minute = int(time.time() // 60)
    planted = [f"ic:m:{{{m}}}:x" for m in (minute, minute + 1)]
    for key in planted:
        await real_redis.delete(key)
        await real_redis.set(key, "not a sorted set")
    send_udp(port, [rfc3164(httplog(i, 503)) for i in range(40)])

    async def dropped() -> bool:
        found = await samples(client)
        return found[("incident_copilot_syslog_dropped_lines_total", (("transport", "udp"),))] == 40

    await eventually(dropped)
    assert client.app[SYSLOG].held == 0, "not held for another try"
    await asyncio.sleep(0.5)  # several backoffs: a batch still retried would be written again meanwhile
    assert await total_requests(client) == 3, "nothing of the refused batch was counted"
    await real_redis.delete(*planted)
    send_udp(port, [rfc3164(httplog(i)) for i in range(5)])
    await expect_total(client, 8)
    overview = await (await client.get("/metrics/overview")).json()
    assert overview["errors_5xx"] == 0


async def test_lines_beyond_a_full_queue_are_dropped_and_counted(start_app, syslog_settings: Settings) -> None:
    # No flush before shutdown: the queue only fills.
    client = await start_app(SyslogLimits(queue_lines=50, batch_lines=10_000, flush_seconds=3600))
    port = syslog_settings.syslog_port
    await send_tcp(port, "".join(rfc3164(httplog(i)) + "\n" for i in range(80)).encode(), pieces=3)
    await eventually(lambda: _true(client.app[SYSLOG].held == 50))
    send_udp(port, [rfc3164(httplog(i)) for i in range(30)])

    async def all_counted() -> bool:
        found = await samples(client)
        return found[("incident_copilot_syslog_dropped_lines_total", (("transport", "udp"),))] == 30

    await eventually(all_counted)
    found = await samples(client)
    assert found[("incident_copilot_syslog_dropped_lines_total", (("transport", "tcp"),))] == 30
    assert client.app[SYSLOG].held == 50


async def test_shutdown_writes_the_lines_it_holds(start_app, syslog_settings: Settings, real_redis: Redis) -> None:
    client = await start_app(SyslogLimits(batch_lines=10_000, flush_seconds=3600))
    send_udp(syslog_settings.syslog_port, [rfc3164(httplog(i)) for i in range(12)])
    await eventually(lambda: _true(client.app[SYSLOG].held == 12))
    await client.close()
    overview = await MetricsQueries(real_redis).overview()
    assert overview.total_requests == 12


async def test_oversize_tcp_message_is_counted_and_the_stream_goes_on(start_app, syslog_settings: Settings) -> None:
    client = await start_app()
    data = rfc3164(httplog(1)).encode() + b"\n" + b"<134>" + b"x" * 70_000 + b"\n" + rfc3164(httplog(2)).encode()
    await send_tcp(syslog_settings.syslog_port, data, pieces=5)
    await expect_total(client, 2)
    found = await samples(client)
    assert found[("incident_copilot_syslog_dropped_lines_total", (("transport", "tcp"),))] == 1


async def test_kernel_drops_of_a_full_receive_buffer_are_exposed(start_app, syslog_settings: Settings) -> None:
    client = await start_app(SyslogLimits(receive_buffer_bytes=4096))
    # Sending without yielding keeps the loop from reading: the small buffer overflows.
    send_udp(syslog_settings.syslog_port, [rfc3164(httplog(i)) for i in range(500)])
    found = await samples(client)
    kernel_drops = found[("incident_copilot_syslog_kernel_drops", ())]
    assert kernel_drops > 0
    await eventually(lambda: _true(client.app[SYSLOG].held == 0))
    assert await total_requests(client) == 500 - kernel_drops


async def test_port_zero_starts_no_listener(aiohttp_client, real_redis: Redis, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings, redis=real_redis))
    assert SYSLOG not in client.app
    assert not any(name == "incident_copilot_syslog_kernel_drops" for name, _ in await samples(client))


def test_line_queue_keeps_what_fits_and_counts_by_transport_what_leaves() -> None:
    queue = LineQueue(capacity=5)
    assert queue.offer(["u1", "u2"], "udp") == 0
    assert queue.offer(["t1", "t2"], "tcp") == 0
    assert queue.offer(["u3", "u4", "u5"], "udp") == 2
    assert queue.offer(["u6"], "udp") == 1
    assert queue.held == 5
    assert queue.peek(3) == ["u1", "u2", "t1"]
    assert queue.held == 5, "peeking keeps the lines until they are written"
    assert queue.commit(3) == {"udp": 2, "tcp": 1}
    assert queue.offer(["t3"], "tcp") == 0
    assert queue.peek(10) == ["t2", "u3", "t3"]
    assert queue.clear() == {"tcp": 2, "udp": 1}
    assert queue.held == 0


def test_udp_drops_reads_the_row_of_the_socket() -> None:
    table = (
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
        "  1: 0100007F:1414 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4242 2 0000000000000000 0\n"
        "  2: 0100007F:1415 00000000:0000 07 00000000:0001F400 00:00000000 00000000  1000        0 4343 2 0000000000000000 17\n"
    )
    assert udp_drops(table, 4343) == 17
    assert udp_drops(table, 4242) == 0
    assert udp_drops(table, 9999) is None


async def _true(value: bool) -> bool:
    return value


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


# HAProxy itself as the sender.

HAPROXY_CONFIG = """
global
    log {log_target} local0
{ring}
defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 2s
    timeout client 5s
    timeout server 5s

frontend fe_httplog
    bind 127.0.0.1:{frontend_port}
    default_backend be_app

backend be_app
    server s1 127.0.0.1:{backend_port}
"""

TCP_RING = """
ring to_listener
    format rfc5424
    maxlen 4096
    size 32768
    timeout connect 2s
    timeout server 10s
    server listener 127.0.0.1:{syslog_port}
"""


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"haproxy exited: {log_path.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"haproxy did not listen on {port}: {log_path.read_text()}")


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not on PATH (Debian: apt-get install haproxy)")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_real_haproxy_logs_reach_the_overview(start_app, syslog_settings: Settings, aiohttp_server,
                                                    tmp_path: Path, transport: str) -> None:
    client = await start_app()
    backend = web.Application()
    backend.router.add_get("/api/items", _ok)
    backend_server = await aiohttp_server(backend)
    frontend_port = _free_tcp_port()
    syslog_port = syslog_settings.syslog_port
    config = HAPROXY_CONFIG.format(
        log_target=f"127.0.0.1:{syslog_port}" if transport == "udp" else "ring@to_listener",
        ring=TCP_RING.format(syslog_port=syslog_port) if transport == "tcp" else "",
        frontend_port=frontend_port, backend_port=backend_server.port,
    )
    (tmp_path / "haproxy.cfg").write_text(config)
    log_path = tmp_path / "haproxy.out"
    with log_path.open("wb") as out:
        # HAProxy writes accept dates in its local time; the settings read them as UTC.
        process = subprocess.Popen([shutil.which("haproxy"), "-db", "-f", str(tmp_path / "haproxy.cfg")],
                                   stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "TZ": "UTC"})
    try:
        await asyncio.to_thread(_wait_listening, frontend_port, process, log_path)
        async with ClientSession() as session:
            for index in range(6):
                async with session.get(f"http://127.0.0.1:{frontend_port}/api/items?id={index}") as response:
                    assert response.status == 200
            async with session.get(f"http://127.0.0.1:{frontend_port}/missing") as response:
                assert response.status == 404
        await expect_total(client, 7)
        overview = await (await client.get("/metrics/overview")).json()
        assert overview["errors_4xx"] == 1
        backends = await (await client.get("/metrics/backends")).json()
        assert "be_app" in str(backends)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)


async def test_a_silent_tcp_connection_is_closed_and_what_it_sent_is_kept(start_app,
                                                                          syslog_settings: Settings) -> None:
    client = await start_app(SyslogLimits(tcp_idle_seconds=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", syslog_settings.syslog_port)
    writer.write((rfc3164(httplog(1)) + "\n").encode())
    await writer.drain()
    # The listener closes the silent connection: the read ends (a fail-safe bounds the test, not the service).
    assert await asyncio.wait_for(reader.read(1), 30) == b""
    writer.close()
    await expect_total(client, 1)


async def test_tcp_connections_beyond_the_cap_are_closed(start_app, syslog_settings: Settings) -> None:
    client = await start_app(SyslogLimits(tcp_max_connections=2))
    port = syslog_settings.syslog_port
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for _, writer in held:
        writer.write((rfc3164(httplog(0)) + "\n").encode())
        await writer.drain()
    await expect_total(client, 2)  # both are being served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(1), 30) == b""
    writer.close()
    for _, writer in held:
        writer.write((rfc3164(httplog(3)) + "\n").encode())
        writer.close()
    await expect_total(client, 4)
