"""Every core: worker processes, group commit and query snapshots, measured side by side in one run.

    .venv/bin/python bench/bench_workers.py [--lines 300000] [--singles 10000] [--load-seconds 30]
                                            [--before-code DIR]

Prints, each against real processes on a fresh redis-server:
- batch ingestion (raw text, 5,000 lines a request) with `--workers 1` and `--workers 2`: lines/s
  and the service's CPU µs a line (parent and workers together);
- single-entry `POST /logs` (one JSON entry a request) at concurrency 32, before and after;
- `/metrics/paths` and the other views' p50/p99 while a steady ingestion load runs, before and after;
then the ratios. "Before" is, by default, this code as it was served before: one process
(`--workers 1`), no group commit (GROUP_COMMIT_MS=0), no snapshots (QUERY_SNAPSHOT_SECONDS=0);
`--before-code DIR` runs another checkout instead (`git worktree add /tmp/before <commit>`).
Asserts nothing; the load generator runs on the same machine and takes its share of the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import blast, chunks, single_entries  # noqa: E402
from harness import METRICS_QUERIES, cpu_seconds, line_pool, percentile, redis_server, service, to_ndjson  # noqa: E402

CONCURRENCY = 32
BATCH = 5000
LOAD_LINES_PER_SECOND = 10_000  # the steady load under which the queries are timed
LOAD_SINGLES_PER_SECOND = 200


@contextmanager
def running(label: str, *, code: Path | None = None, args: tuple[str, ...] = (), **env: str):
    extra = {"code": code} if code is not None else {}
    with redis_server() as redis_url, service(redis_url, args=args, **extra, **env) as svc:
        print(f"  [{label}]", flush=True)
        yield svc


async def batch_rate(url: str, pid: int, pool: list[str], lines: int) -> tuple[float, float]:
    """Lines a second and CPU µs a line, for `lines` raw lines in 5,000-line requests, 8 at a time."""
    await blast(url, chunks(pool[:20_000], BATCH), "text/plain", 8)  # route caches and admission sets
    bodies = chunks((pool * (lines // len(pool) + 1))[:lines], BATCH)
    cpu = cpu_seconds(pid)
    elapsed = await blast(url, bodies, "text/plain", 8)
    return lines / elapsed, (cpu_seconds(pid) - cpu) * 1e6 / lines


async def single_rate(url: str, entries: list[bytes]) -> tuple[float, float, float]:
    await single_entries(url, entries[:500], CONCURRENCY)
    elapsed, latencies = await single_entries(url, entries, CONCURRENCY)
    return len(entries) / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99)


async def queries_under_load(url: str, pool: list[str], seconds: float) -> dict[str, list[float]]:
    """Each view's latencies (ms), asked in turn, one at a time, while ingestion runs at a steady rate.

    The hour is filled first (`pool`, untimed); the load is then dated in the last minute, as live
    traffic is: it changes the live minutes only, and the settled ones stay cached."""
    await blast(url, chunks(pool, BATCH), "text/plain", 8)
    live = line_pool(20_000, minutes=1, seed=2)
    text = chunks(live, 1000)
    singles = [to_ndjson(line) for line in live[:2000]]
    stop = time.monotonic() + seconds
    timings: dict[str, list[float]] = {name.split("?")[0]: [] for name in METRICS_QUERIES}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        async def post(body: bytes, kind: str) -> None:
            async with session.post(url + "/logs", data=body, headers={"Content-Type": kind}) as resp:
                await resp.read()

        async def paced(bodies: list[bytes], kind: str, per_second: float) -> None:
            tasks = set()
            start = time.monotonic()
            for n in range(10**9):
                due = start + n / per_second
                if due > stop:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                task = asyncio.create_task(post(bodies[n % len(bodies)], kind))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)

        async def ask() -> None:
            await asyncio.sleep(2)  # the load first
            while time.monotonic() < stop:
                for name in METRICS_QUERIES:
                    began = time.perf_counter()
                    async with session.get(f"{url}/metrics/{name}") as resp:
                        await resp.read()
                    timings[name.split("?")[0]].append((time.perf_counter() - began) * 1000)

        await asyncio.gather(paced(text, "text/plain", LOAD_LINES_PER_SECOND / 1000),
                             paced(singles, "application/json", LOAD_SINGLES_PER_SECOND), ask())
    return timings


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000, help="lines of each batch run")
    parser.add_argument("--singles", type=int, default=10_000, help="single-entry requests of each run")
    parser.add_argument("--load-seconds", type=float, default=30, help="length of each query-under-load run")
    parser.add_argument("--before-code", type=Path, help="a checkout to run as 'before' (default: this code, "
                                                         "one process, no group commit, no snapshots)")
    args = parser.parse_args()
    pool = line_pool(100_000)
    entries = [to_ndjson(line) for line in pool[:args.singles]]
    before_env = {"SERVE_WORKERS": "1", "GROUP_COMMIT_MS": "0", "QUERY_SNAPSHOT_SECONDS": "0"}
    before = {"code": args.before_code} if args.before_code else {}
    before_label = f"before: {args.before_code}" if args.before_code else "before: --workers 1, no group commit, no snapshots"
    print(f"machine: {load_average()} at the start", flush=True)

    rates = {}
    for workers in (1, 2):
        with running(f"batch, --workers {workers}", args=("--workers", str(workers))) as svc:
            rates[workers] = await batch_rate(svc.url, svc.pid, pool, args.lines)
        print(f"batch --workers {workers}: {rates[workers][0]:>9,.0f} lines/s, {rates[workers][1]:5.1f} CPU µs/line "
              f"({args.lines:,} lines, {BATCH} a request, 8 at a time)", flush=True)

    singles = {}
    for label, options in ((before_label, {**before, **before_env}), ("after: --workers 1", {"args": ("--workers", "1")}),
                           ("after: --workers 2", {"args": ("--workers", "2")})):
        with running(f"single entries, {label}", **options) as svc:
            singles[label] = await single_rate(svc.url, entries)
        rate, p50, p99 = singles[label]
        print(f"single JSON, {label}: {rate:>7,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              f"({len(entries):,} requests, concurrency {CONCURRENCY})", flush=True)

    under_load = {}
    for label, options in ((before_label, {**before, **before_env}), ("after: --workers 2", {"args": ("--workers", "2")})):
        with running(f"queries under load, {label}", **options) as svc:
            under_load[label] = await queries_under_load(svc.url, pool, args.load_seconds)
        paths = under_load[label]["paths"]
        every = [ms for times in under_load[label].values() for ms in times]
        print(f"queries under {LOAD_LINES_PER_SECOND:,} lines/s + {LOAD_SINGLES_PER_SECOND} single entries/s, {label}: "
              f"/metrics/paths p50 {percentile(paths, 0.5):.1f} ms p99 {percentile(paths, 0.99):.1f} ms "
              f"({len(paths)} asked); all views p50 {percentile(every, 0.5):.1f} ms p99 {percentile(every, 0.99):.1f} ms",
              flush=True)

    after_label = "after: --workers 2"
    paths_before, paths_after = under_load[before_label]["paths"], under_load[after_label]["paths"]
    print("\nratios")
    print(f"  batch lines/s, --workers 2 / --workers 1     : {rates[2][0] / rates[1][0]:.2f}x")
    print(f"  CPU µs/line,   --workers 2 / --workers 1     : {rates[2][1] / rates[1][1]:.2f}x")
    print(f"  single-entry req/s, after (2 workers) / before: {singles[after_label][0] / singles[before_label][0]:.2f}x")
    print(f"  single-entry req/s, after (1 worker) / before : "
          f"{singles['after: --workers 1'][0] / singles[before_label][0]:.2f}x (group commit alone)")
    print(f"  /metrics/paths p99 under load, before / after : "
          f"{percentile(paths_before, 0.99) / percentile(paths_after, 0.99):.2f}x lower "
          f"({percentile(paths_before, 0.99):.1f} -> {percentile(paths_after, 0.99):.1f} ms)")
    print(f"machine: {load_average()} at the end")


if __name__ == "__main__":
    asyncio.run(main())
