"""Builders and a client shared by the webhook, incident and post-mortem tests (this module holds no tests)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agents import AnalysisRequest, Evidence, Finding, OnsetSummary, Provenance, Report, Severity, TokenUsage
from receiver.incidents import AlertStream, Delivery
from receiver.incidents.notification import Notification

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
T0 = datetime(2026, 3, 14, 9, 42, 0, tzinfo=timezone.utc)
# How long to wait for what only has to happen eventually: a bound that ends a broken test, never one a
# busy machine can reach.
PATIENCE = 60.0


def payload(name: str) -> dict:
    """A stored Alertmanager body, as a dict to send or to vary."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def group_payload(index: int, *, status: str = "firing", backend: str | None = None) -> dict:
    """A distinct one-alert group (for storms), shaped like the real firing payload; each of its own service."""
    body = copy.deepcopy(payload("firing"))
    name = f"Storm{index}"
    body["groupKey"] = f'{{}}:{{alertname="{name}"}}'
    body["status"] = status
    alert = body["alerts"][0]
    alert["labels"] = {**alert["labels"], "alertname": name, "service": f"storm{index}",
                       **({"backend": backend} if backend else {})}
    alert["fingerprint"] = f"{index:016x}"
    alert["status"] = status
    if status == "resolved":
        alert["endsAt"] = "2026-11-25T16:36:25.1Z"
    body["groupLabels"] = {"alertname": name}
    body["commonLabels"] = dict(alert["labels"])
    return body


def delivery(name_or_body: str | dict, entry_id: str, received_at: datetime) -> Delivery:
    body = payload(name_or_body) if isinstance(name_or_body, str) else name_or_body
    return Delivery(entry_id=entry_id, received_at=received_at, notification=Notification.model_validate(body))


def make_report(*, title: str = "5xx errors on backend api", severity: Severity = Severity.critical,
                at: datetime = T0, window: int = 10, mode: str = "rules", backend: str | None = "api",
                diagnosis: str = "Backend api answers 5xx to a quarter of its requests since 09:41.",
                onset: bool = False, baselines: bool | None = None) -> Report:
    rules = Provenance(mode="rules", duration_ms=12.0)
    llm = Provenance(mode="llm", model="claude-sonnet-4-6", tokens=TokenUsage(input_tokens=1800, output_tokens=240),
                     duration_ms=4200.0, tool_rounds=2)
    provenance = llm if mode == "llm" else rules
    scope = f"backend={backend}" if backend else None
    start = at - timedelta(minutes=window)
    found = OnsetSummary(at=start, signal="errors", scope=scope or "all", rule="5xx rate above 5 % from this minute on",
                         changes=[f"5xx on {backend or 'all backends'} at {start:%H:%M}"]) if onset else None
    before = (lambda value: value) if (onset if baselines is None else baselines) else (lambda value: None)
    return Report(
        timestamp=at, overall_severity=severity, title=title, diagnosis=diagnosis,
        recommendations=["Check the last deploy of backend api and roll it back if it matches the onset.",
                         "Look at the api servers' own logs for the failing requests."],
        findings=[
            Finding(specialist="errors", severity=severity, summary="5xx rate 23 % on backend api.",
                    details="Most failures are 503 answered by HAProxy (termination state SC).",
                    evidence=[
                        Evidence(metric="error_rate_5xx_pct", value=23.4, threshold=5.0, unit="%",
                                 window_minutes=window, scope=scope, baseline=before(0.3)),
                        Evidence(metric="error_rate_4xx_pct", value=1.2, threshold=20.0, unit="%",
                                 window_minutes=window, scope=scope, baseline=before(1.1)),
                    ], provenance=provenance),
            Finding(specialist="traffic", severity=Severity.ok, summary="Traffic steady at 1200/min.",
                    details="No spike or drop against the 30 min baseline.",
                    evidence=[
                        Evidence(metric="requests_per_minute", value=1200.0, unit="req/min", window_minutes=3,
                                 scope=scope),
                        Evidence(metric="baseline_requests_per_minute", value=1150.0, unit="req/min",
                                 window_minutes=30, scope=scope),
                    ], provenance=rules),
            Finding(specialist="latency", severity=Severity.ok, summary="Latency within thresholds.",
                    details="P95 180 ms, P99 420 ms.",
                    evidence=[
                        Evidence(metric="latency_p95_ms", value=180.0, threshold=500.0, unit="ms",
                                 window_minutes=window, scope=scope),
                        Evidence(metric="latency_p99_ms", value=420.0, threshold=1000.0, unit="ms",
                                 window_minutes=window, scope=scope, baseline=before(390.0)),
                    ], provenance=rules),
        ],
        window_minutes=window, window_start=start, window_end=at, backend=backend, onset=found,
        baseline_start=start - timedelta(minutes=15) if onset else None, baseline_end=start if onset else None,
        synthesis=provenance, tokens=provenance.tokens, duration_ms=provenance.duration_ms + 30,
    )


