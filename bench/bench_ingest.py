"""Ingestion throughput, single-entry latency, query p99 and Redis memory, against real processes.

    python bench/bench_ingest.py [--lines 1000000] [--big]

Prints figures; asserts nothing. `--big` adds the 10M-line memory run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    METRICS_QUERIES, line_pool, percentile, redis_mb, redis_server, rss_mb, service, to_ndjson,
)


async def blast(url: str, bodies: list[bytes], kind: str, concurrency: int) -> float:
    queue = list(bodies)
    async with aiohttp.ClientSession() as session:
        async def worker():
            while queue:
                body = queue.pop()
                async with session.post(url + "/logs", data=body, headers={"Content-Type": kind}) as resp:
                    if resp.status != 202:
                        raise RuntimeError(f"{resp.status}: {await resp.text()}")
                    await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def single_entries(url: str, entries: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(entries)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker():
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                async with session.post(url + "/logs", data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                latencies.append((time.perf_counter() - t) * 1000)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


async def query_p99(url: str, rounds: int) -> dict[str, tuple[float, float]]:
    out = {}
    async with aiohttp.ClientSession() as session:
        for name in METRICS_QUERIES:
            target = f"{url}/metrics/{name}"
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                async with session.get(target) as resp:
                    await resp.read()
                    assert resp.status == 200, (name, resp.status)
                times.append((time.perf_counter() - t) * 1000)
            out[name.split("?")[0]] = (percentile(times, 0.5), percentile(times, 0.99))
    return out


def chunks(lines: list[str], size: int) -> list[bytes]:
    return [("\n".join(lines[i:i + size]) + "\n").encode() for i in range(0, len(lines), size)]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--big", action="store_true", help="also ingest 10M lines for the memory figure")
    args = parser.parse_args()

    pool = line_pool(200_000)
    with redis_server() as redis_url, service(redis_url) as (url, pid, _):
        empty_mb = redis_mb(redis_url)
        # Warm up the route caches and the admission sets.
        await blast(url, chunks(pool[:20_000], args.batch), "text/plain", args.concurrency)

        text_bodies = chunks((pool * (args.lines // len(pool) + 1))[:args.lines], args.batch)
        elapsed = await blast(url, text_bodies, "text/plain", args.concurrency)
        print(f"raw text   : {args.lines:>10,} lines in {elapsed:6.2f} s = {args.lines / elapsed:>9,.0f} lines/s "
              f"({args.batch} lines/request, {args.concurrency} concurrent)")

        nd_lines = [to_ndjson(x) for x in pool[:100_000]]
        nd_bodies = [b"\n".join(nd_lines[i:i + args.batch]) + b"\n" for i in range(0, len(nd_lines), args.batch)]
        elapsed = await blast(url, nd_bodies * 3, "application/x-ndjson", args.concurrency)
        n = len(nd_lines) * 3
        print(f"NDJSON     : {n:>10,} lines in {elapsed:6.2f} s = {n / elapsed:>9,.0f} lines/s")

        singles = [b"[" + x + b"]" if False else x for x in nd_lines[:20_000]]
        elapsed, lat = await single_entries(url, singles, 32)
        print(f"single JSON: {len(singles):>10,} requests in {elapsed:6.2f} s = {len(singles) / elapsed:>9,.0f} req/s, "
              f"p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms (concurrency 32)")

        total = args.lines + 20_000 + n + len(singles)
        print(f"redis      : {redis_mb(redis_url) - empty_mb:6.1f} MB after {total:,} lines over 60 min, "
              f"20 backends, 500 paths; service RSS {rss_mb(pid):.0f} MB")

        for name, (p50, p99) in (await query_p99(url, 200)).items():
            print(f"query      : /metrics/{name:<20} window=60  p50 {p50:5.2f} ms  p99 {p99:5.2f} ms")

        if args.big:
            elapsed = await blast(url, text_bodies * 9, "text/plain", args.concurrency)
            total += args.lines * 9
            print(f"big        : +{args.lines * 9:,} lines in {elapsed:.0f} s; redis {redis_mb(redis_url) - empty_mb:.1f} MB "
                  f"after {total:,} lines; service RSS {rss_mb(pid):.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
