"""`incident-copilot demo`: one incident from first log line to post-mortem, in under a minute.

The service runs in this process with its embedded Redis (under var/demo, wiped at the
start so every run tells the same story). A deploy regression is replayed as HAProxy
lines. Where Prometheus and Alertmanager are installed, the lines are sent as they happen
and the alert takes the real path: Prometheus scrapes the service and fires, Alertmanager
calls `POST /alerts` (demo_alerting). Elsewhere the scenario's last minutes are replayed
at once and the same payload is posted directly. The worker analyses the incident, and
the post-mortem it writes is summarised here.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Coroutine
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from agents import Thresholds
from aiohttp import web
from ingestion import LiveTraffic, generate_lines, scenario_timeline

from ..app import create_app
from ..rules import alerting_rule
from ..settings import Settings
from . import alerting as demo_alerting
from .deliveries import report_deliveries

SCENARIO = "deploy-regression"
MINUTES = 9
HISTORY_MINUTES = 16  # more than the 15 minutes an onset is compared with
RPS = 25.0
BATCH_LINES = 5000
RECHECK_DELAY_SECONDS = 5.0


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def alertmanager_payload(status: str, *, backend: str, starts_at: datetime, ends_at: datetime | None,
                         external_url: str, p99_seconds: float, thresholds: Thresholds = Thresholds(),
                         prometheus_url: str = "http://127.0.0.1:9090") -> dict:
    """What Alertmanager 0.25 posts when the critical latency rule of the rendered rules fires:
    its labels, its annotations as Prometheus expands them, and its expression."""
    rule = alerting_rule(thresholds, "BackendLatencyHigh", "critical")
    labels = {"alertname": rule["alert"], "backend": backend, **rule["labels"]}
    annotations = {name: _expand(text, labels, p99_seconds) for name, text in rule["annotations"].items()}
    fingerprint = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    zero = "0001-01-01T00:00:00Z"
    return {
        "receiver": "incident-copilot", "status": status,
        "alerts": [{
            "status": status, "labels": labels, "annotations": annotations,
            "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
            "endsAt": ends_at.isoformat().replace("+00:00", "Z") if ends_at else zero,
            "generatorURL": f"{prometheus_url}/graph?g0.expr={quote_plus(rule['expr'])}&g0.tab=1",
            "fingerprint": fingerprint,
        }],
        "groupLabels": {"alertname": labels["alertname"], "backend": backend},
        "commonLabels": labels, "commonAnnotations": annotations, "externalURL": external_url, "version": "4",
        "groupKey": f'{{}}:{{alertname="BackendLatencyHigh", backend="{backend}"}}', "truncatedAlerts": 0,
    }


def _expand(template: str, labels: dict[str, str], seconds: float) -> str:
    """The few template functions the rule's annotations use, as Prometheus fills them in
    (without the external label `runbook_base_url`, as the demo's Prometheus runs)."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    text = text.replace("{{ $value | humanizeDuration }}", f"{seconds:.3g}s")
    return text.replace("{{ $externalLabels.runbook_base_url }}", "")


async def _post_lines(session: aiohttp.ClientSession, base: str, lines: list[str]) -> int:
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


# Copied into the demo's post-mortem folder: the last time, as a team writes it, for memory to recall.
PAST_POSTMORTEM = "2026-10-14-api-orders-release.md"


async def run_demo(data_dir: Path = Path("var/demo"), *, alerting: bool | None = None) -> int:
    """Run the demo; `alerting` None uses real Prometheus and Alertmanager when they are installed."""
    started = time.monotonic()
    shutil.rmtree(data_dir, ignore_errors=True)
    why_not = demo_alerting.unavailable() if alerting is not False else "not asked for"
    if alerting and why_not:
        raise RuntimeError(f"cannot run Prometheus and Alertmanager: {why_not}")
    token = secrets.token_urlsafe(16)
    settings = Settings(
        _env_file=None, data_dir=data_dir / "redis", postmortem_dir=data_dir / "post-mortems",
        syslog_port=0, log_format="text", log_level="WARNING", log_timezone="UTC", webhook_token=token,
        # The check after the resolution looks at the minutes after it; the demo's are seconds.
        recheck_delay_seconds=RECHECK_DELAY_SECONDS,
    )
    past = settings.postmortem_dir / PAST_POSTMORTEM
    past.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("past-postmortem.md"), past)
    _step(f"a post-mortem the team wrote by hand last time is in {past.parent}/: the service archives it")
    _step(f"starting the service with an embedded Redis under {data_dir}/redis")
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            if why_not is None:
                incidents = await _live(session, base, port=port, settings=settings, token=token, data_dir=data_dir)
            else:
                _step(f"Prometheus and Alertmanager: {why_not}; the alert is posted as Alertmanager would post it")
                incidents = await _replayed(session, base, token, settings.thresholds)
        if settings.notify_config is not None:
            await report_deliveries(runner.app, [incident["id"] for incident in incidents], _step)
    finally:
        await runner.cleanup()
    paths = [settings.postmortem_dir / incident["postmortem_file"] for incident in incidents]
    for incident, path in zip(incidents, paths):
        _print_summary(incident, path)
    print(f"\ndone in {time.monotonic() - started:.1f} s. Read it: less {paths[0]}")
    return 0


