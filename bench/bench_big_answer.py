"""How long one large `/metrics/*` answer holds the event loop: a day of many backends.

Fills a real redis-server with a day (1,440 minutes) of traffic over `--backends` backends an
hour, each hour a new set (so the day's window holds 24 times as many), with varied status
codes and termination states; then asks `GET /metrics/backends?window=1440` a few times while
a ticker on the service's loop records the longest time it waited for its turn.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import redis_server  # noqa: E402

from receiver.app import connect, create_app  # noqa: E402
from receiver.appkeys import INTAKE  # noqa: E402
from receiver.settings import Settings  # noqa: E402

CODES = (200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504)
TERMS = ("----", "sH--", "SC--", "CD--", "cD--", "sQ--", "SH--", "CR--", "PR--", "LR--")


def day_of_lines(start: datetime, backends: int) -> list[str]:
    lines = []
    for minute in range(1440):
        at = start + timedelta(minutes=minute)
        date = at.strftime("%d/%b/%Y:%H:%M:%S.000")
        hour = minute // 60
        for b in range(backends):
            code = CODES[(minute + b) % len(CODES)]
            term = TERMS[(minute * 7 + b) % len(TERMS)]
            lines.append(f'10.0.0.1:40000 [{date}] fe_http be-{hour:02d}-{b:03d}/srv-1 0/0/1/12/13 {code} 512 - - '
                         f'{term} 1/1/1/1/0 0/0 "GET /api/items/{b} HTTP/1.1"')
    return lines


class Ticker:
    """Wakes every `every` seconds and keeps the worst lateness seen."""

    def __init__(self, every: float = 0.002) -> None:
        self.every = every
        self.worst = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.every
            await asyncio.sleep(self.every)
            self.worst = max(self.worst, loop.time() - due)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", type=int, default=100, help="distinct backends an hour (default 100)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with redis_server() as url:
        settings = Settings(_env_file=None, redis_url=url, syslog_port=0, run_worker=False, log_timezone="UTC",
                            retention_minutes=1500, max_backends=args.backends)
        redis = connect(url)
        server = TestServer(create_app(settings, redis=redis))
        await server.start_server()
        try:
            end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
            lines = day_of_lines(end - timedelta(minutes=1439), args.backends)
            intake = server.app[INTAKE]
            started = time.perf_counter()
            for i in range(0, len(lines), 5000):
                await intake.text(lines[i:i + 5000], source="http")
            print(f"wrote {len(lines):,} lines in {time.perf_counter() - started:.1f} s")
            target = str(server.make_url("/metrics/backends?window=1440"))
            ticker = Ticker()
            tick = asyncio.create_task(ticker.run())
            for round_ in range(args.rounds):
                ticker.worst = 0.0
                started = time.perf_counter()
                body = await asyncio.to_thread(lambda: urllib.request.urlopen(target, timeout=60).read())
                took = time.perf_counter() - started
                print(f"round {round_ + 1}: {len(body) / 1e6:.1f} MB in {took * 1000:.0f} ms, "
                      f"longest loop stall {ticker.worst * 1000:.0f} ms")
            tick.cancel()
        finally:
            await server.close()
            await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
