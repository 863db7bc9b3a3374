"""The lifecycle decisions, as pure functions: what each notification does to its group's incident."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from agents import Severity
from receiver.incidents import Action, Incident, Reason, lifecycle
from receiver.incidents.naming import is_incident_id, is_postmortem_file

from tests.support.incidents import T0, delivery, make_report, ok_report, payload

FIRING, JOINED, RESOLVED = "backend-5xx-firing", "backend-5xx-joined", "backend-5xx-resolved"


def step(incident: Incident | None, name_or_body, entry: str, received) -> tuple[lifecycle.Decision, Incident | None]:
    d = delivery(name_or_body, entry, received)
    decision = lifecycle.decide(incident, d)
    return decision, lifecycle.apply(incident, d, decision, now=received)


def opened() -> Incident:
    return step(None, FIRING, "1-0", T0)[1]


def resolved() -> Incident:
    return step(opened(), RESOLVED, "2-0", T0 + timedelta(minutes=22))[1]


def partly_resolved_body() -> dict:
    body = payload(JOINED)
    body["alerts"][1].update(status="resolved", endsAt="2026-03-14T09:55:00Z")
    return body


def with_labels(name: str = FIRING, **labels: str | None) -> dict:
    """The body with its first alert's labels changed (None removes one); fingerprint and start kept."""
    body = payload(name)
    alert = body["alerts"][0]
    alert["labels"] = {k: v for k, v in {**alert["labels"], **labels}.items() if v is not None}
    return body


def opened_as_warning() -> Incident:
    return step(None, with_labels(severity="warning"), "1-0", T0)[1]


def refired_body() -> dict:
    body = payload(FIRING)
    body["alerts"][0]["startsAt"] = "2026-03-14T11:00:00Z"
    return body


@pytest.mark.parametrize(("current", "name", "entry", "after", "action", "reason"), [
    (lambda: None, FIRING, "9-0", 0, Action.OPEN, Reason.FIRST_FIRING),
    (lambda: None, RESOLVED, "9-0", 0, Action.OPEN, Reason.RESOLVED_UNSEEN),
    (opened, FIRING, "1-0", 600, Action.IGNORE, Reason.ALREADY_APPLIED),
    (opened, FIRING, "9-0", 15, Action.IGNORE, Reason.DUPLICATE),
    (opened, FIRING, "9-0", 290, Action.IGNORE, Reason.DUPLICATE),
    (opened, FIRING, "9-0", 4 * 3600, Action.REPEAT, Reason.SAME_FIRING_SET),
    (opened, JOINED, "9-0", 120, Action.JOIN, Reason.NEW_ALERT),
    (opened, RESOLVED, "9-0", 1320, Action.RESOLVE, Reason.ALL_RESOLVED),
    (resolved, RESOLVED, "9-0", 3600, Action.IGNORE, Reason.ALREADY_RESOLVED),
    (resolved, FIRING, "9-0", 1500, Action.IGNORE, Reason.STALE_FIRING),
    (resolved, refired_body, "9-0", 5400, Action.OPEN, Reason.REFIRED),
    (opened_as_warning, FIRING, "9-0", 15, Action.UPDATE, Reason.SEVERITY_RAISED),
    (opened_as_warning, FIRING, "9-0", 4 * 3600, Action.UPDATE, Reason.SEVERITY_RAISED),
    (opened, lambda: with_labels(severity="warning"), "9-0", 15, Action.UPDATE, Reason.LABELS_CHANGED),
    (opened, lambda: with_labels(zone="eu-west-1"), "9-0", 15, Action.UPDATE, Reason.LABELS_CHANGED),
    (opened, lambda: with_labels(severity="sev1"), "9-0", 15, Action.UPDATE, Reason.LABELS_CHANGED),  # unknown: not worse
    (resolved, lambda: with_labels(RESOLVED, severity="page"), "9-0", 60, Action.IGNORE, Reason.ALREADY_RESOLVED),
])
def test_decisions(current, name, entry, after, action, reason) -> None:
    body = name() if callable(name) else name
    decision = lifecycle.decide(current(), delivery(body, entry, T0 + timedelta(seconds=after)))
    assert (decision.action, decision.reason) == (action, reason)


