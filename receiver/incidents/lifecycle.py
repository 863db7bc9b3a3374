"""What a notification does to the incident its alerts concern: pure decisions with a named reason, and their effect.

The notification here is one part of what Alertmanager sent: the alerts of one correlation key
(`correlation.split`). `decide` says what should happen (open, re-open, repeat, join, update,
resolve or ignore, and why); `apply` returns the incident as it is afterwards. Neither reads a
clock: the time the notification was received and `now` are passed in, so the same inputs
always give the same record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from agents import AlertContext, AnalysisRequest, Evidence, Report, Severity

from .correlation import UNSCOPED, correlation_key, key_label
from .model import AlertRecord, Delivery, Due, Incident, Recheck, TimelineEntry, severity_rank
from .naming import incident_id, postmortem_file_name
from .notification import Alert, Notification, dedup_key


class Action(str, Enum):
    OPEN = "open"
    REPEAT = "repeat"
    JOIN = "join"
    UPDATE = "update"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    IGNORE = "ignore"


class Reason(str, Enum):
    FIRST_FIRING = "first_firing"
    REFIRED = "refired_after_resolution"
    FLAPPED = "refired_within_reopen_window"
    RESOLVED_UNSEEN = "resolved_without_open_incident"
    SAME_FIRING_SET = "same_firing_set"
    SOME_RESOLVED = "some_alerts_resolved"
    NEW_ALERT = "new_alert_joined"
    SEVERITY_RAISED = "alert_severity_raised"
    LABELS_CHANGED = "alert_labels_changed"
    ALERT_CAP = "alert_cap_reached"
    ALL_RESOLVED = "all_alerts_resolved"
    OTHERS_FIRING = "group_resolved_others_firing"
    ALREADY_APPLIED = "already_applied"
    DUPLICATE = "duplicate_delivery"
    ALREADY_RESOLVED = "already_resolved"
    STALE_FIRING = "firing_already_resolved"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: Reason
    new_fingerprints: tuple[str, ...] = ()
    changed_fingerprints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A recorded alert notified again under its fingerprint with other labels (its severity is one)."""

    alert: Alert
    before: dict[str, str]

    @property
    def severity_before(self) -> str | None:
        return self.before.get("severity")

    @property
    def severity_after(self) -> str | None:
        return self.alert.labels.get("severity")

    @property
    def raised(self) -> bool:
        """A firing alert now declares a worse severity than it did."""
        worse = severity_rank(self.severity_after) < severity_rank(self.severity_before)
        return self.alert.status == "firing" and worse


def alert_changes(recorded: list[AlertRecord], incoming: list[Alert]) -> tuple[AlertChange, ...]:
    """The alerts of a notification whose labels differ from their record under the same fingerprint.

    Annotations are left out: they carry the measured value and differ at every evaluation
    without the alert being any different.
    """
    before = {a.fingerprint: a.labels for a in recorded}
    return tuple(AlertChange(alert, before[alert.fingerprint]) for alert in incoming
                 if alert.fingerprint in before and before[alert.fingerprint] != alert.labels)


@dataclass(frozen=True, slots=True)
class Policy:
    """How notifications are weighed; the defaults suit Alertmanager's own defaults."""

    # HA peers send within seconds of each other and retries within group_interval (5 min);
    # a repeat (repeat_interval, 4 h by default) comes later and is recorded as one.
    dedup_window: timedelta = timedelta(minutes=5)
    # The analysed window ends at the notification, or this long after the onset if that is earlier,
    # so a notification read late from the queue still looks at the onset.
    latest_after_onset: timedelta = timedelta(minutes=30)
    # The analysed window runs from a minute before the onset: a window of fixed length would
    # be mostly the healthy time before a fresh incident, and dilute it below its thresholds.
    min_window_minutes: int = 3
    max_window_minutes: int = 60
    # An alert firing again this soon after the incident's end re-opens it: a flap, not a new failure.
    reopen_window: timedelta = timedelta(minutes=10)
    # The check after a resolution looks at the signals this long after it, over as many minutes.
    recheck_delay: timedelta = timedelta(minutes=5)
    # A check that cannot read the signals is tried again until this long past its time.
    recheck_give_up: timedelta = timedelta(hours=1)
    max_alerts: int = 200
    # Label changes listed one by one in a timeline; later ones are counted in one entry.
    max_change_entries: int = 50
    keep_applied: int = 200
    keep_seen: int = 50


