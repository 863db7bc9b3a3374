"""Where incidents meet their delivery: the snapshot a notifier sees, and failed deliveries shown on the incident.

The incident and notify rooms know nothing of each other; the composition root joins them
with these: the incident pipeline calls an `Announcer` with each incident it changed, and
the delivery pipeline calls `record_failed_delivery` with each delivery it gave up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from agents import Severity

from .incidents import Incident, IncidentRepository, PostmortemWriter, TimelineEntry
from .notify import IncidentEvent, IncidentSnapshot, Link, Outbox, Target

log = logging.getLogger(__name__)

_SEVERITY_RANK = {Severity.critical: 0, Severity.warning: 1, Severity.ok: 2}


def snapshot(incident: Incident, *, public_url: str = "") -> IncidentSnapshot:
    report = incident.report
    recheck = None
    if incident.recheck is not None:
        r = incident.recheck
        recheck = (f"Signals back to normal over the last {r.window_minutes} min." if r.normal
                   else f"Signals still {r.severity.value} after the resolution: {r.title}")
    return IncidentSnapshot(
        incident_id=incident.id, status=incident.status, severity=incident.severity,
        assessed_severity=report.overall_severity.value if report else None,
        title=report.title if report else incident.title, diagnosis=report.diagnosis if report else "",
        culprit=culprit(incident), recommendations=list(report.recommendations) if report else [],
        findings=list(report.findings) if report else [], mode=report.synthesis.mode if report else None,
        analysis_error=incident.analysis_error, analysis_pending=incident.analysis_due is not None,
        recheck_pending=incident.recheck_due is not None, recheck=recheck, alertnames=incident.alertnames,
        labels=routing_labels(incident), onset_at=incident.started_at, notified_at=incident.notified_at,
        diagnosed_at=incident.diagnosed_at, ended_at=incident.ended_at,
        resolve_notified_at=incident.resolve_notified_at, updated_at=incident.updated_at,
        links=links(incident, public_url),
    )


def culprit(incident: Incident) -> str | None:
    """Where it broke: the backend the analysis (or every alert) names, and the worst signal."""
    report = incident.report
    backends = {a.labels.get("backend") for a in incident.alerts} - {None, ""}
    backend = (report.backend if report else None) or (backends.pop() if len(backends) == 1 else None)
    worst = None
    if report is not None:
        bad = sorted((f for f in report.findings if f.severity is not Severity.ok),
                     key=lambda f: _SEVERITY_RANK[f.severity])
        worst = bad[0].specialist if bad else None
    parts = [p for p in (backend, worst) if p]
    return ": ".join(parts) if parts else None


def routing_labels(incident: Incident) -> dict[str, str]:
    """The labels every alert of the incident shares, with its severity and, if it has one, its alert name."""
    labels = {**incident.group_labels, **incident.common_labels, "severity": incident.severity}
    if len(incident.alertnames) == 1:
        labels["alertname"] = incident.alertnames[0]
    return labels


def links(incident: Incident, public_url: str) -> list[Link]:
    """The service's own pages (only with PUBLIC_URL), then Alertmanager, the runbook and the alert's source."""
    found: list[Link] = []
    if public_url:
        base = public_url.rstrip("/")
        found += [Link(label="Post-mortem", url=f"{base}/incidents/{incident.id}/postmortem"),
                  Link(label="Incident", url=f"{base}/incidents/{incident.id}")]
    if incident.external_url:
        found.append(Link(label="Alertmanager", url=incident.external_url))
    firing_first = sorted(incident.alerts, key=lambda a: (a.status != "firing", a.starts_at))
    runbook = next((a.annotations.get("runbook_url") for a in firing_first if a.annotations.get("runbook_url")), None)
    if runbook:
        found.append(Link(label="Runbook", url=runbook))
    source = next((a.generator_url for a in firing_first if a.generator_url), None)
    if source:
        found.append(Link(label="Alert source", url=source))
    return found


class Announcer:
    """What the incident pipeline calls with each incident it changed: enqueue the event it is owed, if any."""

    def __init__(self, outbox: Outbox, *, public_url: str = "",
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.outbox = outbox
        self.public_url = public_url
        self._now = now

    async def __call__(self, incident: Incident) -> None:
        await self.outbox.offer(snapshot(incident, public_url=self.public_url), now=self._now())


def failed_delivery_recorder(incidents: IncidentRepository, postmortems: PostmortemWriter | None = None,
                             ) -> Callable[[IncidentEvent, Target, str], Awaitable[None]]:
    """A delivery given up is written in its incident's timeline (and so in the post-mortem)."""

    async def record(event: IncidentEvent, target: Target, reason: str) -> None:
        now = datetime.now(timezone.utc)
        text = f"The {event.kind} message to {target.receiver} ({target.integration}) was not delivered: {reason}"
        entry = TimelineEntry(at=now, kind="delivery_failed", text=text[:1000])
        incident = await incidents.change(
            event.incident.incident_id,
            lambda c: c.model_copy(update={"timeline": [*c.timeline, entry], "updated_at": now}))
        if postmortems is not None:
            await postmortems.write(incident)

    return record
