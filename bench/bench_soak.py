"""Soak: a steady mix of ingestion for minutes on end, with alerts along the way, against real processes.

    .venv/bin/python bench/bench_soak.py [--minutes 10] [--rate 20000]

Sends `--rate` lines a second, dated now: most as raw-text batches, some as NDJSON batches
and single JSON entries, a tenth as syslog datagrams from a separate sender process. Every
30 s a firing Alertmanager notification for one backend, resolved 20 s later. Every 10 s a
row: lines accepted a second, service CPU and RSS, Redis used_memory, p99 of rounds of `/metrics/*`
queries. Then a summary. Exits 1 where the rate was not sustained, a request failed, or a
line was rejected or lost.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    METRICS_QUERIES, cpu_seconds, exposition_totals, line_pool, percentile, redis_mb, redis_server,
    rss_mb, service, to_ndjson,
)

from receiver.demo.stack import free_ports  # noqa: E402
from receiver.demo import alertmanager_payload  # noqa: E402

SAMPLE_SECONDS = 10
QUERY_ROUNDS = 3
FIRST_ALERT, ALERT_EVERY, RESOLVE_AFTER = 10, 30, 20
BACKENDS = 20
WEBHOOK_TOKEN = "soak"
# Shares of --rate; raw text takes the rest. A tenth as syslog keeps one datagram a line well
# within what a 2-core host receives without loss (bench_syslog.py finds the ceiling).
SHARES = {"ndjson": 0.15, "json": 0.01, "syslog": 0.10}
TEXT_BATCH, NDJSON_BATCH = 1000, 500
MAX_IN_FLIGHT = 32
SUSTAINED = 0.98  # of the target rate, over the whole run
FLAT_PCT = 5  # growth over the second half below which memory counts as flat
SYSLOG_SENDER = Path(__file__).with_name("bench_syslog.py")

# Bodies are made once with a placeholder for the date, which each request replaces with
# the current second: lines land in the live windows and the sender stays cheap.
STAMP = b"@STAMP@"
TEXT_DATE = re.compile(rb"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.")
JSON_DATE = re.compile(rb'"time_local": "[^"]+"')


@dataclass
class Route:
    """One way into `POST /logs`, paced to `lines_per_second`."""

    content_type: str
    bodies: list[bytes]
    lines_per_body: int
    date_format: str
    lines_per_second: float


@dataclass
class Tally:
    """What one client sent and how the service answered: "2xx", "4xx", "5xx" or "failed"."""

    lines: int = 0
    answers: Counter = field(default_factory=Counter)
    first_error: str = ""

    @property
    def errors(self) -> int:
        return sum(n for outcome, n in self.answers.items() if outcome != "2xx")


class Sample(NamedTuple):
    at: float
    lines_per_second: float
    cpu_pct: float  # of one core, since the previous sample
    cpu_seconds: float
    rss_mb: float
    redis_mb: float
    query_ms: list[float]
    totals: dict[str, float]


def routes(rate: float) -> dict[str, Route]:
    pool = line_pool(72_000, backends=BACKENDS)
    text = [TEXT_DATE.sub(b"[" + STAMP + b".", ("\n".join(pool[i:i + TEXT_BATCH]) + "\n").encode())
            for i in range(0, 60_000, TEXT_BATCH)]
    entries = [JSON_DATE.sub(b'"time_local": "' + STAMP + b'+00:00"', to_ndjson(x)) for x in pool[60_000:]]
    ndjson = [b"\n".join(entries[i:i + NDJSON_BATCH]) + b"\n" for i in range(0, 10_000, NDJSON_BATCH)]
    iso, clf = "%Y-%m-%dT%H:%M:%S", "%d/%b/%Y:%H:%M:%S"
    text_rate = rate * (1 - sum(SHARES.values()))
    return {
        "text": Route("text/plain", text, TEXT_BATCH, clf, text_rate),
        "ndjson": Route("application/x-ndjson", ndjson, NDJSON_BATCH, iso, rate * SHARES["ndjson"]),
        "json": Route("application/json", entries[10_000:], 1, iso, rate * SHARES["json"]),
    }


async def post(session: aiohttp.ClientSession, url: str, tally: Tally, **request) -> None:
    try:
        async with session.post(url, **request) as resp:
            answer = await resp.read()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        outcome, detail = "failed", repr(exc)
    else:
        outcome, detail = f"{resp.status // 100}xx", f"{resp.status} {answer[:300]!r}"
    tally.answers[outcome] += 1
    if outcome != "2xx" and not tally.first_error:
        tally.first_error = detail


async def pace(session: aiohttp.ClientSession, url: str, route: Route, seconds: float, tally: Tally) -> None:
    """Bodies on a fixed schedule; one that finds `MAX_IN_FLIGHT` requests unanswered waits, and falls behind."""
    loop = asyncio.get_running_loop()
    interval = route.lines_per_body / route.lines_per_second
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    headers = {"Content-Type": route.content_type}

    async def send(body: bytes) -> None:
        try:
            await post(session, url + "/logs", tally, data=body, headers=headers)
        finally:
            slots.release()

    start = loop.time()
    async with asyncio.TaskGroup() as group:
        for n, body in enumerate(itertools.cycle(route.bodies)):
            if n * interval >= seconds:
                break
            await asyncio.sleep(start + n * interval - loop.time())
            await slots.acquire()
            group.create_task(send(body.replace(STAMP, time.strftime(route.date_format, time.gmtime()).encode())))
            tally.lines += route.lines_per_body


async def alerts(session: aiohttp.ClientSession, url: str, seconds: float, tally: Tally) -> None:
    """A latency alert for one backend after another: firing, then resolved `RESOLVE_AFTER` s later."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    for n, at in enumerate(range(FIRST_ALERT, int(seconds) - RESOLVE_AFTER + 1, ALERT_EVERY)):
        await asyncio.sleep(start + at - loop.time())
        backend, starts_at = f"be{n % BACKENDS}", datetime.now(timezone.utc)
        for status, wait in (("firing", RESOLVE_AFTER), ("resolved", 0)):
            ends_at = datetime.now(timezone.utc) if status == "resolved" else None
            payload = alertmanager_payload(status, backend=backend, starts_at=starts_at, ends_at=ends_at,
                                           external_url="http://127.0.0.1:9093", p99_seconds=1.4)
            await post(session, url + "/alerts", tally, json=payload, headers=headers)
            await asyncio.sleep(wait)
        tally.lines += 1  # alerts fired, each resolved