DEFAULT_POLICY = Policy()


def decide(current: Incident | None, delivery: Delivery, *, policy: Policy = DEFAULT_POLICY) -> Decision:
    """What this notification means for the latest incident of its correlation key (None: there is none)."""
    n = delivery.notification
    firing = n.firing
    if current is not None and delivery.entry_id in current.applied:
        return Decision(Action.IGNORE, Reason.ALREADY_APPLIED)
    if current is None:
        return Decision(Action.OPEN, Reason.FIRST_FIRING if firing else Reason.RESOLVED_UNSEEN)
    # The dedup key holds fingerprints, not labels: an alert re-sent with other labels (a new
    # severity) is news even from an HA peer, while its identical twin is still a duplicate.
    changes = alert_changes(current.alerts, n.alerts)
    if not changes and _is_duplicate(current, delivery, policy.dedup_window):
        return Decision(Action.IGNORE, Reason.DUPLICATE)
    changed = tuple(sorted({c.alert.fingerprint for c in changes}))
    if current.status == "resolved":
        if not firing:
            return Decision(Action.IGNORE, Reason.ALREADY_RESOLVED)
        known = {(a.fingerprint, a.starts_at) for a in current.alerts}
        refired = [a for a in firing if (a.fingerprint, a.starts_at) not in known]
        if not refired:
            return Decision(Action.IGNORE, Reason.STALE_FIRING)
        if _within_reopen_window(current, refired, policy.reopen_window):
            new = tuple(sorted({a.fingerprint for a in refired}))
            return Decision(Action.REOPEN, Reason.FLAPPED, new, changed)
        return Decision(Action.OPEN, Reason.REFIRED)
    if not firing:
        if others_firing(current, n):
            return Decision(Action.REPEAT, Reason.OTHERS_FIRING, changed_fingerprints=changed)
        return Decision(Action.RESOLVE, Reason.ALL_RESOLVED)
    known_fingerprints = {a.fingerprint for a in current.alerts}
    new = tuple(sorted({a.fingerprint for a in firing} - known_fingerprints))
    if new:
        if len(current.alerts) >= policy.max_alerts:
            return Decision(Action.REPEAT, Reason.ALERT_CAP, new, changed)
        return Decision(Action.JOIN, Reason.NEW_ALERT, new, changed)
    # A worse severity is asked to be analysed again, as a joining alert is: the signals have
    # most likely crossed a further threshold since the last analysis looked at them.
    if any(c.raised for c in changes):
        return Decision(Action.UPDATE, Reason.SEVERITY_RAISED, changed_fingerprints=changed)
    was_firing = {a.fingerprint for a in current.alerts if a.status == "firing"}
    if any(a.status == "resolved" and a.fingerprint in was_firing for a in n.alerts):
        return Decision(Action.REPEAT, Reason.SOME_RESOLVED, changed_fingerprints=changed)
    if changes:
        return Decision(Action.UPDATE, Reason.LABELS_CHANGED, changed_fingerprints=changed)
    return Decision(Action.REPEAT, Reason.SAME_FIRING_SET)


def _within_reopen_window(current: Incident, refired: list[Alert], window: timedelta) -> bool:
    """The alerts started again (or had started) no later than `window` after the incident ended."""
    if window <= timedelta(0) or current.ended_at is None:
        return False
    return min(a.starts_at for a in refired) - current.ended_at <= window


def others_firing(current: Incident, n: Notification) -> list[AlertRecord]:
    """Alerts of the incident still firing that another Alertmanager group notified."""
    mentioned = {a.fingerprint for a in n.alerts}
    return [a for a in current.alerts
            if a.status == "firing" and a.group_key != n.group_key and a.fingerprint not in mentioned]


