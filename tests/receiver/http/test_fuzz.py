"""Schemathesis against the real service on a real port: no 5xx, and every answer is the documented one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings as hypothesis_settings, strategies as st
from redis.asyncio import Redis
from schemathesis import GenerationMode

from receiver.app import create_app
from receiver.http.logs import NDJSON_TYPES
from receiver.http.openapi import openapi_document
from receiver.settings import Settings

from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 30
# aiohttp's parser refuses longer request lines (plain-text 400) before the app sees them.
MAX_REQUEST_TARGET = 8000

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]

# NDJSON bodies are documented as text (one entry a line) and go on the wire as such.
schemathesis.serializer.alias(sorted(NDJSON_TYPES), "text/plain")

OPERATIONS = [(method.upper(), path) for path, item in openapi_document()["paths"].items() for method in item]


class ServiceThread:
    """The app on 127.0.0.1 in a loop of its own, so that synchronous HTTP calls can reach it."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-service", daemon=True)
        self.url = ""

    def start(self) -> None:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _start(self) -> str:
        self.redis = Redis.from_url(self.redis_url, decode_responses=True)
        await self.redis.flushdb()
        self.runner = web.AppRunner(create_app(self.settings, redis=self.redis))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.redis.aclose()


@pytest.fixture(scope="module")
def service(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    directory = tmp_path_factory.mktemp("fuzz")
    settings = Settings(_env_file=None, log_timezone="UTC", data_dir=directory / "var",
                        postmortem_dir=directory / "post-mortems", syslog_port=0, run_worker=False)
    if redis_server.process is None:
        redis_server.start()
    thread = ServiceThread(settings, redis_server.url)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def api(service: ServiceThread) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation(api, service: ServiceThread, session: requests.Session, method: str, path: str) -> None:
    operation = api[path][method]
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    if operation.path_parameters or operation.query or operation.body:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))

    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(strategies))
    def check(case) -> None:
        assume(len(request_target(case, service.url)) <= MAX_REQUEST_TARGET)
        case.call_and_validate(base_url=service.url, session=session, checks=CHECKS)

    check()


def request_target(case, base_url: str) -> str:
    sent = case.as_transport_kwargs(base_url=base_url)
    return requests.Request(method=sent["method"], url=sent["url"], params=sent.get("params")).prepare().path_url


# Requests within the documented types, at the edges of what they allow, that once got a 5xx
# where a 4xx is due.
EDGE_OF_TIME = "0001-01-01T00:00:00+01:00"  # one hour before datetime.min once in UTC
ALERT_AT_EDGE_OF_TIME = {
    "version": "4", "groupKey": "g", "status": "firing",
    "alerts": [{"status": "firing", "labels": {}, "startsAt": EDGE_OF_TIME, "fingerprint": "a"}],
}

EDGE_CASES = [
    pytest.param("GET", "/metrics/overview", {"query": {"at": EDGE_OF_TIME}},
                 id="metrics-at-before-year-1"),
    pytest.param("GET", "/metrics/rps", {"query": {"at": "0001-01-01T00:30:00Z", "minutes": 1440}},
                 id="metrics-window-before-year-1"),
    pytest.param("POST", "/analyze", {"body": {"at": EDGE_OF_TIME}, "media_type": "application/json"},
                 id="analyze-at-before-year-1"),
    pytest.param("POST", "/analyze", {"body": {"at": "0001-01-01T01:00:00+01:00"}, "media_type": "application/json"},
                 id="analyze-window-before-year-1"),
    pytest.param("POST", "/alerts", {"body": ALERT_AT_EDGE_OF_TIME, "media_type": "application/json"},
                 id="alerts-starts-at-before-year-1"),
    pytest.param("POST", "/logs", {"body": "hello", "media_type": "text/plain",
                                   "headers": {"Content-Type": "text/plain; charset=nope"}},
                 id="logs-unknown-charset"),
]


@pytest.mark.parametrize(("method", "path", "request_parts"), EDGE_CASES)
def test_edge_case(api, service: ServiceThread, session: requests.Session, method: str, path: str,
                      request_parts: dict) -> None:
    case = api[path][method].Case(**request_parts)
    case.call_and_validate(base_url=service.url, session=session, checks=CHECKS)