def ok_report(at: datetime = T0, *, baselines: bool = False) -> Report:
    return make_report(title="All golden signals within thresholds", severity=Severity.ok, at=at, window=5,
                       diagnosis="Nothing abnormal.", onset=False, baselines=baselines)


class FakeAnalysis:
    """An injected analysis: records what it was asked, how many ran at once, and can be held open."""

    def __init__(self, report: Report | None = None, *, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.report = report or make_report()
        self.delay = delay
        self.fail = fail
        self.requests: list[AnalysisRequest] = []
        self.running = 0
        self.most_at_once = 0
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None

    def hold(self) -> None:
        """Block every call until `release()`."""
        self.gate = asyncio.Event()

    def release(self) -> None:
        assert self.gate is not None
        self.gate.set()

    async def __call__(self, request: AnalysisRequest) -> Report:
        self.requests.append(request)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            return self.report
        finally:
            self.running -= 1


async def eventually(check, *, timeout: float = PATIENCE, interval: float = 0.02):
    """Poll an async `check` until it returns something truthy; fail with its last answer otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await check()
        if answer:
            return answer
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last answer: {answer!r}")
        await asyncio.sleep(interval)


class Service:
    """The service as Alertmanager and its users see it, over HTTP, and the alert stream behind it.

    `client` is pytest-aiohttp's test client or a `ClientSession` with the service's `base_url`.
    """

    def __init__(self, client, stream: AlertStream, directory: Path, *, analyse: FakeAnalysis | None = None,
                 recheck: FakeAnalysis | None = None) -> None:
        self.client = client
        self.stream = stream
        self.directory = directory
        self.analyse = analyse
        self.recheck = recheck

    async def post(self, body) -> None:
        response = await self.client.post("/alerts", json=body)
        assert response.status == 200, await response.text()

    async def incidents(self, **query) -> list[dict]:
        response = await self.client.get("/incidents", params=query)
        assert response.status == 200
        return await response.json()

    async def incident(self, ident: str) -> dict:
        response = await self.client.get(f"/incidents/{ident}")
        assert response.status == 200
        return await response.json()

    async def settled(self) -> None:
        """Wait until every stored notification was taken and acknowledged."""
        async def check():
            depth = await self.stream.depth()
            return depth.waiting == 0 and depth.pending == 0

        await eventually(check)

    async def diagnosed(self, count: int = 1):
        """Wait for `count` analysed incidents whose notifications are fully processed (post-mortems written)."""
        async def check():
            rows = await self.incidents(limit=500)
            return rows if len(rows) == count and all(r["diagnosed_at"] for r in rows) else None
        await eventually(check)
        await self.settled()
        # Read again now that nothing changes: a list read while incidents were still being added
        # can show one twice, paged by rank as it is.
        rows = await self.incidents(limit=500)
        assert len(rows) == count and all(r["diagnosed_at"] for r in rows), rows
        return rows


# Alerts as the rules in alert_rules/ write them, grouped however a routing tree groups them.

SIGNALS = {"BackendLatencyHigh": ("latency", "P99 latency above 1s"),
           "Backend5xxRateHigh": ("errors", "5xx rate above 10%")}


def rule_alert(alertname: str, backend: str | None, *, status: str = "firing", starts_at: datetime = T0,
               ends_at: datetime | None = None, severity: str = "critical", **labels: str) -> dict:
    """One alert of `alert_rules/` (or, without a backend, anyone's) as Alertmanager's webhook shows it."""
    signal, summary = SIGNALS.get(alertname, ("other", alertname))
    own = {"alertname": alertname, "severity": severity, "signal": signal,
           **({"backend": backend} if backend else {}), **labels}
    identity = ",".join(f"{k}={v}" for k, v in sorted(own.items()) if k != "severity")
    return {
        "status": status, "labels": own,
        "annotations": {"summary": f"Backend {backend}: {summary}" if backend else summary},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
        "endsAt": ends_at.isoformat().replace("+00:00", "Z") if ends_at else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": hashlib.sha256(identity.encode()).hexdigest()[:16],
    }


def grouped(alerts: list[dict], *, by: tuple[str, ...] = ("alertname", "backend"),
            receiver: str = "incident-copilot") -> dict:
    """A notification of the group the alerts make under `group_by: by` (they share those labels)."""
    labels = {name: alerts[0]["labels"][name] for name in by if name in alerts[0]["labels"]}
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    shared = {k: v for k, v in alerts[0]["annotations"].items()
              if all(a["annotations"].get(k) == v for a in alerts)}
    key = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {
        "version": "4", "groupKey": f"{{}}:{{{key}}}", "receiver": receiver,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts, "groupLabels": labels, "commonLabels": common, "commonAnnotations": shared,
        "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
    }