def _is_duplicate(current: Incident, delivery: Delivery, window: timedelta) -> bool:
    seen = current.seen.get(dedup_key(delivery.notification))
    return seen is not None and abs(delivery.received_at - seen) < window


def apply(current: Incident | None, delivery: Delivery, decision: Decision, *, now: datetime,
          policy: Policy = DEFAULT_POLICY) -> Incident | None:
    """The incident after the decision; None when nothing is to be written."""
    if decision.action is Action.IGNORE:
        return None
    if decision.action is Action.OPEN:
        incident = _open(delivery, decision, now=now, policy=policy,
                         previous=current.id if current is not None else None)
    elif decision.action is Action.REOPEN:
        assert current is not None
        incident = _reopen(current, delivery, decision, now=now, policy=policy)
    else:
        assert current is not None
        incident = _change(current, delivery, decision, now=now, policy=policy)
    key = dedup_key(delivery.notification)
    seen = {k: v for k, v in incident.seen.items() if k != key}
    seen[key] = delivery.received_at
    newest = sorted(seen.items(), key=lambda kv: kv[1])[-policy.keep_seen:]
    return incident.model_copy(update={
        "applied": [*incident.applied, delivery.entry_id][-policy.keep_applied:],
        "seen": dict(newest),
        "updated_at": now,
    })


def _open(delivery: Delivery, decision: Decision, *, now: datetime, policy: Policy,
          previous: str | None) -> Incident:
    n = delivery.notification
    received = delivery.received_at
    firing = n.firing
    opening = firing or n.alerts
    onset = min(a.starts_at for a in opening)
    ident = incident_id(n.group_key, delivery.entry_id, received)
    title = alert_title(n)
    alerts, dropped = _merge_alerts([], n, received, policy.max_alerts)
    timeline = [TimelineEntry(at=a.starts_at, kind="onset", text=f"{_alert_name(a, n)} started firing.")
                for a in sorted(opening, key=lambda a: a.starts_at)[:10]]
    if len(opening) > 10:
        timeline.append(TimelineEntry(at=onset, kind="onset", text=f"{len(opening) - 10} more alerts started firing."))
    first = "firing" if firing else "resolved"
    timeline.append(TimelineEntry(at=received, kind="notified", text=_notified_text(n, first)))
    key = correlation_key(n.alerts[0])
    if not key.startswith("backend="):
        timeline.append(TimelineEntry(at=received, kind="scope", text=scope_text(key)))
    # A group first heard of resolved is analysed up to its end, not up to the (later) notification.
    last_seen = received if firing else max((a.ends_at for a in opening if a.ends_at), default=received)
    analysis_at = min(last_seen, received, onset + policy.latest_after_onset)
    incident = Incident(
        id=ident, group_key=n.group_key, correlation_key=key, status="open", title=title, receiver=n.receiver,
        external_url=n.external_url, group_labels=n.group_labels, common_labels=n.common_labels,
        alerts=alerts, alerts_not_recorded=dropped + n.truncated_alerts, onset_at=onset, notified_at=received,
        first_notification=first, updated_at=now, timeline=timeline, revision=1,
        analysis_due=Due(revision=1, owner=delivery.entry_id, at=analysis_at,
                         window_minutes=_window(analysis_at, onset, policy)),
        postmortem_file=postmortem_file_name(ident, title, received), previous_incident=previous,
    )
    if not firing:
        incident = _resolve(incident, delivery, now=now, policy=policy)
    return incident


def scope_text(key: str) -> str:
    """What an incident without a backend is analysed over, and why."""
    if key == UNSCOPED:
        return ("Its alerts concern nothing the service measures by backend (they name no backend, service or "
                "job); analysed over all backends.")
    return f"Its alerts name no backend ({key_label(key)}); analysed over all backends."


