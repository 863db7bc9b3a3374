"""A deploy regression as the pages see it: its HAProxy lines ingested, its incident stored (no tests here)."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

from aiohttp.test_utils import TestClient

from ingestion import generate_lines, scenario_timeline
from receiver.demo import alertmanager_payload
from receiver.incidents import Incident, IncidentRepository, lifecycle
from tests.support.incidents import delivery, make_report, ok_report

MINUTES = 40
RECOVERY = 12
HOSTILE = '<script>alert("annotation")</script> & <b>bold</b>'


async def ingest(client: TestClient, now: datetime) -> tuple[datetime, datetime]:
    """MINUTES minutes of HAProxy lines up to now: the regression, then RECOVERY healthy minutes; its onset and end."""
    start = (now - timedelta(minutes=MINUTES)).replace(second=0, microsecond=0)
    bad = MINUTES - RECOVERY
    timeline = scenario_timeline("deploy-regression", start, bad)
    end = start + timedelta(minutes=bad)
    lines = [*generate_lines("deploy-regression", start=start, minutes=bad, rps=4, seed=7),
             *generate_lines("baseline", start=end, minutes=RECOVERY, rps=4, seed=8)]
    for first in range(0, len(lines), 2000):
        batch = "\n".join(lines[first:first + 2000]).encode()
        response = await client.post("/logs", data=batch, headers={"Content-Type": "text/plain"})
        assert response.status == 202, await response.text()
    return timeline.onset, end


def incident(onset: datetime, *, resolved_at: datetime | None, summary: str | None = None,
             backend: str = "api", entry: str = "1") -> Incident:
    """Fired 90 s after the onset, diagnosed 5 s later, resolved at `resolved_at` if given."""
    fired = onset + timedelta(seconds=90)
    body = alertmanager_payload("firing", backend=backend, starts_at=fired, ends_at=None,
                                external_url="http://alertmanager.example:9093", p99_seconds=2.1)
    if summary is not None:
        body["alerts"][0]["annotations"]["summary"] = summary
    received = fired + timedelta(seconds=20)
    d = delivery(body, f"{entry}-0", received)
    current = lifecycle.apply(None, d, lifecycle.decide(None, d), now=received)
    report = make_report(title=f"P99 2.1 s on backend {backend}: slow server responses", at=received,
                         window=max(3, round((received - onset) / timedelta(minutes=1))), backend=backend,
                         diagnosis=f"Backend {backend} answers slowly since the deploy.", onset=True)
    current = lifecycle.attach_report(current, lifecycle.owed_analysis(current, f"{entry}-0"), report,
                                      now=received + timedelta(seconds=5))
    if resolved_at is None:
        return current
    done = copy.deepcopy(body)
    done["status"] = done["alerts"][0]["status"] = "resolved"
    done["alerts"][0]["endsAt"] = resolved_at.isoformat().replace("+00:00", "Z")
    d = delivery(done, f"{entry}-1", resolved_at + timedelta(seconds=10))
    current = lifecycle.apply(current, d, lifecycle.decide(current, d), now=resolved_at + timedelta(seconds=10))
    due = current.recheck_due
    return lifecycle.attach_recheck(current, due, ok_report(due.at), now=due.at + timedelta(seconds=3))


async def store(repository: IncidentRepository, record: Incident) -> Incident:
    await repository.change_latest(record.correlation_key or record.group_key, lambda _: record)
    return record


async def deploy_regression(client: TestClient, repository: IncidentRepository, *,
                            summary: str | None = None) -> Incident:
    """The scenario's lines ingested and its incident stored, resolved when its lines recover."""
    now = datetime.now(timezone.utc)
    onset, end = await ingest(client, now)
    return await store(repository, incident(onset, resolved_at=end + timedelta(seconds=45),
                                            summary=summary))