def test_an_alert_resolving_while_others_fire_is_a_repeat() -> None:
    _, joined = step(opened(), JOINED, "2-0", T0 + timedelta(minutes=2))
    decision, after = step(joined, partly_resolved_body(), "3-0", T0 + timedelta(minutes=14))
    assert (decision.action, decision.reason) == (Action.REPEAT, Reason.SOME_RESOLVED)
    assert after.status == "open"
    assert after.analysis_due.owner == "2-0"  # the join's analysis is still owed; no new one is asked for
    assert [a.status for a in after.alerts] == ["firing", "resolved"]
    assert any(e.kind == "alerts_resolved" for e in after.timeline)


def test_opening_records_the_alerts_and_asks_for_an_analysis_of_their_onset() -> None:
    incident = opened()
    assert is_incident_id(incident.id) and incident.id.startswith("inc-20260314-")
    assert is_postmortem_file(incident.postmortem_file)
    assert incident.status == "open" and incident.severity == "critical"
    assert incident.onset_at == T0 - timedelta(seconds=29.9)
    assert incident.time_to_detect == timedelta(seconds=29.9)
    assert [e.kind for e in incident.timeline] == ["onset", "notified"]
    due = lifecycle.owed_analysis(incident, "1-0")
    assert due is not None and lifecycle.owed_analysis(incident, "other") is None
    request = lifecycle.analysis_request(incident, due)
    assert request.at == T0 and request.backend == "api" and request.window_minutes == 3  # onset 30 s before, and a minute
    assert request.alerts[0].labels["backend"] == "api" and request.alerts[0].severity == "critical"


def test_a_notification_read_late_still_looks_at_the_onset() -> None:
    incident = step(None, FIRING, "1-0", T0 + timedelta(hours=2))[1]  # queued for two hours
    request = lifecycle.analysis_request(incident, incident.analysis_due)
    assert request.at == incident.onset_at + timedelta(minutes=30)
    assert request.at - timedelta(minutes=request.window_minutes) < incident.onset_at


def test_the_same_notification_id_always_gives_the_same_incident() -> None:
    assert opened() == opened()
    other = step(None, FIRING, "7-0", T0)[1]
    assert other.id != opened().id


def test_a_repeat_is_folded_into_one_timeline_entry() -> None:
    incident = opened()
    for hours in (4, 8, 12):
        incident = step(incident, FIRING, f"{hours}-0", T0 + timedelta(hours=hours))[1]
    repeats = [e for e in incident.timeline if e.kind == "repeat"]
    assert len(repeats) == 1 and repeats[0].count == 3 and repeats[0].last_at == T0 + timedelta(hours=12)
    assert incident.analysis_due.owner == "1-0"  # still only the first analysis is owed


def test_a_joining_alert_asks_for_a_new_analysis_by_its_notification() -> None:
    decision, incident = step(opened(), JOINED, "2-0", T0 + timedelta(minutes=2))
    assert decision.new_fingerprints == ("4e81c07d2b9a6f35",)
    assert incident.revision == 2 and incident.analysis_due.owner == "2-0"
    assert lifecycle.owed_analysis(incident, "1-0") is None
    assert len(lifecycle.analysis_request(incident, incident.analysis_due).alerts) == 2


def test_resolution_records_the_end_and_asks_for_a_check() -> None:
    incident = resolved()
    assert incident.status == "resolved"
    assert incident.ended_at == T0.replace(hour=10, minute=3, second=15, microsecond=500000)
    assert incident.time_to_resolve == timedelta(minutes=21, seconds=45.4)
    due = incident.recheck_due
    assert due.owner == "2-0"
    check = lifecycle.recheck_request(incident, due)
    assert check.alerts == [] and check.backend == "api" and check.window_minutes == 5
    # After the resolution, not before it: the five minutes that follow the end of the last alert.
    assert check.at == incident.ended_at + timedelta(minutes=5)
    assert check.baseline_before == incident.onset_at


