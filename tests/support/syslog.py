"""Syslog senders and readers shared by the listener tests and the fault suite."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from prometheus_client.parser import text_string_to_metric_families

from receiver.demo.stack import free_ports


def free_syslog_port() -> int:
    """A port free for both UDP and TCP on loopback."""
    return free_ports(1)[0]


def httplog(index: int, status: int = 200) -> str:
    """A HAProxy 2.6 httplog line accepted now, its date in UTC like the `settings` fixture reads it."""
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%d/%b/%Y:%H:%M:%S.") + f"{now.microsecond // 1000:03d}"
    return (f"127.0.0.1:{40000 + index} [{stamp}] fe_httplog be/s1 0/0/0/1/1 {status} 142 - - ---- "
            f'1/1/0/0/0 0/0 "GET /api/items?id={index} HTTP/1.1"')


def rfc3164(line: str) -> str:
    return f"<134>{datetime.now(timezone.utc):%b %d %H:%M:%S} haproxy[14155]: {line}"


def rfc5424(line: str) -> str:
    return f"<134>1 {datetime.now(timezone.utc).isoformat()} lb1 haproxy 14155 - - {line}"


def octet(message: str) -> bytes:
    body = message.encode()
    return b"%d %s" % (len(body), body)


def send_udp(port: int, messages: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for message in messages:
            udp.sendto(message.encode(), ("127.0.0.1", port))


async def send_tcp(port: int, data: bytes, pieces: int = 1) -> None:
    """Write `data` in `pieces` writes, so that messages straddle packets."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    step = max(1, -(-len(data) // pieces))
    for start in range(0, len(data), step):
        writer.write(data[start:start + step])
        await writer.drain()
        await asyncio.sleep(0.01)
    writer.close()
    await writer.wait_closed()


# A bound that ends a broken test, never one a busy machine can reach.
PATIENCE = 60.0


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = PATIENCE) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.05)


async def total_requests(client) -> int:
    response = await client.get("/metrics/overview")
    assert response.status == 200
    return (await response.json())["total_requests"]


async def expect_total(client, expected: int, seconds: float = PATIENCE) -> None:
    async def reached() -> bool:
        return await total_requests(client) >= expected

    await eventually(reached, seconds)
    assert await total_requests(client) == expected


async def samples(client) -> dict[tuple[str, tuple], float]:
    response = await client.get("/prometheus/metrics")
    assert response.status == 200
    found = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found