def analysed_by_hand(report: Report) -> Incident:
    """An incident for an analysis someone asked for (`POST /analyze`): no alert, diagnosed when analysed.

    It is never stored; it lets a report made outside the alert flow be drafted as a post-mortem.
    """
    key = f"analyze:{report.backend or '*'}:{report.window_end.isoformat()}"
    ident = incident_id(key, "manual", report.window_end)
    return Incident(
        id=ident, group_key=key, status="open", title=report.title, alerts=[],
        onset_at=report.window_start, notified_at=report.timestamp, diagnosed_at=report.timestamp,
        updated_at=report.timestamp, report=report, report_revision=1, revision=1,
        timeline=[TimelineEntry(at=report.timestamp, kind="diagnosed",
                                text=f"Analysed on request ({report.synthesis.mode} mode).")],
        common_labels={"backend": report.backend} if report.backend else {},
        postmortem_file=postmortem_file_name(ident, report.title, report.window_end),
    )


def _change(current: Incident, delivery: Delivery, decision: Decision, *, now: datetime,
            policy: Policy) -> Incident:
    n = delivery.notification
    received = delivery.received_at
    alerts, dropped = _merge_alerts(current.alerts, n, received, policy.max_alerts)
    incident = current.model_copy(update={
        "alerts": alerts,
        "alerts_not_recorded": max(current.alerts_not_recorded, dropped + n.truncated_alerts),
        "onset_at": min(current.onset_at, *(a.starts_at for a in n.firing)) if n.firing else current.onset_at,
    })
    if decision.action is Action.RESOLVE:
        return _resolve(incident, delivery, now=now, policy=policy)
    changes = [c for c in alert_changes(current.alerts, n.alerts)
               if c.alert.fingerprint in decision.changed_fingerprints]
    timeline = _with_changes(incident.timeline, changes, received, policy.max_change_entries)
    if decision.action is Action.JOIN:
        joined = [a for a in n.firing if a.fingerprint in decision.new_fingerprints]
        for alert in sorted(joined, key=lambda a: a.starts_at)[:10]:
            timeline.append(TimelineEntry(at=alert.starts_at, kind="alert_joined",
                                          text=f"{_alert_name(alert, n)} started firing and joined the incident."))
        plural = "s" if len(joined) != 1 else ""
        if n.group_key in {a.group_key for a in current.alerts}:
            text = f"Alertmanager notified the group again with {len(joined)} new alert{plural}; analysing again."
        else:
            text = (f"Alertmanager notified another group ({_group_text(n)}) of {len(joined)} alert{plural} "
                    f"on {key_label(correlation_key(joined[0]))}; analysing again.")
        timeline.append(TimelineEntry(at=received, kind="notified", text=text))
        revision = incident.revision + 1
        anchor = min(a.starts_at for a in joined)
        at = min(received, anchor + policy.latest_after_onset)
        title = incident.title
        for alert in joined:
            if alert.alertname not in current.alertnames:
                title = joined_title(title, alert.annotations.get("summary", "") or alert.alertname)
        return incident.model_copy(update={
            "timeline": timeline, "revision": revision, "title": title,
            "analysis_due": Due(revision=revision, owner=delivery.entry_id, at=at,
                                window_minutes=_window(at, incident.onset_at, policy)),
        })
    if decision.reason is Reason.SEVERITY_RAISED:
        timeline.append(TimelineEntry(at=received, kind="notified",
                                      text="Alertmanager notified a worse severity; analysing again."))
        revision = incident.revision + 1
        return incident.model_copy(update={
            "timeline": timeline, "revision": revision,
            "analysis_due": Due(revision=revision, owner=delivery.entry_id, at=received,
                                window_minutes=_window(received, incident.onset_at, policy)),
        })
    if decision.reason is Reason.OTHERS_FIRING:
        still = others_firing(current, n)
        names = ", ".join(sorted({a.alertname or "Alert" for a in still})[:3])
        timeline.append(TimelineEntry(at=received, kind="alerts_resolved",
                                      text=f"The alerts of group {_group_text(n)} resolved; {len(still)} from "
                                           f"other groups still firing ({_clip(names, 300)})."))
        return incident.model_copy(update={"timeline": timeline})
    if decision.reason is Reason.SOME_RESOLVED:
        was_firing = {a.fingerprint for a in current.alerts if a.status == "firing"}
        for alert in n.alerts:
            if alert.status == "resolved" and alert.fingerprint in was_firing:
                timeline.append(TimelineEntry(at=alert.ends_at or received, kind="alerts_resolved",
                                              text=f"{_alert_name(alert, n)} resolved; others still firing."))
    if changes:  # the entries above say what was new
        return incident.model_copy(update={"timeline": timeline})
    last = timeline[-1] if timeline else None
    if last is not None and last.kind == "repeat":
        timeline[-1] = last.model_copy(update={"count": last.count + 1, "last_at": received})
    else:
        timeline.append(TimelineEntry(at=received, kind="repeat",
                                      text="Alertmanager repeated the notification; nothing new."))
    return incident.model_copy(update={"timeline": timeline})