def test_first_heard_of_when_resolved() -> None:
    decision, incident = step(None, RESOLVED, "1-0", T0 + timedelta(minutes=22))
    assert incident.status == "resolved" and incident.time_to_detect is None
    assert incident.analysis_due is not None and incident.recheck_due is not None
    request = lifecycle.analysis_request(incident, incident.analysis_due)
    assert request.at <= incident.ended_at
    assert request.at - timedelta(minutes=request.window_minutes) < incident.onset_at


def test_refiring_after_resolution_opens_a_new_incident_linked_to_the_old() -> None:
    old = resolved()
    _, new = step(old, refired_body(), "9-0", T0 + timedelta(hours=2))
    assert new.id != old.id and new.status == "open" and new.previous_incident == old.id
    # Neither the incident nor the run of the failure it follows is recalled as a similar past incident.
    assert lifecycle.analysis_request(new, new.analysis_due).exclude_similar == [new.id, old.id]


def test_the_first_report_marks_the_diagnosis_and_a_late_older_one_is_not_kept() -> None:
    incident = opened()
    first_due = incident.analysis_due
    _, joined = step(incident, JOINED, "2-0", T0 + timedelta(minutes=2))
    second_due = joined.analysis_due
    newer = lifecycle.attach_report(joined, second_due, make_report(title="newer"), now=T0 + timedelta(minutes=3))
    late = lifecycle.attach_report(newer, first_due, make_report(title="older"), now=T0 + timedelta(minutes=4))
    assert late.report.title == "newer" and late.report_revision == 2
    assert late.diagnosed_at == T0 + timedelta(minutes=3)
    assert late.analysis_due is None


def test_an_analysis_finishing_after_the_resolution_keeps_the_incident_resolved() -> None:
    incident = resolved()
    due = incident.analysis_due
    after = lifecycle.attach_report(incident, due, make_report(), now=T0 + timedelta(minutes=23))
    assert after.status == "resolved" and after.report is not None and after.analysis_due is None
    assert after.recheck_due is not None  # the check is a separate piece of work


def test_a_check_that_finds_the_signals_still_abnormal_says_so() -> None:
    incident = resolved()
    still = lifecycle.attach_recheck(incident, incident.recheck_due, make_report(severity=Severity.warning),
                                     now=T0 + timedelta(minutes=23))
    assert not still.recheck.normal and still.recheck.abnormal == ["errors: 5xx rate 23 % on backend api."]
    fine = lifecycle.attach_recheck(incident, incident.recheck_due, ok_report(), now=T0 + timedelta(minutes=23))
    assert fine.recheck.normal and fine.recheck_due is None


def test_abandoning_clears_only_the_work_of_that_entry() -> None:
    incident = resolved()
    # The check after the resolution is scheduled, not owed by the entry that resolved it.
    assert lifecycle.abandon(incident, "2-0", "gave up", now=T0) == incident
    after = lifecycle.abandon(incident, "1-0", "gave up", now=T0)
    assert after.analysis_due is None and after.analysis_error == "gave up"
    assert after.recheck_due == incident.recheck_due
    assert lifecycle.abandon(after, "nobody", "gave up", now=T0) == after


def test_duplicate_bookkeeping_stays_bounded() -> None:
    incident = opened()
    body = payload(FIRING)
    for index in range(300):
        varied = copy.deepcopy(body)
        varied["alerts"][0]["startsAt"] = f"2026-03-14T09:41:{index % 60:02d}.{index:03d}Z"  # a new key each time
        incident = step(incident, varied, f"{index + 2}-0", T0 + timedelta(hours=index + 1))[1]
    assert len(incident.applied) == lifecycle.DEFAULT_POLICY.keep_applied
    assert len(incident.seen) == lifecycle.DEFAULT_POLICY.keep_seen
    assert len(incident.timeline) < 10


