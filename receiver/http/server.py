"""The HTTP server's own limits: how long a connection may take to ask, and how many may be open.

aiohttp bounds header sizes and closes idle keep-alive connections (`handler_args`), but a
connection's first request head may take as long as its sender likes. `ConnectionGate` wraps
each connection's protocol: it closes one whose first request head is not complete within
`header_timeout`, and answers `503` with `Retry-After` to one beyond `max_connections`. Once
a request has arrived, aiohttp's keep-alive timeout bounds the wait for the next head, and
`read_body`'s deadline bounds each body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..settings import Settings

_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float = 10.0
    keepalive_timeout: float = 30.0
    max_connections: int = 512

    @classmethod
    def from_settings(cls, settings: Settings) -> "ServerLimits":
        return cls(header_timeout=settings.http_header_timeout_seconds,
                   keepalive_timeout=settings.http_keepalive_seconds,
                   max_connections=settings.http_max_connections)


def handler_args(settings: Settings) -> dict[str, Any]:
    """aiohttp's own per-connection settings. Bodies stay encoded: `read_body` decodes them, with a bound."""
    return {"keepalive_timeout": settings.http_keepalive_seconds, "auto_decompress": False}


def _refusal() -> bytes:
    body = orjson.dumps({"error": "too_many_connections", "detail": "the server is at its connection limit; retry"})
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


_REFUSAL = _refusal()


class ConnectionGate:
    """A protocol factory around aiohttp's: counts connections and guards each one's first request head."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limits: ServerLimits) -> None:
        self._factory = factory
        self.limits = limits
        self.open = 0
        self.refused = 0

    def __call__(self) -> asyncio.Protocol:
        return _GuardedConnection(self)


class _GuardedConnection(asyncio.Protocol):
    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate
        self._inner: asyncio.Protocol | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gate = self._gate
        if gate.open >= gate.limits.max_connections:
            gate.refused += 1
            transport.write(_REFUSAL)  # type: ignore[attr-defined]
            transport.close()
            return
        gate.open += 1
        self._deadline = asyncio.get_running_loop().call_later(gate.limits.header_timeout, transport.abort)
        self._inner = gate._factory()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._deadline is not None:
            if _HEAD_END in self._tail + data:
                self._deadline.cancel()
                self._deadline = None
            else:
                self._tail = data[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._inner is not None:
            self._gate.open -= 1
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


async def start(runner: web.AppRunner, host: str, port: int, limits: ServerLimits, *,
                reuse_port: bool = False) -> asyncio.Server:
    """Listen on host:port with the runner's app behind a `ConnectionGate`; the caller closes it.

    With `reuse_port`, other processes listening on the same port share its connections (SO_REUSEPORT)."""
    assert runner.server is not None, "runner.setup() first"
    gate = ConnectionGate(runner.server, limits)
    return await asyncio.get_running_loop().create_server(gate, host, port, reuse_address=True,
                                                          reuse_port=reuse_port or None)


def serve(app: web.Application, host: str, port: int, limits: ServerLimits, *, reuse_port: bool = False) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully, as `web.run_app` does."""

    async def serve_until_stopped() -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        server = None
        try:
            server = await start(runner, host, port, limits, reuse_port=reuse_port)
            await asyncio.Event().wait()
        finally:
            if server is not None:
                server.close()
            await runner.cleanup()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(serve_until_stopped())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            try:
                loop.run_until_complete(main)
            except asyncio.CancelledError:
                pass
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