_MORE_CHANGES = "More alert label changes, not listed one by one."


def _with_changes(timeline: list[TimelineEntry], changes: list[AlertChange], received: datetime,
                  limit: int) -> list[TimelineEntry]:
    """The timeline with a line per change, up to `limit` of them in all; the rest counted in one line."""
    listed = sum(1 for e in timeline if e.kind == "alert_changed" and e.text != _MORE_CHANGES)
    room = max(0, min(10, limit - 1 - listed))
    result = [*timeline, *(TimelineEntry(at=received, kind="alert_changed", text=change_text(c))
                           for c in changes[:room])]
    unlisted = len(changes) - room
    if unlisted <= 0:
        return result
    index = next((i for i, e in enumerate(result) if e.kind == "alert_changed" and e.text == _MORE_CHANGES), None)
    if index is None:
        return [*result, TimelineEntry(at=received, kind="alert_changed", text=_MORE_CHANGES, count=unlisted,
                                       last_at=received)]
    more = result[index]
    result[index] = more.model_copy(update={"count": more.count + unlisted, "last_at": received})
    return result


def change_text(change: AlertChange) -> str:
    """What changed, in a line: "BackendLatencyHigh on api: severity warning → critical"."""
    before, after = change.before, change.alert.labels
    backend = after.get("backend") or before.get("backend")
    subject = _clip(change.alert.alertname or "Alert", 200) + (f" on {_clip(backend, 80)}" if backend else "")
    parts = []
    if change.severity_before != change.severity_after:
        was, now = (_clip(v or "none", 80) for v in (change.severity_before, change.severity_after))
        parts.append(f"severity {was} → {now}")
    differ = [k for k in sorted((before.keys() | after.keys()) - {"severity"}) if before.get(k) != after.get(k)]
    for key in differ[:5]:
        old, new = before.get(key), after.get(key)
        name = _clip(key, 80)
        if old is None:
            parts.append(f"{name}={_clip(new or '', 80)} added")
        elif new is None:
            parts.append(f"{name}={_clip(old, 80)} removed")
        else:
            parts.append(f"{name} {_clip(old, 80)} → {_clip(new, 80)}")
    if len(differ) > 5:
        parts.append(f"{len(differ) - 5} more labels")
    return f"{subject}: {', '.join(parts)}"


def _resolve(incident: Incident, delivery: Delivery, *, now: datetime, policy: Policy) -> Incident:
    """Resolved at its last alert's end; the check after it is due `recheck_delay` later."""
    received = delivery.received_at
    ends = [a.ends_at for a in incident.alerts if a.status == "resolved" and a.ends_at is not None]
    ended = max(ends) if ends else received
    groups = {a.group_key for a in incident.alerts}
    timeline = [
        *incident.timeline,
        TimelineEntry(at=ended, kind="resolved",
                      text="All alerts of the group resolved." if len(groups) <= 1 else
                      f"All alerts resolved, of all {len(groups)} groups."),
        TimelineEntry(at=received, kind="resolve_notified", text="Alertmanager notified the resolution."),
    ]
    delay = policy.recheck_delay
    return incident.model_copy(update={
        "status": "resolved", "ended_at": ended, "resolve_notified_at": received, "timeline": timeline,
        "recheck_due": Due(revision=incident.revision, owner=delivery.entry_id, at=ended + delay,
                           window_minutes=max(1, math.ceil(delay.total_seconds() / 60))),
    })