async def totals(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url + "/prometheus/metrics") as resp:
        return exposition_totals(await resp.text())


async def sample(session: aiohttp.ClientSession, url: str, pid: int, redis_url: str, start: float,
                 previous: Sample) -> Sample:
    at, cpu, now = time.monotonic() - start, cpu_seconds(pid), await totals(session, url)
    accepted = now["incident_copilot_ingest_lines_accepted_total"]
    rate = (accepted - previous.totals.get("incident_copilot_ingest_lines_accepted_total", 0)) / (at - previous.at)
    cpu_pct = 100 * (cpu - previous.cpu_seconds) / (at - previous.at)
    query_ms = []
    for name in METRICS_QUERIES * QUERY_ROUNDS:
        started = time.perf_counter()
        async with session.get(f"{url}/metrics/{name}") as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"/metrics/{name}: {resp.status}")
        query_ms.append((time.perf_counter() - started) * 1000)
    return Sample(at, rate, cpu_pct, cpu, rss_mb(pid), await asyncio.to_thread(redis_mb, redis_url), query_ms, now)


def row(s: Sample, tallies: dict[str, Tally]) -> str:
    t = s.totals
    drops = t.get("incident_copilot_syslog_dropped_lines_total", 0) + t.get("incident_copilot_syslog_kernel_drops", 0)
    return (f"{s.at:5.0f} {s.lines_per_second:>9,.0f} {s.cpu_pct:>5.0f} {s.rss_mb:>7.1f} {s.redis_mb:>8.1f} "
            f"{percentile(s.query_ms, 0.99):>10.1f} {sum(x.errors for x in tallies.values()):>7} {drops:>6.0f} "
            f"{t.get('incident_copilot_incidents_opened_total', 0):>6.0f}/"
            f"{t.get('incident_copilot_incidents_resolved_total', 0):.0f}")


