"""A demo backend for HAProxy to front, switchable between healthy, slow and failing.

    python deploy/demo_backend.py serve --port 8000
    python deploy/demo_backend.py traffic --url http://127.0.0.1:8081 --rps 5

Every path answers in the current mode:

- ``healthy``: 200 after a few milliseconds;
- ``slow``: 200 after ``delay_ms`` (default 1500, ±10 %);
- ``failing``: ``status`` (default 500) for ``pct`` percent of requests (default 100),
  the others as when healthy.

``PUT /_demo/mode/{mode}`` switches it (``?delay_ms=``, ``?status=``, ``?pct=``), ``GET
/_demo/mode`` says which is in force and ``GET /_demo/health`` answers 200 in every mode,
so HAProxy's health check keeps the server up while it fails: its 5xx are the
backend's own. To see the backend down, stop the process; HAProxy then answers 503
itself. ``traffic`` sends a steady request rate, as a user population would.

Standalone on purpose (aiohttp only): it runs from the service image and from a
checkout alike, without being part of the service's package.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import signal
import sys
import time
from dataclasses import dataclass, field, replace

from aiohttp import ClientSession, ClientTimeout, web

MODES = ("healthy", "slow", "failing")
HEALTHY_MS = (2.0, 25.0)
TRAFFIC_PATHS = ("/api/items", "/api/items/42", "/api/orders", "/api/orders/7/lines", "/api/search?q=demo")


@dataclass(frozen=True)
class Mode:
    name: str = "healthy"
    delay_ms: int = 1500
    status: int = 500
    pct: float = 100.0

    def as_json(self) -> dict[str, object]:
        return {"mode": self.name, "delay_ms": self.delay_ms, "status": self.status, "pct": self.pct}


class ModeError(ValueError):
    """A mode switch that can never succeed as asked."""


def switched(current: Mode, name: str, query: dict[str, str]) -> Mode:
    """The mode after ``PUT /_demo/mode/{name}?...``; parameters not given keep their value."""
    if name not in MODES:
        raise ModeError(f"unknown mode {name!r}; one of {', '.join(MODES)}")
    try:
        delay_ms = int(query.get("delay_ms", current.delay_ms))
        status = int(query.get("status", current.status))
        pct = float(query.get("pct", current.pct))
    except ValueError as exc:
        raise ModeError(str(exc)) from None
    if not 0 <= delay_ms <= 600_000:
        raise ModeError("delay_ms must be between 0 and 600000")
    if not 400 <= status <= 599:
        raise ModeError("status must be a 4xx or 5xx code")
    if not 0 <= pct <= 100:
        raise ModeError("pct must be between 0 and 100")
    return replace(current, name=name, delay_ms=delay_ms, status=status, pct=pct)


def planned_answer(mode: Mode, rng: random.Random) -> tuple[int, float]:
    """Status and delay (seconds) of the next request in ``mode``."""
    if mode.name == "slow":
        return 200, mode.delay_ms * rng.uniform(0.9, 1.1) / 1000
    if mode.name == "failing" and rng.uniform(0, 100) < mode.pct:
        return mode.status, rng.uniform(*HEALTHY_MS) / 1000
    return 200, rng.uniform(*HEALTHY_MS) / 1000


@dataclass
class Switch:
    """The mode in force: the one thing that changes while the app runs."""

    mode: Mode = field(default_factory=Mode)


SWITCH = web.AppKey("switch", Switch)
RNG = web.AppKey("rng", random.Random)


async def answer(request: web.Request) -> web.Response:
    status, delay = planned_answer(request.app[SWITCH].mode, request.app[RNG])
    await asyncio.sleep(delay)
    body = {"path": request.path} if status < 400 else {"error": "demo failure", "status": status}
    return web.json_response(body, status=status)


async def get_mode(request: web.Request) -> web.Response:
    return web.json_response(request.app[SWITCH].mode.as_json())


async def put_mode(request: web.Request) -> web.Response:
    switch = request.app[SWITCH]
    try:
        switch.mode = switched(switch.mode, request.match_info["name"], dict(request.query))
    except ModeError as exc:
        return web.json_response({"error": "bad_mode", "detail": str(exc)}, status=400)
    return web.json_response(switch.mode.as_json())


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def create_app(*, rng: random.Random | None = None) -> web.Application:
    app = web.Application()
    app[SWITCH] = Switch()
    app[RNG] = rng or random.Random()
    app.router.add_get("/_demo/health", health)
    app.router.add_get("/_demo/mode", get_mode)
    app.router.add_put("/_demo/mode/{name}", put_mode)
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def send_traffic(url: str, rps: float, *, report_every: float = 10.0, max_in_flight: int = 500) -> None:
    """Request ``url`` + one of `TRAFFIC_PATHS` ``rps`` times a second, forever; print a tally now and then."""
    tally: collections.Counter[str] = collections.Counter()
    in_flight: set[asyncio.Task[None]] = set()
    rng = random.Random()

    async def one(session: ClientSession, path: str) -> None:
        try:
            async with session.get(url.rstrip("/") + path) as response:
                await response.read()
                tally[str(response.status)] += 1
        except Exception as exc:  # a refused or cut connection is part of what the demo shows
            tally[type(exc).__name__] += 1

    async with ClientSession(timeout=ClientTimeout(total=60)) as session:
        start = last_report = time.monotonic()
        sent = 0
        while True:
            # Requests start on schedule however slowly the earlier ones answer.
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / rps - time.monotonic()))
            if len(in_flight) < max_in_flight:
                task = asyncio.create_task(one(session, rng.choice(TRAFFIC_PATHS)))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            else:
                tally["skipped"] += 1
            if time.monotonic() - last_report >= report_every:
                last_report = time.monotonic()
                print(" ".join(f"{key}={n}" for key, n in sorted(tally.items())) or "no answers yet",
                      f"in_flight={len(in_flight)}", flush=True)
                tally.clear()


async def run_traffic(url: str, rps: float) -> None:
    """`send_traffic` until SIGINT or SIGTERM (as a container's first process, nothing else would stop it)."""
    task = asyncio.ensure_future(send_traffic(url, rps))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_backend", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="answer HTTP requests in the current mode")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    traffic = sub.add_parser("traffic", help="send a steady request rate")
    traffic.add_argument("--url", required=True, help="base URL, e.g. HAProxy's frontend")
    traffic.add_argument("--rps", type=float, default=5.0, help="requests a second")
    args = parser.parse_args(argv)
    if args.command == "serve":
        web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)
    else:
        asyncio.run(run_traffic(args.url, args.rps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