def test_a_worse_severity_under_a_known_fingerprint_is_recorded_once_and_analysed_again() -> None:
    incident = opened_as_warning()
    twin = step(incident, with_labels(severity="warning"), "2-0", T0 + timedelta(seconds=5))  # the HA peer
    assert twin == (lifecycle.Decision(Action.IGNORE, Reason.DUPLICATE), None)

    decision, raised = step(incident, FIRING, "3-0", T0 + timedelta(seconds=60))
    assert decision.changed_fingerprints == ("9f3b2a4c1d0e8f71",)
    assert raised.alerts[0].severity == "critical" and raised.severity == "critical"
    assert [(e.kind, e.text) for e in raised.timeline[len(incident.timeline):]] == [
        ("alert_changed", "Backend5xxRateHigh on api: severity warning → critical"),
        ("notified", "Alertmanager notified a worse severity; analysing again."),
    ]
    assert raised.revision == 2 and lifecycle.owed_analysis(raised, "3-0") is not None
    request = lifecycle.analysis_request(raised, raised.analysis_due)
    assert request.at == T0 + timedelta(seconds=60) and request.alerts[0].severity == "critical"
    assert request.at - timedelta(minutes=request.window_minutes) < raised.onset_at

    # Its HA twin, and the same notification again, add nothing.
    assert step(raised, FIRING, "4-0", T0 + timedelta(seconds=63)) == (
        lifecycle.Decision(Action.IGNORE, Reason.DUPLICATE), None)
    assert step(raised, FIRING, "3-0", T0 + timedelta(seconds=90))[1] is None


def test_a_lower_severity_or_another_label_is_recorded_without_a_new_analysis() -> None:
    incident = opened()
    decision, lowered = step(incident, with_labels(severity="warning", zone="eu", signal=None), "2-0",
                             T0 + timedelta(seconds=30))
    assert (decision.action, decision.reason) == (Action.UPDATE, Reason.LABELS_CHANGED)
    [entry] = lowered.timeline[len(incident.timeline):]
    assert entry.kind == "alert_changed"
    assert entry.text == "Backend5xxRateHigh on api: severity critical → warning, signal=errors removed, zone=eu added"
    assert lowered.alerts[0].labels["zone"] == "eu" and lowered.alerts[0].severity == "warning"
    assert lowered.revision == 1 and lowered.analysis_due.owner == "1-0"


def test_a_change_heard_in_a_later_repeat_is_not_called_nothing_new() -> None:
    incident = opened()
    _, changed = step(incident, with_labels(backend="api-v2"), "2-0", T0 + timedelta(hours=4))
    assert [e.text for e in changed.timeline[len(incident.timeline):]] == [
        "Backend5xxRateHigh on api-v2: backend api → api-v2"]
    _, repeated = step(changed, with_labels(backend="api-v2"), "3-0", T0 + timedelta(hours=8))
    assert repeated.timeline[-1].text == "Alertmanager repeated the notification; nothing new."


def test_a_change_line_stays_short_whatever_the_labels() -> None:
    incident = opened()
    huge = {f"label{n}": "v" * 10_000 for n in range(50)}
    _, changed = step(incident, with_labels(**huge), "2-0", T0 + timedelta(seconds=30))
    [entry] = changed.timeline[len(incident.timeline):]
    assert len(entry.text) < 1_000 and entry.text.endswith(", 45 more labels")


def test_the_model_is_shown_a_bounded_part_of_each_alert() -> None:
    body = with_labels(**{f"label{n:02d}": "v" for n in range(60)})
    body["alerts"][0]["annotations"]["description"] = "d" * 50_000
    incident = step(None, body, "1-0", T0)[1]
    [context] = lifecycle.analysis_request(incident, incident.analysis_due).alerts
    assert len(context.labels) == lifecycle.CONTEXT_ITEMS and context.labels["alertname"] == "Backend5xxRateHigh"
    assert context.annotations["description"] == "d" * 1_000 + "… [cut: 49,000 more characters]"
    assert context.annotations["summary"] == "Backend api: 5xx rate above 10%"


def test_a_label_that_keeps_changing_keeps_the_timeline_bounded() -> None:
    incident = opened()
    for n in range(200):
        incident = step(incident, with_labels(build=str(n)), f"{n + 2}-0", T0 + timedelta(minutes=5 * (n + 1)))[1]
    changed = [e for e in incident.timeline if e.kind == "alert_changed"]
    assert len(changed) == lifecycle.DEFAULT_POLICY.max_change_entries
    assert changed[0].text == "Backend5xxRateHigh on api: build=0 added"
    assert changed[-1].count == 200 - (lifecycle.DEFAULT_POLICY.max_change_entries - 1)
    assert changed[-1].last_at == T0 + timedelta(minutes=5 * 200)
