"""An incident: the alerts about one backend, service or job, from first firing to resolution, and what happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from agents import Evidence, Report, Severity
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .notification import Notification

IncidentStatus = Literal["open", "resolved"]
TimelineKind = Literal[
    "onset", "notified", "repeat", "alert_joined", "alert_changed", "alerts_resolved", "diagnosed", "analysis_failed",
    "resolved", "resolve_notified", "reopened", "recheck", "recheck_failed", "abandoned", "scope",
    "delivery_failed",
]

# Alert severities in the words teams use, worst first; anything else ranks below them.
_SEVERITY_ORDER = ("critical", "page", "error", "high", "warning", "medium", "low", "info", "none")


def severity_rank(value: str | None) -> int:
    """0 for the worst severity; a name not in the list ranks below them, no severity at all lowest."""
    if not value:
        return len(_SEVERITY_ORDER) + 1
    return _SEVERITY_ORDER.index(value.lower()) if value.lower() in _SEVERITY_ORDER else len(_SEVERITY_ORDER)


def worst_alert_severity(values: list[str | None]) -> str | None:
    named = [v for v in values if v]
    if not named:
        return None
    return min(named, key=lambda v: (severity_rank(v), v))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A stored notification as the stream hands it to a worker."""

    entry_id: str
    received_at: datetime
    notification: Notification


class AlertRecord(BaseModel):
    """One alert of the incident as last notified; strings are untrusted and escaped when rendered."""

    fingerprint: str
    alertname: str
    status: Literal["firing", "resolved"]
    severity: str | None = None
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""
    first_notified_at: datetime
    group_key: str = Field("", description="The Alertmanager group that first notified it.")
    group_labels: dict[str, str] = Field(default_factory=dict, description="That group's labels.")
    receiver: str = Field("", description="The Alertmanager receiver of that group.")


class TimelineEntry(BaseModel):
    at: datetime
    kind: TimelineKind
    text: str
    count: int = Field(1, description="Repeats folded into this entry.")
    last_at: datetime | None = Field(None, description="When the last folded repeat happened.")


class Due(BaseModel):
    """Work a stream entry owes the incident; only that entry (or a worker that reclaims it) does it."""

    revision: int
    owner: str = Field(description="Stream entry id of the notification that asked for it.")
    at: datetime = Field(description="End of the analysed window.")
    window_minutes: int


class Recheck(BaseModel):
    """The rules-only look at the signals after the resolution."""

    checked_at: datetime = Field(description="When the check ran.")
    window_minutes: int
    window_end: datetime | None = Field(None, description="End of the minutes looked at (unset in older records).")
    severity: Severity
    normal: bool
    title: str
    abnormal: list[str] = Field(default_factory=list, description="Summaries of the findings that are not ok.")
    mode: str
    compared: list[Evidence] = Field(
        default_factory=list,
        description="The headline figures after the resolution, each with its value before the incident began.")


class Incident(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    group_key: str = Field(description="The Alertmanager group whose notification opened the incident.")
    correlation_key: str = Field("", description="What its alerts concern: `backend=api`, `service=x`, `job=y` "
                                                 "or `*`; empty in records older than correlation.")
    status: IncidentStatus
    title: str
    receiver: str = ""
    external_url: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict)
    common_labels: dict[str, str] = Field(default_factory=dict)
    alerts: list[AlertRecord]
    alerts_not_recorded: int = 0
    onset_at: datetime
    notified_at: datetime
    first_notification: Literal["firing", "resolved"] = "firing"
    diagnosed_at: datetime | None = None
    ended_at: datetime | None = None
    resolve_notified_at: datetime | None = None
    updated_at: datetime
    timeline: list[TimelineEntry]
    report: Report | None = None
    report_revision: int = 0
    analysis_error: str | None = None
    recheck: Recheck | None = None
    revision: int = Field(0, description="Analyses asked for so far; each new alert asks for one more.")
    analysis_due: Due | None = None
    recheck_due: Due | None = None
    applied: list[str] = Field(default_factory=list, description="Stream entries already applied (newest last).")
    seen: dict[str, datetime] = Field(default_factory=dict, description="Dedup key -> when it was last received.")
    postmortem_file: str
    previous_incident: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _alerts_of_older_records(cls, data):
        """Records older than correlation hold one group's alerts: theirs is the incident's group."""
        if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
            return data
        group = {"group_key": data.get("group_key", ""), "group_labels": data.get("group_labels") or {},
                 "receiver": data.get("receiver", "")}
        alerts = [{**alert, **group} if isinstance(alert, dict) and not alert.get("group_key") else alert
                  for alert in data["alerts"]]
        return {**data, "alerts": alerts}

    @property
    def alert_severity(self) -> str | None:
        return worst_alert_severity([a.severity for a in self.alerts])

    @property
    def severity(self) -> str:
        """The severity the alerts declared; the analysis' own verdict is `report.overall_severity`."""
        return self.alert_severity or (self.report.overall_severity.value if self.report else "unknown")

    @property
    def alertnames(self) -> list[str]:
        return sorted({a.alertname for a in self.alerts if a.alertname})

    @property
    def started_at(self) -> datetime:
        """When it began: the first alert's start, or the first bad minute in the logs if that was earlier."""
        logged = self.report.onset.at if self.report is not None and self.report.onset is not None else None
        return min(self.onset_at, logged) if logged is not None else self.onset_at

    @property
    def time_to_detect(self) -> timedelta | None:
        """Start to first notification; unknown when the first word of it was already a resolution."""
        if self.first_notification != "firing":
            return None
        return self.notified_at - self.started_at

    @property
    def time_to_diagnose(self) -> timedelta | None:
        return None if self.diagnosed_at is None else self.diagnosed_at - self.notified_at

    @property
    def time_to_resolve(self) -> timedelta | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    def summary(self) -> IncidentSummary:
        return IncidentSummary(
            id=self.id, status=self.status, severity=self.severity,
            assessed_severity=self.report.overall_severity if self.report else None,
            title=self.title, alertnames=self.alertnames, onset_at=self.onset_at, notified_at=self.notified_at,
            diagnosed_at=self.diagnosed_at, ended_at=self.ended_at, updated_at=self.updated_at,
            postmortem_file=self.postmortem_file,
        )

    def public(self) -> dict:
        """The record as the API shows it: bookkeeping of deliveries left out, durations added."""
        body = self.model_dump(mode="json", exclude={"applied", "seen", "analysis_due", "recheck_due", "revision",
                                                     "report_revision"})
        body["severity"] = self.severity
        body["similar"] = body["report"]["similar"] if self.report is not None else []
        body["analysis_pending"] = self.analysis_due is not None
        body["recheck_pending"] = self.recheck_due is not None
        body["recheck_due_at"] = self.recheck_due.model_dump(mode="json")["at"] if self.recheck_due else None
        body["durations_seconds"] = {
            "time_to_detect": _seconds(self.time_to_detect),
            "time_to_diagnose": _seconds(self.time_to_diagnose),
            "time_to_resolve": _seconds(self.time_to_resolve),
        }
        return body


class IncidentSummary(BaseModel):
    """A row of `GET /incidents` and of the post-mortem index."""

    id: str
    status: IncidentStatus
    severity: str
    assessed_severity: Severity | None = None
    title: str
    alertnames: list[str]
    onset_at: datetime
    notified_at: datetime
    diagnosed_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime
    postmortem_file: str


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()