async def _live(session: aiohttp.ClientSession, base: str, *, port: int, settings: Settings, token: str,
                data_dir: Path) -> list[dict]:
    """History first, then the incident as it happens, through real Prometheus and Alertmanager."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    caught_up = now - timedelta(seconds=demo_alerting.LAG_SECONDS)  # where the lagging live feed begins
    _step(f"replaying {HISTORY_MINUTES} minutes of healthy HAProxy lines at ~{RPS:.0f} req/s, up to "
          f"{caught_up:%H:%M:%S} UTC: the log shipper runs {demo_alerting.LAG_SECONDS:.0f} s behind")
    lines = list(generate_lines("baseline", start=caught_up - timedelta(minutes=HISTORY_MINUTES),
                                minutes=HISTORY_MINUTES, rps=RPS, seed=42))
    print(f"    {await _post_lines(session, base, lines):,} lines ingested")
    backend = scenario_timeline(SCENARIO, now, MINUTES).backend or "api"
    traffic = LiveTraffic(SCENARIO, rps=RPS, seed=43)
    return await demo_alerting.deliver_through_alerting(
        session, base, port=port, settings=settings, token=token, data_dir=data_dir, traffic=traffic,
        backend=backend, step=_step)


async def _replayed(session: aiohttp.ClientSession, base: str, token: str, thresholds: Thresholds) -> list[dict]:
    """The scenario's last minutes replayed at once, the alert posted as Alertmanager would post it."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # The incident fills whole minutes up to the current one, which the rollback below fills with
    # healthy requests: the check after the resolution reads that minute.
    start = now.replace(second=0) - timedelta(minutes=MINUTES)
    timeline = scenario_timeline(SCENARIO, start, MINUTES)
    _step(f"replaying '{SCENARIO}': {MINUTES} minutes of HAProxy lines at ~{RPS:.0f} req/s; "
          f"backend {timeline.backend} degrades at {timeline.onset:%H:%M} UTC")
    lines = list(generate_lines(SCENARIO, start=start, minutes=MINUTES, rps=RPS, seed=42))
    accepted = await _post_lines(session, base, lines)
    async with session.get(f"{base}/metrics/backends", params={"window": "5"}) as resp:
        stats = {b["backend"]: b for b in (await resp.json())["backends"]}
    api = stats[timeline.backend]
    print(f"    {accepted:,} lines ingested; {timeline.backend} over the last 5 min: "
          f"P99 {api['p99_ms']:.0f} ms, 5xx {api['error_rate_5xx_pct']:.1f} %")

    alert_start = timeline.onset + timedelta(minutes=1, seconds=30)
    _step("delivering the alert as Alertmanager would (POST /alerts, bearer token)")
    payload = alertmanager_payload("firing", backend=timeline.backend, starts_at=alert_start, ends_at=None,
                                   external_url=base, p99_seconds=(api["p99_ms"] or 0) / 1000,
                                   thresholds=thresholds)
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/alerts", json=payload, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"webhook refused: {resp.status} {await resp.text()}")

    _step("analysing: four specialists in parallel, then the synthesis (rules mode without a key)")
    rows = await _wait_for(session, f"{base}/incidents", lambda rows: rows and rows[0].get("diagnosed_at"),
                           "the analysis")
    incident_id = rows[0]["id"]
    _step("rolling back: api is healthy again; resolving the alert, as Alertmanager does when the rule stops")
    healed = LiveTraffic(SCENARIO, rps=RPS, seed=44).lines(now.replace(second=0).timestamp(), time.time(),
                                                            incident=False)
    await _post_lines(session, base, healed)
    resolved = alertmanager_payload("resolved", backend=timeline.backend, starts_at=alert_start,
                                    ends_at=datetime.now(timezone.utc), external_url=base,
                                    p99_seconds=(api["p99_ms"] or 0) / 1000, thresholds=thresholds)
    async with session.post(f"{base}/alerts", json=resolved, headers=headers) as resp:
        resp.raise_for_status()
    incident = await _wait_for(
        session, f"{base}/incidents/{incident_id}",
        lambda body: body["status"] == "resolved" and not body.get("recheck_pending"), "the resolution")
    return [incident]


def _print_summary(incident: dict, path: Path) -> None:
    report = incident.get("report") or {}
    durations = incident.get("durations_seconds") or {}
    print()
    names = incident.get("alertnames") or sorted({a["alertname"] for a in incident.get("alerts", [])})
    print(f"  incident   {incident['id']}  ({incident['status']}, {incident['severity']}): {', '.join(names)}")
    print(f"  title      {report.get('title', '-')}")
    print(f"  diagnosis  {report.get('diagnosis', '-')}")
    for number, recommendation in enumerate(report.get("recommendations", [])[:3], 1):
        print(f"  {number}.         {recommendation}")
    for past in incident.get("similar", [])[:1]:
        print(f"  similar    {past.get('date') or '-'} {past.get('file') or past.get('incident_id')} "
              f"(score {past['score']:.2f}: {', '.join(past['why'][:3])})")
        if past.get("mitigation"):
            print(f"             mitigated then: “{past['mitigation']}”")
    print("  times      " + ", ".join(
        f"{name.replace('time_to_', 'to ')} {_duration(value)}" for name, value in durations.items()))
    print(f"  post-mortem {path}, charts in {path.with_suffix('')}/: "
          + ", ".join(sorted(p.name for p in path.with_suffix("").glob("*.svg"))))
    print(f"  page       http://127.0.0.1:8080/ui/incidents/{incident['id']} (DATA_DIR={path.parents[1] / 'redis'} "
          "incident-copilot serve)")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def main() -> int:
    try:
        return asyncio.run(_until_stopped(run_demo()))
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("demo stopped", file=sys.stderr)
        return 130


async def _until_stopped(demo: Coroutine[Any, Any, int]) -> int:
    """Run `demo`; SIGTERM cancels it like Ctrl-C does, so the programs it started are stopped too."""
    task = asyncio.ensure_future(demo)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task