def _reopen(current: Incident, delivery: Delivery, decision: Decision, *, now: datetime,
            policy: Policy) -> Incident:
    """A flap: the resolved incident is open again and analysed again; its pending check is dropped."""
    n = delivery.notification
    received = delivery.received_at
    alerts, dropped = _merge_alerts(current.alerts, n, received, policy.max_alerts)
    refired = sorted((a for a in n.firing if a.fingerprint in decision.new_fingerprints), key=lambda a: a.starts_at)
    anchor = refired[0].starts_at
    assert current.ended_at is not None
    after = anchor - current.ended_at
    timeline = [*current.timeline, *(
        TimelineEntry(at=a.starts_at, kind="onset", text=f"{_alert_name(a, n)} started firing again.")
        for a in refired[:10])]
    timeline.append(TimelineEntry(
        at=received, kind="reopened",
        text=f"Re-opened: alerts fired again {_minutes(after)} after the resolution, within the "
             f"{_minutes(policy.reopen_window)} that count as the same failure; analysing again."))
    revision = current.revision + 1
    at = min(received, anchor + policy.latest_after_onset)
    return current.model_copy(update={
        "status": "open", "alerts": alerts,
        "alerts_not_recorded": max(current.alerts_not_recorded, dropped + n.truncated_alerts),
        "ended_at": None, "resolve_notified_at": None, "timeline": timeline,
        "recheck": None, "recheck_due": None, "revision": revision,
        "analysis_due": Due(revision=revision, owner=delivery.entry_id, at=at,
                            window_minutes=_window(at, current.onset_at, policy)),
    })


def _minutes(span: timedelta) -> str:
    seconds = max(0, round(span.total_seconds()))
    return f"{seconds} s" if seconds < 120 else f"{round(seconds / 60)} min"


def _group_text(n: Notification) -> str:
    """A group as people read it: its labels, else its key."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items()))
    return _clip(labels or n.group_key, 200)


def _merge_alerts(recorded: list[AlertRecord], group: Notification, received: datetime,
                  cap: int) -> tuple[list[AlertRecord], int]:
    """The records with the group's alerts as now notified; a new one keeps the group that first notified it."""
    incoming = group.alerts
    by_fingerprint = {a.fingerprint: a for a in recorded}
    order = [a.fingerprint for a in recorded]
    dropped = 0
    for alert in incoming:
        before = by_fingerprint.get(alert.fingerprint)
        if before is None and len(order) >= cap:
            dropped += 1
            continue
        by_fingerprint[alert.fingerprint] = AlertRecord(
            fingerprint=alert.fingerprint, alertname=alert.alertname, status=alert.status,
            severity=alert.labels.get("severity"), labels=alert.labels, annotations=alert.annotations,
            starts_at=alert.starts_at, ends_at=alert.ends_at, generator_url=alert.generator_url,
            first_notified_at=before.first_notified_at if before else received,
            group_key=before.group_key if before else group.group_key,
            group_labels=before.group_labels if before else group.group_labels,
            receiver=before.receiver if before else group.receiver,
        )
        if before is None:
            order.append(alert.fingerprint)
    return [by_fingerprint[f] for f in order], dropped


def _window(at: datetime, onset: datetime, policy: Policy) -> int:
    """Minutes from a minute before the onset (the alert's own window) to `at`, within the policy's bounds."""
    since_onset = math.ceil((at - onset).total_seconds() / 60) + 1
    return max(policy.min_window_minutes, min(since_onset, policy.max_window_minutes))


def alert_title(n: Notification) -> str:
    """The group's own words: its common summary, else its alert names and group labels."""
    summary = n.common_annotations.get("summary", "").strip()
    if summary:
        return _clip(" ".join(summary.split()), 200)
    names = sorted({a.alertname for a in n.alerts} - {""})
    text = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    scope = ", ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items()) if k != "alertname")
    title = f"{text or 'Alerts'} ({scope})" if scope else (text or "Alert group")
    return _clip(" ".join(title.split()), 200)


