"""What a message says about an incident event, before any service's markup: the same for every chat.

Pure: the integrations lay this out in Block Kit or an Adaptive Card; nothing here is escaped
yet, since each surface escapes differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from agents import Finding

from .event import IncidentEvent, IncidentSnapshot
from .text import one_line, printable

MAX_NUMBERS = 4
MAX_RECOMMENDATIONS = 3

_SEVERITY_ORDER = {"critical": 0, "warning": 1, "ok": 2}
_BADGES = {"critical": "🔴", "page": "🔴", "error": "🟠", "high": "🟠", "warning": "🟡", "resolved": "✅"}
_VERBS = {"opened": "Incident opened", "updated": "Diagnosis changed", "resolved": "Resolved"}


@dataclass(frozen=True)
class Message:
    headline: str  # plain, one line
    badge: str
    summary: str  # one line, for notifications and fallbacks
    culprit: str | None
    diagnosis: str
    facts: list[tuple[str, str]]
    numbers: list[tuple[str, str]]  # (metric, measurement)
    recommendations: list[str]
    recheck: str | None
    footer: str
    links: list[tuple[str, str]]


def message(event: IncidentEvent) -> Message:
    s = event.incident
    state = "resolved" if event.kind == "resolved" else s.severity.lower()
    severity = s.severity.upper()
    headline = f"{'RESOLVED' if event.kind == 'resolved' else severity} · {one_line(s.title, 200)}"
    diagnosis = printable(s.diagnosis).strip() or (f"The analysis failed: {s.analysis_error}" if s.analysis_error
                                                    else "")
    summary = f"[{severity}] {_VERBS[event.kind]}: {one_line(s.title, 200)}"
    if s.culprit:
        summary += f" ({one_line(s.culprit, 100)})"
    footer = " · ".join(p for p in (
        s.incident_id, _VERBS[event.kind].lower(), f"{s.mode} mode" if s.mode else None,
        ", ".join(s.alertnames[:3]) + (f" and {len(s.alertnames) - 3} more" if len(s.alertnames) > 3 else "")
        if s.alertnames else None,
    ) if p)
    return Message(
        headline=headline, badge=_BADGES.get(state, "⚪"), summary=summary, culprit=s.culprit,
        diagnosis=diagnosis, facts=facts(s), numbers=headline_numbers(s.findings),
        recommendations=[one_line(r, 500) for r in s.recommendations[:MAX_RECOMMENDATIONS]],
        recheck=s.recheck if event.kind == "resolved" else None, footer=footer,
        links=[(link.label, link.url) for link in s.links],
    )


def facts(s: IncidentSnapshot) -> list[tuple[str, str]]:
    rows = [("Status", s.status), ("Severity", s.severity + (f" (assessed {s.assessed_severity})"
                                                             if s.assessed_severity else ""))]
    rows.append(("Started", _clock(s.onset_at)))
    rows.append(("Detected in", duration(s.notified_at - s.onset_at)))
    if s.diagnosed_at is not None:
        rows.append(("Diagnosed in", duration(s.diagnosed_at - s.notified_at)))
    if s.ended_at is not None:
        rows.append(("Resolved after", duration(s.ended_at - s.onset_at)))
    return rows


def headline_numbers(findings: list[Finding]) -> list[tuple[str, str]]:
    """The measurements behind the worst findings: metric, then value, threshold and where, as computed."""
    lines: list[tuple[str, str]] = []
    ranked = sorted((f for f in findings if f.severity.value != "ok"),
                    key=lambda f: _SEVERITY_ORDER.get(f.severity.value, 3))
    for finding in ranked:
        for evidence in finding.evidence:
            if evidence.value is None:
                continue
            line = f"{_number(evidence.value)}{_unit(evidence.unit)}"
            if evidence.threshold is not None:
                line += f" (threshold {_number(evidence.threshold)}{_unit(evidence.unit)})"
            if evidence.scope:
                line += f" on {evidence.scope}"
            lines.append((one_line(evidence.metric, 80), one_line(line, 300)))
            if len(lines) >= MAX_NUMBERS:
                return lines
    return lines


def duration(value: timedelta) -> str:
    seconds = max(0, round(value.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


def _unit(unit: str) -> str:
    if not unit:
        return ""
    return unit if unit == "%" else f" {unit}"
