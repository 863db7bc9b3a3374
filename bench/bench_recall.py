"""Recall latency with a large archive, and what the archive weighs per incident.

Fills a scratch archive with `--incidents` post-mortems (generated ones, rendered like the
service's with varied backends, servers, routes, status codes and termination states and
their fingerprints; one in ten hand-written and short), then recalls `--queries` new incidents
and prints the latency (p50, p99) and the archive's bytes per incident.

    .venv/bin/python bench/bench_recall.py [--incidents 10000] [--queries 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import Fingerprint, RecallProbe, fingerprint_comment, query_terms, read_postmortem  # noqa: E402
from receiver.memory import Archive, Stamp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tests" / "receiver" / "incidents" / "golden" / "postmortem-resolved.md"
BACKENDS = [f"{name}{n or ''}" for name in ("api", "web", "payments", "checkout", "search", "auth", "catalog",
                                              "images", "billing", "ledger", "orders", "cart") for n in range(5)]
STATES = [("sH", "server_timeout", "504"), ("SC", "connection_refused", "503"), ("sQ", "queue_timeout", "503"),
          ("SH", "server_abort", "502"), ("CD", "client_abort", "400"), ("--", "slow_server", "500")]
SIGNALS = ("latency", "errors", "saturation", "traffic")
ROUTES = ("GET /api/products", "POST /api/checkout", "GET /search", "POST /api/login", "GET /api/orders/{id}",
          "PUT /api/cart", "GET /", "GET /category/{name}")
FIXES = ("Rolled back {b} to the previous release.", "Drained {s} and restarted it.",
         "Raised maxconn of {b} and added two servers.", "Restored the DNS record of {b}.",
         "Killed the long-running migration on {b}'s database.")


def fingerprint(rng: random.Random) -> Fingerprint:
    backend = rng.choice(BACKENDS)
    state, cause, code = rng.choice(STATES)
    return Fingerprint(
        backend=backend,
        signals={s: rng.choice(("warning", "critical")) for s in rng.sample(SIGNALS, rng.randint(1, 2))},
        causes=[cause], status_codes=[code], termination_states=[state] if state != "--" else [],
        routes=rng.sample(ROUTES, rng.randint(0, 2)), servers=[f"{backend}-{rng.randint(1, 4)}"],
        hour=rng.randint(0, 23))


def generated(index: int, fp: Fingerprint, template: str, rng: random.Random) -> tuple[str, str]:
    date = f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}"
    hex_id = f"{index:08x}"
    state = fp.termination_states[0] if fp.termination_states else "--"
    text = (template.replace("inc-20260314-946f8da9", f"inc-{date.replace('-', '')}-{hex_id}")
            .replace("api", fp.backend).replace("sH", state).replace("504", fp.status_codes[0]))
    fix = rng.choice(FIXES).format(b=fp.backend, s=fp.servers[0])
    text = text.replace("- **How it was mitigated:** _to be filled in by the team._",
                        f"- **How it was mitigated:** {fix}" if rng.random() < 0.6 else
                        "- **How it was mitigated:** _to be filled in by the team._")
    text = text.replace("<!-- incident-copilot draft", f"{fingerprint_comment(fp)}\n\n<!-- incident-copilot draft")
    return f"{date}-{fp.backend}-{hex_id}.md", text


def hand_written(index: int, fp: Fingerprint, rng: random.Random) -> tuple[str, str]:
    state = fp.termination_states[0] if fp.termination_states else "no particular state"
    fix = rng.choice(FIXES).format(b=fp.backend, s=fp.servers[0])
    text = (f"# {fp.backend} outage #{index}\n\nDate: 2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}\n\n"
            f"## What happened\n{fp.backend} answered {fp.status_codes[0]} ({state}); {fp.servers[0]} was the "
            f"worst. Routes: {', '.join(fp.routes) or 'all'}.\n\n## Root cause\nA change to {fp.backend}.\n\n"
            f"## Mitigation\n{fix}\n")
    return f"notes-{index}.md", text


def main(incidents: int, queries: int, seed: int) -> None:
    rng = random.Random(seed)
    template = TEMPLATE.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="bench-recall-") as scratch:
        archive = Archive(Path(scratch) / "memory.sqlite3")
        started = time.perf_counter()
        for index in range(incidents):
            fp = fingerprint(rng)
            name, text = hand_written(index, fp, rng) if index % 10 == 9 else generated(index, fp, template, rng)
            archive.put(name, read_postmortem(name, text), Stamp(index, len(text)))
        indexing = time.perf_counter() - started
        archive.checkpoint()
        size = archive.size_bytes()

        probes = []
        for _ in range(queries):
            fp = fingerprint(rng)
            probes.append(RecallProbe(fingerprint=fp, terms=query_terms(
                fp, [f"{fp.backend} returns 20 % 5xx", f"{fp.causes[0].replace('_', ' ')} on {fp.backend}"])))
        archive.recall_now(probes[0])  # the first query warms SQLite's page cache
        latencies, found = [], 0
        for probe in probes:
            started = time.perf_counter()
            result = archive.recall_now(probe)
            latencies.append((time.perf_counter() - started) * 1000)
            found += bool(result)
        archive.close()

    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    print(f"archived incidents:         {incidents:,} ({incidents // 10:,} hand-written)")
    print(f"indexing:                   {indexing:.1f} s ({incidents / indexing:,.0f} post-mortems/s)")
    print(f"archive on disk:            {size / 1024 / 1024:.1f} MiB, {size / incidents / 1024:.1f} KiB per incident "
          f"(post-mortems of about {len(template) / 1024:.0f} KiB)")
    print(f"recall latency:             p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms "
          f"({queries} queries, {found} with a similar incident)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    main(args.incidents, args.queries, args.seed)
