"""`incident-copilot demo`: one incident from first log line to post-mortem, in under a minute.

The service runs in this process with its embedded Redis (under var/demo, wiped at the
start so every run tells the same story). A deploy regression is replayed as HAProxy
lines, the alert reaches `POST /alerts` as Alertmanager would deliver it, the worker
analyses it, and the post-mortem it writes is summarised here.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
from aiohttp import web

from ingestion.simulate import generate_lines, scenario_timeline

from .app import create_app
from .settings import Settings

SCENARIO = "deploy-regression"
MINUTES = 9
RPS = 25.0
BATCH_LINES = 5000


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def alertmanager_payload(status: str, *, backend: str, starts_at: datetime, ends_at: datetime | None,
                         external_url: str, p99_seconds: float) -> dict:
    """What Alertmanager 0.25 posts for the latency alert of the rules in alert_rules/."""
    labels = {"alertname": "BackendLatencyHigh", "backend": backend, "severity": "critical", "signal": "latency"}
    annotations = {
        "summary": f"Backend {backend}: P99 latency above 1s",
        "description": f"P99 latency of backend {backend} is {p99_seconds:.2f}s over the last minute; "
                       "the critical threshold is 1s.",
        "runbook_url": "docs/runbooks/latency.md#backendlatencyhigh",
    }
    fingerprint = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    zero = "0001-01-01T00:00:00Z"
    return {
        "receiver": "incident-copilot", "status": status,
        "alerts": [{
            "status": status, "labels": labels, "annotations": annotations,
            "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
            "endsAt": ends_at.isoformat().replace("+00:00", "Z") if ends_at else zero,
            "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=backend%3Ahaproxy_log_request_duration_seconds"
                            "%3Ap99_1m+%3E+1",
            "fingerprint": fingerprint,
        }],
        "groupLabels": {"alertname": labels["alertname"], "backend": backend},
        "commonLabels": labels, "commonAnnotations": annotations, "externalURL": external_url, "version": "4",
        "groupKey": f'{{}}:{{alertname="BackendLatencyHigh", backend="{backend}"}}', "truncatedAlerts": 0,
    }


async def _replay(session: aiohttp.ClientSession, base: str, start: datetime) -> int:
    lines = list(generate_lines(SCENARIO, start=start, minutes=MINUTES, rps=RPS, seed=42))
    accepted = 0
    for i in range(0, len(lines), BATCH_LINES):
        body = "\n".join(lines[i:i + BATCH_LINES]) + "\n"
        async with session.post(f"{base}/logs", data=body, headers={"Content-Type": "text/plain"}) as resp:
            answer = await resp.json()
            if resp.status != 202:
                raise RuntimeError(f"ingestion refused the replay: {resp.status} {answer}")
            accepted += answer["accepted"]
        print(f"    {min(i + BATCH_LINES, len(lines)):>6,} / {len(lines):,} lines", end="\r", flush=True)
    print()
    return accepted


async def _wait_for(session: aiohttp.ClientSession, url: str, ready, what: str, timeout: float = 40.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        async with session.get(url) as resp:
            body = await resp.json() if resp.status == 200 else None
        if body is not None and ready(body):
            return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def run_demo(data_dir: Path = Path("var/demo")) -> int:
    started = time.monotonic()
    shutil.rmtree(data_dir, ignore_errors=True)
    token = secrets.token_urlsafe(16)
    settings = Settings(
        _env_file=None, data_dir=data_dir / "redis", postmortem_dir=data_dir / "post-mortems",
        syslog_port=0, log_format="text", log_level="WARNING", log_timezone="UTC", webhook_token=token,
    )
    _step(f"starting the service with an embedded Redis under {data_dir}/redis")
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            now = datetime.now(timezone.utc).replace(microsecond=0)
            start = now - timedelta(minutes=MINUTES)
            timeline = scenario_timeline(SCENARIO, start, MINUTES)
            _step(f"replaying '{SCENARIO}': {MINUTES} minutes of HAProxy lines at ~{RPS:.0f} req/s; "
                  f"backend {timeline.backend} degrades at {timeline.onset:%H:%M} UTC")
            accepted = await _replay(session, base, start)
            async with session.get(f"{base}/metrics/backends", params={"window": "5"}) as resp:
                stats = {b["backend"]: b for b in (await resp.json())["backends"]}
            api = stats[timeline.backend]
            print(f"    {accepted:,} lines ingested; {timeline.backend} over the last 5 min: "
                  f"P99 {api['p99_ms']:.0f} ms, 5xx {api['error_rate_5xx_pct']:.1f} %")

            alert_start = timeline.onset + timedelta(minutes=1, seconds=30)
            _step("delivering the alert as Alertmanager would (POST /alerts, bearer token)")
            payload = alertmanager_payload("firing", backend=timeline.backend, starts_at=alert_start, ends_at=None,
                                           external_url=base, p99_seconds=(api["p99_ms"] or 0) / 1000)
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(f"{base}/alerts", json=payload, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"webhook refused: {resp.status} {await resp.text()}")

            _step("analysing: four specialists in parallel, then the synthesis (rules mode without a key)")
            rows = await _wait_for(session, f"{base}/incidents", lambda rows: rows and rows[0].get("diagnosed_at"),
                                   "the analysis")
            incident_id = rows[0]["id"]
            _step("resolving the alert, as Alertmanager does when the rule stops firing")
            resolved = alertmanager_payload("resolved", backend=timeline.backend, starts_at=alert_start,
                                            ends_at=datetime.now(timezone.utc), external_url=base,
                                            p99_seconds=(api["p99_ms"] or 0) / 1000)
            async with session.post(f"{base}/alerts", json=resolved, headers=headers) as resp:
                resp.raise_for_status()
            incident = await _wait_for(
                session, f"{base}/incidents/{incident_id}",
                lambda body: body["status"] == "resolved" and not body.get("recheck_pending"), "the resolution")
            path = settings.postmortem_dir / rows[0]["postmortem_file"]
            _print_summary(incident, path)
    finally:
        await runner.cleanup()
    print(f"\ndone in {time.monotonic() - started:.1f} s. Read it: less {path}")
    return 0


def _print_summary(incident: dict, path: Path) -> None:
    report = incident.get("report") or {}
    durations = incident.get("durations_seconds") or {}
    print()
    print(f"  incident   {incident['id']}  ({incident['status']}, {incident['severity']})")
    print(f"  title      {report.get('title', '-')}")
    print(f"  diagnosis  {report.get('diagnosis', '-')}")
    for number, recommendation in enumerate(report.get("recommendations", [])[:3], 1):
        print(f"  {number}.         {recommendation}")
    print("  times      " + ", ".join(
        f"{name.replace('time_to_', 'to ')} {_duration(value)}" for name, value in durations.items()))
    print(f"  post-mortem {path}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def main() -> int:
    try:
        return asyncio.run(run_demo())
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