def growth(samples: list[Sample], value) -> str:
    values = [value(s) for s in samples]
    half = samples[(len(samples) - 1) // 2:]
    first, last = value(half[0]), value(half[-1])
    pct, per_minute = 100 * (last - first) / first, 60 * (last - first) / (half[-1].at - half[0].at)
    return (f"first {values[0]:.1f} MB, last {values[-1]:.1f} MB, max {max(values):.1f} MB; second half "
            f"{pct:+.1f} % = {per_minute:+.2f} MB/min ({'flat' if abs(pct) < FLAT_PCT else 'growing'})")


async def soak(minutes: float, rate: float, retention: int | None = None, *, code: Path | None = None,
               workers: int | None = None) -> list[str]:
    """Runs the soak, prints rows and the summary; returns why the run failed, if it did."""
    seconds = minutes * 60
    plan = routes(rate)
    syslog_rate = round(rate * SHARES["syslog"])
    (syslog_port,) = free_ports(1)  # free for UDP as well
    print(f"target {rate:,.0f} lines/s for {minutes:g} min: " + ", ".join(
        f"{name} {r.lines_per_second:,.0f}" for name, r in plan.items()) + f", syslog {syslog_rate:,}", flush=True)
    kept = {"RETENTION_MINUTES": str(retention)} if retention else {}
    if code is not None:
        kept["code"] = code
    if workers is not None:
        kept["args"] = ("--workers", str(workers))
    with redis_server() as redis_url, service(redis_url, SYSLOG_PORT=str(syslog_port),
                                              WEBHOOK_TOKEN=WEBHOOK_TOKEN, **kept) as svc:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4 * MAX_IN_FLIGHT)) as session:
            tallies = {name: Tally() for name in (*plan, "alerts")}
            sender = await asyncio.create_subprocess_exec(
                sys.executable, str(SYSLOG_SENDER), "--send", str(syslog_port), "--rate", str(syslog_rate),
                "--seconds", str(seconds), stdout=asyncio.subprocess.PIPE)
            await sender.stdout.readline()  # "ready"
            start = time.monotonic()
            load = asyncio.gather(*(pace(session, svc.url, r, seconds, tallies[name]) for name, r in plan.items()),
                                  alerts(session, svc.url, seconds, tallies["alerts"]), sender.wait())
            print(" time   lines/s  CPU%  RSS MB Redis MB  query p99  errors  drops opened/resolved", flush=True)
            samples = [Sample(0, 0, 0, cpu_seconds(svc.pid), 0, 0, [], {})]
            for n in range(1, int(seconds // SAMPLE_SECONDS) + 1):
                await asyncio.sleep(start + n * SAMPLE_SECONDS - time.monotonic())
                samples.append(await sample(session, svc.url, svc.pid, redis_url, start, samples[-1]))
                print(row(samples[-1], tallies), flush=True)
            await load
            elapsed = time.monotonic() - start
            samples.pop(0)
            syslog = json.loads(await sender.stdout.read())
            final = await settled(session, svc.url, tallies["alerts"].lines)
        warnings = svc.log.read_text().splitlines()
    return summary(rate, elapsed, samples, final, tallies, syslog, warnings)


async def settled(session: aiohttp.ClientSession, url: str, alerts_sent: int) -> dict[str, float]:
    """The counters once the syslog queue is written and the worker has handled every notification."""
    deadline = time.monotonic() + 60
    while True:
        await asyncio.sleep(2)
        now = await totals(session, url)
        if now.get("incident_copilot_incidents_resolved_total", 0) >= alerts_sent or time.monotonic() > deadline:
            return now


def summary(rate: float, elapsed: float, samples: list[Sample], final: dict[str, float],
            tallies: dict[str, Tally], syslog: dict, warnings: list[str]) -> list[str]:
    accepted = final["incident_copilot_ingest_lines_accepted_total"]
    rejected = final.get("incident_copilot_ingest_lines_rejected_total", 0)
    drops = final.get("incident_copilot_syslog_dropped_lines_total", 0)
    kernel = final.get("incident_copilot_syslog_kernel_drops", 0)
    sent = sum(t.lines for name, t in tallies.items() if name != "alerts") + syslog["sent"]
    achieved = accepted / elapsed
    query_ms = [ms for s in samples for ms in s.query_ms]
    rates = [s.lines_per_second for s in samples]
    fired = tallies["alerts"].lines
    opened = final.get("incident_copilot_incidents_opened_total", 0)
    resolved = final.get("incident_copilot_incidents_resolved_total", 0)
    print(f"\nachieved       {achieved:,.0f} lines/s of {rate:,.0f} target ({100 * achieved / rate:.1f} %) over "
          f"{elapsed:.0f} s; per sample min {min(rates):,.0f}, max {max(rates):,.0f}")
    print(f"lines          sent {sent:,}, accepted {accepted:,.0f}, rejected {rejected:,.0f}, "
          f"unaccounted {sent - accepted - rejected:,.0f}")
    cpu = [s.cpu_pct for s in samples]
    print(f"service CPU    mean {sum(cpu) / len(cpu):.0f} %, max {max(cpu):.0f} % of one core")
    print(f"service RSS    {growth(samples, lambda s: s.rss_mb)}")
    print(f"Redis memory   {growth(samples, lambda s: s.redis_mb)}")
    print(f"/metrics/*     p50 {percentile(query_ms, 0.5):.1f} ms, p99 {percentile(query_ms, 0.99):.1f} ms, "
          f"max {max(query_ms):.1f} ms over {len(query_ms):,} queries during the load")
    for name, t in tallies.items():
        answers = ", ".join(f"{k} {v:,}" for k, v in sorted(t.answers.items())) or "none sent"
        print(f"{name + ' answers':<15}{answers}"
              + (f"; first error: {t.first_error}" if t.first_error else ""))
    print(f"syslog         sent {syslog['sent']:,}, send errors {syslog['send_errors']:,}, queue drops {drops:,.0f}, "
          f"kernel drops {kernel:,.0f}")
    print(f"incidents      opened {opened:.0f}, resolved {resolved:.0f} (alerts fired and resolved {fired})")
    print(f"service log    {len(warnings)} lines at WARNING or above"
          + (f"; first: {warnings[0][:300]}" if warnings else ""))

    failures = []
    if achieved < SUSTAINED * rate:
        failures.append(f"load not sustained: {achieved:,.0f} lines/s is under {SUSTAINED:.0%} of {rate:,.0f}")
    errors = sum(t.errors for t in tallies.values()) + syslog["send_errors"]
    if errors:
        failures.append(f"{errors:,} requests or datagrams failed")
    if rejected or sent - accepted - rejected:
        failures.append(f"{rejected:,.0f} lines rejected, {sent - accepted - rejected:,.0f} lost "
                        f"(syslog drops {drops + kernel:,.0f})")
    if opened != fired or resolved != fired:
        failures.append(f"incidents opened/resolved {opened:.0f}/{resolved:.0f} do not match the alerts")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=20_000, help="lines a second, all routes together")
    parser.add_argument("--retention-minutes", type=int, help="RETENTION_MINUTES of the service (default its own, "
                        "360): minute buckets expire this long plus 2 min after their minute, and Redis memory "
                        "levels off from then on")
    parser.add_argument("--code", type=Path, help="run the service of another checkout (an earlier version, "
                                                  "for a before-and-after)")
    parser.add_argument("--workers", type=int, help="serve --workers (default SERVE_WORKERS: one per core)")
    args = parser.parse_args()
    if args.minutes * 60 < 2 * SAMPLE_SECONDS:
        parser.error(f"--minutes: at least {2 * SAMPLE_SECONDS} s, for two samples")
    failures = asyncio.run(soak(args.minutes, args.rate, args.retention_minutes, code=args.code,
                                workers=args.workers))
    for failure in failures:
        print(f"FAILED: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
