"""`incident-copilot ingest`: a file sent in batches, waiting out a service that is briefly unavailable."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from receiver.cli import ingest
from tests.support.records import line


class FlakyService:
    """Answers `failures` 503s, then accepts every line."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[bytes] = []

    async def logs(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.failures:
            self.failures -= 1
            return web.json_response({"error": "redis_unavailable"}, status=503)
        self.bodies.append(body)
        lines = body.count(b"\n")
        return web.json_response({"accepted": lines, "rejected": 0, "errors": []}, status=202)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "RETRY_FIRST_SECONDS", 0.01)
    monkeypatch.setattr(ingest, "RETRY_MAX_SECONDS", 0.02)


async def serve(aiohttp_server, service: FlakyService) -> str:
    app = web.Application()
    app.router.add_post("/logs", service.logs)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


async def test_batches_refused_with_503_are_sent_again_and_nothing_is_lost(aiohttp_server, tmp_path: Path, capsys):
    service = FlakyService(failures=3)
    url = await serve(aiohttp_server, service)
    source = tmp_path / "haproxy.log"
    source.write_text("".join(line() + "\n" for _ in range(25)))

    status = await ingest.ingest_file(str(source), url=url, token=None, batch_lines=10, quiet=True)

    assert status == 0
    assert [body.count(b"\n") for body in service.bodies] == [10, 10, 5]
    assert "25 accepted" in capsys.readouterr().out


async def test_a_service_that_stays_unavailable_ends_the_command_with_a_reason(aiohttp_server, tmp_path: Path):
    url = await serve(aiohttp_server, FlakyService(failures=100))
    source = tmp_path / "haproxy.log"
    source.write_text(line() + "\n")

    with pytest.raises(SystemExit, match="kept answering 503"):
        await ingest.ingest_file(str(source), url=url, token=None, batch_lines=10, quiet=True)
