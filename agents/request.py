"""What an analysis is asked: the window to look at and the alerts that prompted it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_MAX_WINDOW_MINUTES = 360
_MAX_ANCHORED_WINDOW_MINUTES = 60


class AlertContext(BaseModel):
    """One Alertmanager alert. Every string in it is untrusted input."""

    alertname: str = Field("", max_length=200)
    status: str = Field("firing", max_length=20)
    severity: str | None = Field(None, max_length=50)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None


class AnalysisRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_minutes: int | None = Field(
        None, ge=1, le=_MAX_WINDOW_MINUTES, description="Minutes before `at` to look at; null = the configured default."
    )
    at: datetime | None = Field(None, description="End of the window (UTC); null = now.")
    backend: str | None = Field(None, min_length=1, max_length=200, description="Narrow the analysis to one backend.")
    alerts: list[AlertContext] = Field(default_factory=list, max_length=50)
    baseline_before: datetime | None = Field(
        None, description="Compare against the signals before this moment (an incident's onset) instead of "
                          "looking for an onset in the window; set by the check after a resolution.")
    exclude_similar: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=10,
        description="Past incidents (ids) never recalled as similar: the incident analysed and the earlier runs of "
                    "its failure.")


class ResolvedScope(BaseModel):
    """The window and scope an analysis actually covers once defaults and alerts are applied."""

    at: datetime
    window_minutes: int
    backend: str | None
    baseline_before: datetime | None = None

    @property
    def start(self) -> datetime:
        return self.at - timedelta(minutes=self.window_minutes)


def resolve_scope(request: AnalysisRequest, *, default_window: int, now: datetime) -> ResolvedScope:
    """Apply defaults, then let firing alerts anchor the window and narrow the backend."""
    at = _as_utc(request.at) if request.at is not None else now
    window = request.window_minutes or default_window
    firing = [a for a in request.alerts if a.status == "firing"]

    starts = [_as_utc(a.starts_at) for a in firing if a.starts_at is not None and _as_utc(a.starts_at) < at]
    if starts and request.window_minutes is None:
        # Cover the minute before the earliest alert started, so the change itself is in view.
        since_start = int((at - min(starts)).total_seconds() // 60) + 2
        window = max(window, min(since_start, _MAX_ANCHORED_WINDOW_MINUTES))

    backend = request.backend
    if backend is None:
        named = {a.labels.get("backend") for a in firing} - {None, ""}
        if len(named) == 1:
            backend = named.pop()
    baseline = _as_utc(request.baseline_before) if request.baseline_before is not None else None
    return ResolvedScope(at=at, window_minutes=window, backend=backend, baseline_before=baseline)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
