"""What is announced about an incident, and when: pure decisions over a snapshot of the incident.

An incident is announced when it is opened (once its first analysis has finished or
failed), again when the diagnosis changes materially (severity, culprit or title), and when
it is resolved (once the check after the resolution is done). Each announcement is an
`IncidentEvent` whose `key` is the same however often the decision is taken again, so
that a redelivered notification or a restarted worker never announces anything twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

import orjson
from agents import Finding
from pydantic import BaseModel, ConfigDict, Field

EventKind = Literal["opened", "updated", "resolved"]
EVENT_KINDS: tuple[EventKind, ...] = ("opened", "updated", "resolved")


class Link(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    url: str


class IncidentSnapshot(BaseModel):
    """The incident as a message shows it; every string in it is untrusted and bounded when rendered."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    status: Literal["open", "resolved"]
    severity: str = Field(description="The worst severity the alerts declared.")
    assessed_severity: str | None = Field(None, description="The analysis' own verdict: ok, warning, critical.")
    title: str
    diagnosis: str = ""
    culprit: str | None = Field(None, description='Where it broke, e.g. "api: latency".')
    recommendations: list[str] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    mode: str | None = Field(None, description="How the report was written: llm or rules.")
    analysis_error: str | None = None
    analysis_pending: bool = False
    recheck_pending: bool = False
    recheck: str | None = Field(None, description="What the check after the resolution saw.")
    alertnames: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict, description="What receivers are routed on.")
    onset_at: datetime
    notified_at: datetime
    diagnosed_at: datetime | None = None
    ended_at: datetime | None = None
    resolve_notified_at: datetime | None = None
    updated_at: datetime
    links: list[Link] = Field(default_factory=list)

    @property
    def diagnosed(self) -> bool:
        return self.diagnosed_at is not None or self.analysis_error is not None

    def material(self) -> str:
        """What a reader would call a different diagnosis: severity, assessment, culprit, title."""
        basis = [self.severity, self.assessed_severity, self.culprit, " ".join(self.title.split()).lower()]
        return hashlib.sha256(orjson.dumps(basis)).hexdigest()[:16]


class Announced(BaseModel):
    """The last event enqueued for an incident: what the next decision compares against."""

    kind: EventKind
    material: str
    sequence: int


class IncidentEvent(BaseModel):
    """One announcement, as stored in the outbox and handed to every notifier."""

    key: str = Field(description="Idempotency key: the same event always has the same key.")
    kind: EventKind
    sequence: int = Field(description="1 for the first event of the incident, then 2, 3…")
    triggered_at: datetime = Field(description="When the alert notification this event answers came in.")
    enqueued_at: datetime
    incident: IncidentSnapshot


def next_event(snapshot: IncidentSnapshot, last: Announced | None) -> EventKind | None:
    """What to announce now, given what was announced last; None while work is pending or nothing changed."""
    if snapshot.analysis_pending:
        return None
    if snapshot.status == "resolved":
        if snapshot.recheck_pending or (last is not None and last.kind == "resolved"):
            return None
        return "resolved"
    if not snapshot.diagnosed:
        return None
    if last is None or last.kind == "resolved":  # first, or re-opened by a flapping alert
        return "opened"
    if last.material == snapshot.material():
        return None
    return "updated"


def event_key(incident_id: str, kind: EventKind, sequence: int) -> str:
    return f"{incident_id}:{sequence}:{kind}"


def triggered_at(snapshot: IncidentSnapshot, kind: EventKind) -> datetime:
    """The webhook-in that led to this event: the first notification, the resolution, or the latest change."""
    if kind == "opened":
        return snapshot.notified_at
    if kind == "resolved":
        return snapshot.resolve_notified_at or snapshot.updated_at
    return snapshot.updated_at
