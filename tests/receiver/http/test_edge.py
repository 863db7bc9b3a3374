"""The edge's limits: content encodings, slow and truncated requests, connection caps, read tokens, headers."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import orjson
import pytest
from aiohttp import web

from receiver.app import create_app
from receiver.http.server import ServerLimits, start
from receiver.settings import Settings
from tests.support.incidents import payload
from tests.support.records import line
from tests.support.settings import with_settings

TEXT = {"Content-Type": "text/plain"}
JSON = {"Content-Type": "application/json"}
SECURITY = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


@pytest.fixture
async def client(aiohttp_client, settings: Settings, fake_redis):
    return await aiohttp_client(create_app(settings, redis=fake_redis))


def lines(count: int = 3) -> bytes:
    return "\n".join(line() for _ in range(count)).encode()


# Content encodings


@pytest.mark.parametrize(("encoding", "encode"), [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
    ("identity", lambda data: data),
    ("gzip", lambda data: gzip.compress(data[:10]) + gzip.compress(data[10:])),  # two gzip members
])
async def test_compressed_logs_are_read(client, encoding: str, encode) -> None:
    response = await client.post("/logs", data=encode(lines()), headers={**TEXT, "Content-Encoding": encoding})
    assert response.status == 202, await response.text()
    assert (await response.json())["accepted"] == 3


@pytest.mark.parametrize("path", ["/logs", "/alerts", "/analyze"])
@pytest.mark.parametrize(("encoding", "data"), [
    ("gzip", b"this is not gzip at all"),
    ("gzip", gzip.compress(b"x" * 1000)[:-12]),  # cut short
    ("deflate", b"\x78\x9c not deflate either"),
    ("gzip", gzip.compress(b"{}") + b"trailing"),
])
async def test_a_body_that_is_not_its_encoding_is_a_json_400(client, path: str, encoding: str, data: bytes) -> None:
    response = await client.post(path, data=data, headers={**JSON, "Content-Encoding": encoding})
    assert response.status == 400
    answer = await response.json()
    assert answer["error"] == "invalid_content_encoding" and encoding in answer["detail"]


@pytest.mark.parametrize("path", ["/logs", "/alerts", "/analyze"])
@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "snappy", "gzip, br"])
async def test_an_encoding_not_decoded_here_is_a_json_415_naming_those_that_are(client, path, encoding) -> None:
    response = await client.post(path, data=b"\x1b\x00compressed", headers={**JSON, "Content-Encoding": encoding})
    assert response.status == 415
    answer = await response.json()
    assert answer["error"] == "unsupported_content_encoding"
    assert "gzip" in answer["detail"] and "deflate" in answer["detail"]


async def test_a_body_that_inflates_past_the_limit_is_a_413(aiohttp_client, settings, fake_redis) -> None:
    client = await aiohttp_client(create_app(with_settings(settings, max_body_bytes=64 * 1024), redis=fake_redis))
    bomb = gzip.compress(b"\n" * (10 * 1024 * 1024))  # 10 kB that would be 10 MB
    response = await client.post("/logs", data=bomb, headers={**TEXT, "Content-Encoding": "gzip"})
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"


async def test_a_compressed_alert_notification_is_stored(aiohttp_client, settings, fake_redis) -> None:
    client = await aiohttp_client(create_app(settings, redis=fake_redis))
    body = gzip.compress(orjson.dumps(payload("firing")))
    response = await client.post("/alerts", data=body, headers={**JSON, "Content-Encoding": "gzip"})
    assert response.status == 200, await response.text()


# Slow, truncated and too many connections, over real sockets


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 30)  # a fail-safe, not a figure under test
    finally:
        writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_a_json_408(aiohttp_client, settings, fake_redis) -> None:
    client = await aiohttp_client(create_app(with_settings(settings, http_body_timeout_seconds=0.3),
                                             redis=fake_redis))
    head = b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
    answer = await exchange(client.port, head + b"127.0.0.1")
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert orjson.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"


@pytest.fixture
async def listening(settings, fake_redis):
    """The app served the way `incident-copilot serve` serves it, with the limits a test gives."""
    started: list = []

    async def serve(limits: ServerLimits) -> int:
        runner = web.AppRunner(create_app(settings, redis=fake_redis))
        await runner.setup()
        server = await start(runner, "127.0.0.1", 0, limits)
        started.append((server, runner))
        return server.sockets[0].getsockname()[1]

    yield serve
    for server, runner in started:
        server.close()
        await runner.cleanup()


async def test_a_request_head_sent_byte_by_byte_is_cut_off(listening) -> None:
    port = await listening(ServerLimits(header_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
    closed = False
    for byte in head:  # far longer than the timeout, were the connection left open
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        if reader.at_eof() or (await _readable(reader)) == b"":
            closed = True
            break
    writer.close()
    assert closed


async def _readable(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await asyncio.wait_for(reader.read(1), 0.05)
    except TimeoutError:
        return None
    except ConnectionError:
        return b""


async def test_a_whole_head_in_time_is_served_and_kept_alive(listening) -> None:
    port = await listening(ServerLimits(header_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), 30)
        assert status.startswith(b"HTTP/1.1 200")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        length = int(head.lower().partition(b"content-length: ")[2].partition(b"\r\n")[0])
        await reader.readexactly(length)
        await asyncio.sleep(0.4)  # past the header timeout: it guards the first head only
    writer.close()


async def test_an_idle_keep_alive_connection_is_closed(aiohttp_client, settings, fake_redis) -> None:
    client = await aiohttp_client(create_app(with_settings(settings, http_keepalive_seconds=0.3), redis=fake_redis))
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 30)  # ends only when the server closes
    assert answer.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_connections_beyond_the_cap_are_a_json_503_with_retry_after(listening) -> None:
    port = await listening(ServerLimits(max_connections=2))
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    await asyncio.sleep(0.05)  # let the server accept both
    answer = await exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
    assert orjson.loads(body)["error"] == "too_many_connections"
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.05)
    assert (await exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).startswith(
        b"HTTP/1.1 200")


# Reads behind READ_TOKEN, what errors show, what every response carries


READS = ["/incidents", "/incidents/inc-20260101-0123abcd", "/incidents/inc-20260101-0123abcd/postmortem",
         "/metrics/overview", "/metrics/backends?window=60", "/prometheus/metrics"]


@pytest.mark.parametrize("path", READS)
async def test_reads_need_the_read_token_when_it_is_set(aiohttp_client, settings, fake_redis, path: str) -> None:
    client = await aiohttp_client(create_app(with_settings(settings, read_token="look"), redis=fake_redis))
    response = await client.get(path)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"] == "unauthorized"
    allowed = await client.get(path, headers={"Authorization": "Bearer look"})
    assert allowed.status in (200, 404)
    assert (await client.get("/health")).status == 200  # the probe stays open


@pytest.mark.parametrize("path", READS)
async def test_reads_are_open_without_a_read_token(client, path: str) -> None:
    assert (await client.get(path)).status in (200, 404)


async def test_an_unreachable_redis_is_never_named_in_an_answer(aiohttp_client, settings) -> None:
    address = "127.0.0.1:1"
    client = await aiohttp_client(create_app(with_settings(settings, redis_url=f"redis://{address}/0")))
    health = await client.get("/health")
    assert health.status == 503 and health.headers["Retry-After"]
    assert await health.json() == {"status": "unavailable", "redis": "unreachable", "detail": "redis unreachable"}
    for response in (await client.get("/metrics/overview"), await client.post("/logs", data=lines(), headers=TEXT)):
        assert response.status == 503 and response.headers["Retry-After"]
        text = await response.text()
        assert orjson.loads(text)["error"] == "redis_unavailable"
        assert address not in text and "127.0.0.1" not in text


@pytest.mark.parametrize(("method", "path"), [("GET", "/health"), ("GET", "/nowhere"), ("GET", "/openapi.json"),
                                              ("POST", "/logs"), ("GET", "/prometheus/metrics")])
async def test_every_answer_says_it_is_data_not_a_page(client, method: str, path: str) -> None:
    response = await client.request(method, path, data=b"nonsense", headers=TEXT)
    for name, value in SECURITY.items():
        assert response.headers[name] == value


async def test_a_day_of_many_backends_is_answered_in_full(aiohttp_client, settings, fake_redis) -> None:
    client = await aiohttp_client(create_app(with_settings(settings, max_backends=300), redis=fake_redis))
    backends = [f"be{i:03d}" for i in range(260)]  # above the count whose figures are computed in a thread
    data = "\n".join(line(backend=name) for name in backends).encode()
    assert (await client.post("/logs", data=data, headers=TEXT)).status == 202
    answer = await (await client.get("/metrics/backends?window=1440")).json()
    assert sorted(b["backend"] for b in answer["backends"]) == backends