def joined_title(title: str, addition: str) -> str:
    """The title once an alert of another name joins: "Backend api: P99 latency above 1s; 5xx rate above 10%"."""
    addition = " ".join(addition.split())
    if not addition or addition in title:
        return title
    head, sep, rest = addition.partition(": ")
    combined = f"{title}; {rest}" if sep and title.startswith(head + sep) else f"{title}; {addition}"
    return _clip(combined, 200)


def _alert_name(alert: Alert, n: Notification) -> str:
    """The alert's name and the labels that tell it apart from the rest of its group."""
    own = [f"{k}={v}" for k, v in sorted(alert.labels.items())
           if k != "alertname" and n.common_labels.get(k) != v][:3]
    name = alert.alertname or "Alert"
    return f"{name} ({', '.join(own)})" if own else name


def _notified_text(n: Notification, first: str) -> str:
    count = len(n.alerts)
    plural = "s" if count != 1 else ""
    receiver = f" (receiver {n.receiver})" if n.receiver else ""
    if first == "resolved":
        return f"First notification{receiver} was already a resolution of {count} alert{plural}."
    return f"Alertmanager notified{receiver} of {len(n.firing)} firing alert{'s' if len(n.firing) != 1 else ''}."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Owed work: the entry that asked for an analysis is the one that runs it; the check after a
# resolution is scheduled for its time (`recheck_due.at`) and run by whichever worker claims it.

def owed_analysis(incident: Incident, entry_id: str) -> Due | None:
    due = incident.analysis_due
    return due if due is not None and due.owner == entry_id else None


def analysis_request(incident: Incident, due: Due, *, max_alerts: int = 50) -> AnalysisRequest:
    """The alerts as context, the window covering their onset, narrowed to their backend if they share one."""
    alerts = sorted(incident.alerts, key=lambda a: (a.status != "firing", a.starts_at))[:max_alerts]
    return AnalysisRequest(window_minutes=due.window_minutes, at=due.at, backend=_one_backend(incident),
                           alerts=[_context(a) for a in alerts],
                           exclude_similar=[i for i in (incident.id, incident.previous_incident) if i])


def recheck_request(incident: Incident, due: Due) -> AnalysisRequest:
    """The minutes after the resolution, for the same backend, against the baseline before the onset."""
    return AnalysisRequest(window_minutes=due.window_minutes, at=due.at, backend=_one_backend(incident),
                           baseline_before=incident.started_at)


def _one_backend(incident: Incident) -> str | None:
    named = {a.labels.get("backend") for a in incident.alerts} - {None, ""}
    if len(named) == 1:
        backend = named.pop()
        return backend[:200] if backend else None
    return None


# What the model is shown of one alert's labels and annotations: enough to read them, and a
# notification's megabyte of text cannot become every model call's prompt.
CONTEXT_ITEMS = 30
CONTEXT_VALUE_CHARS = 1_000


def _context(alert: AlertRecord) -> AlertContext:
    return AlertContext(alertname=alert.alertname[:200], status=alert.status[:20],
                        severity=alert.severity[:50] if alert.severity else None,
                        labels=_bounded_map(alert.labels), annotations=_bounded_map(alert.annotations),
                        starts_at=alert.starts_at)


def _bounded_map(values: dict[str, str]) -> dict[str, str]:
    """The first CONTEXT_ITEMS entries by name, each value cut at CONTEXT_VALUE_CHARS with a marker."""
    kept = sorted(values.items())[:CONTEXT_ITEMS]
    return {name[:200]: value if len(value) <= CONTEXT_VALUE_CHARS
            else f"{value[:CONTEXT_VALUE_CHARS]}… [cut: {len(value) - CONTEXT_VALUE_CHARS:,} more characters]"
            for name, value in kept}


def attach_report(incident: Incident, due: Due, report: Report, *, now: datetime) -> Incident:
    """Keep the newest report; the first one marks the diagnosis time."""
    update: dict = {"updated_at": now, "analysis_due": _settled(incident.analysis_due, due)}
    if due.revision >= incident.report_revision:
        update |= {"report": report, "report_revision": due.revision, "analysis_error": None}
        if incident.diagnosed_at is None:
            update["diagnosed_at"] = now
        kind = "Analysis" if due.revision == 1 else "Re-analysis"
        update["timeline"] = [*incident.timeline, TimelineEntry(
            at=now, kind="diagnosed",
            text=f"{kind} finished ({report.synthesis.mode} mode, {report.overall_severity.value}): {report.title}",
        )]
    return incident.model_copy(update=update)


def record_analysis_failure(incident: Incident, due: Due, error: str, *, now: datetime) -> Incident:
    return incident.model_copy(update={
        "updated_at": now, "analysis_due": _settled(incident.analysis_due, due), "analysis_error": error,
        "timeline": [*incident.timeline, TimelineEntry(at=now, kind="analysis_failed",
                                                       text=f"Analysis failed: {error}")],
    })


def attach_recheck(incident: Incident, due: Due, report: Report, *, now: datetime) -> Incident:
    """The check's result, unless the incident no longer owes it (re-opened, or resolved again since)."""
    if incident.recheck_due != due:
        return incident
    abnormal = [f"{f.specialist}: {f.summary}" for f in report.findings if f.severity is not Severity.ok]
    normal = report.overall_severity is Severity.ok
    recheck = Recheck(checked_at=now, window_minutes=due.window_minutes, window_end=due.at,
                      severity=report.overall_severity, normal=normal, title=report.title, abnormal=abnormal,
                      mode=report.synthesis.mode, compared=_compared(report))
    span = recheck_span(incident, due)
    text = (f"Signals back to normal {span}." if normal
            else f"Signals still {report.overall_severity.value} {span}: {report.title}")
    return incident.model_copy(update={
        "updated_at": now, "recheck": recheck, "recheck_due": _settled(incident.recheck_due, due),
        "timeline": [*incident.timeline, TimelineEntry(at=now, kind="recheck", text=text)],
    })


_COMPARED = ("error_rate_5xx_pct", "error_rate_4xx_pct", "latency_p95_ms", "latency_p99_ms", "requests_per_minute")


def _compared(report: Report) -> list[Evidence]:
    """The report's headline figures on its own scope that have a value from before the incident."""
    scope = f"backend={report.backend}" if report.backend else "all"
    found = {e.metric: e for f in report.findings for e in f.evidence
             if e.metric in _COMPARED and e.baseline is not None and (e.scope or "all") == scope}
    return [found[m] for m in _COMPARED if m in found]


def recheck_span(incident: Incident, due: Due) -> str:
    """Which minutes a check looked at: "over 10:03:15–10:08:15 UTC (5 min, ending 5 min after the resolution)"."""
    start = due.at - timedelta(minutes=due.window_minutes)
    after = f", ending {_minutes(due.at - incident.ended_at)} after the resolution" if incident.ended_at else ""
    return f"over {start:%H:%M:%S}–{due.at:%H:%M:%S} UTC ({due.window_minutes} min{after})"


def record_recheck_failure(incident: Incident, due: Due, error: str, *, now: datetime) -> Incident:
    if incident.recheck_due != due:
        return incident
    return incident.model_copy(update={
        "updated_at": now, "recheck_due": _settled(incident.recheck_due, due),
        "timeline": [*incident.timeline, TimelineEntry(at=now, kind="recheck_failed",
                                                       text=f"Check after the resolution failed: {error}")],
    })


def abandon(incident: Incident, entry_id: str, reason: str, *, now: datetime) -> Incident:
    """Give up the work an entry owed, after it failed too often to be tried again."""
    update: dict = {"updated_at": now}
    if incident.analysis_due is not None and incident.analysis_due.owner == entry_id:
        update["analysis_due"] = None
        update["analysis_error"] = reason
    if len(update) == 1:
        return incident
    update["timeline"] = [*incident.timeline, TimelineEntry(at=now, kind="abandoned", text=reason)]
    return incident.model_copy(update=update)


def _settled(current: Due | None, done: Due) -> Due | None:
    """The due work once `done` has finished: cleared unless a newer one took its place."""
    if current is None or (current.owner == done.owner and current.revision <= done.revision):
        return None
    return current
