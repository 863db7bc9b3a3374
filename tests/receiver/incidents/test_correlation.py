"""Correlation as pure decisions: which incident an alert joins, whatever Alertmanager's grouping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from receiver.incidents import Action, Delivery, Incident, Reason, lifecycle
from receiver.incidents.correlation import UNSCOPED, correlation_key, part_id, split
from receiver.incidents.notification import Alert, Notification

from tests.support.incidents import T0, grouped, make_report, payload, rule_alert

LATENCY, ERRORS = "BackendLatencyHigh", "Backend5xxRateHigh"


def part_of(body: dict, entry: str, received) -> tuple[str, Delivery]:
    notification = Notification.model_validate(body)
    [(key, part)] = split(Delivery(entry_id=entry, received_at=received, notification=notification))
    return key, part


def step(incident: Incident | None, body: dict, entry: str, received, *,
         policy: lifecycle.Policy = lifecycle.DEFAULT_POLICY) -> tuple[lifecycle.Decision, Incident | None]:
    _, d = part_of(body, entry, received)
    decision = lifecycle.decide(incident, d, policy=policy)
    after = lifecycle.apply(incident, d, decision, now=received, policy=policy)
    return decision, after if after is not None else incident


def latency(**options) -> dict:
    return grouped([rule_alert(LATENCY, "api", **options)])


def errors(**options) -> dict:
    return grouped([rule_alert(ERRORS, "api", **{"starts_at": T0 + timedelta(seconds=40), **options})])


def both_firing() -> Incident:
    _, incident = step(None, latency(), "1-0", T0 + timedelta(seconds=30))
    _, incident = step(incident, errors(), "2-0", T0 + timedelta(seconds=70))
    return incident


@pytest.mark.parametrize(("labels", "key"), [
    ({"alertname": "A", "backend": "api", "service": "shop", "job": "haproxy"}, "backend=api"),
    ({"alertname": "A", "service": "shop", "job": "node"}, "service=shop"),
    ({"alertname": "A", "job": "node", "instance": "db1:9100"}, "job=node"),
    ({"alertname": "NodeFilesystemAlmostFull", "instance": "db1:9100"}, UNSCOPED),
    ({"alertname": "A", "backend": " "}, UNSCOPED),
])
def test_the_correlation_key_is_backend_else_service_else_job(labels: dict, key: str) -> None:
    alert = Alert.model_validate({"status": "firing", "labels": labels, "startsAt": "2026-03-14T09:41:30Z",
                                  "fingerprint": "ab12"})
    assert correlation_key(alert) == key


def test_a_notification_about_one_backend_stays_whole() -> None:
    body = payload("backend-5xx-joined")
    key, part = part_of(body, "7-0", T0)
    assert key == "backend=api" and part.entry_id == "7-0"
    assert part.notification == Notification.model_validate(body)


def test_a_group_by_alert_name_across_backends_is_split_per_backend() -> None:
    body = grouped([rule_alert(ERRORS, "api"), rule_alert(ERRORS, "web", status="resolved", ends_at=T0),
                    rule_alert(ERRORS, "api", severity="warning")], by=("alertname",))
    parts = split(Delivery(entry_id="7-0", received_at=T0, notification=Notification.model_validate(body)))
    assert [key for key, _ in parts] == ["backend=api", "backend=web"]
    api, web = (part for _, part in parts)
    assert (api.entry_id, web.entry_id) == (part_id("7-0", "backend=api"), part_id("7-0", "backend=web"))
    assert api.entry_id != web.entry_id and api.entry_id.startswith("7-0#")
    assert len(api.notification.alerts) == 2 and api.notification.status == "firing"
    assert web.notification.status == "resolved"
    assert web.notification.common_labels["backend"] == "web" and "backend" not in body["commonLabels"]
    assert web.notification.common_annotations["summary"] == "Backend web: 5xx rate above 10%"
    assert api.notification.group_key == web.notification.group_key == body["groupKey"]
    again = split(Delivery(entry_id="7-0", received_at=T0, notification=Notification.model_validate(body)))
    assert again == parts  # a redelivered entry is split the same way, under the same ids


def test_a_second_group_on_the_same_backend_joins_and_asks_for_a_new_analysis() -> None:
    _, first = step(None, latency(), "1-0", T0 + timedelta(seconds=30))
    decision, incident = step(first, errors(), "2-0", T0 + timedelta(seconds=70))
    assert (decision.action, decision.reason) == (Action.JOIN, Reason.NEW_ALERT)
    assert incident.id == first.id and incident.correlation_key == "backend=api"
    assert incident.group_key == latency()["groupKey"]  # the group that opened it
    assert [(a.alertname, a.group_key, a.first_notified_at) for a in incident.alerts] == [
        (LATENCY, latency()["groupKey"], T0 + timedelta(seconds=30)),
        (ERRORS, errors()["groupKey"], T0 + timedelta(seconds=70)),
    ]
    assert incident.alerts[1].group_labels == {"alertname": ERRORS, "backend": "api"}
    assert incident.revision == 2 and incident.analysis_due.owner == "2-0"
    assert len(lifecycle.analysis_request(incident, incident.analysis_due).alerts) == 2
    assert ("Alertmanager notified another group (alertname=Backend5xxRateHigh, backend=api) of 1 alert on "
            "backend api; analysing again.") in [e.text for e in incident.timeline]


def test_the_same_notification_from_the_other_peer_is_a_duplicate() -> None:
    decision, _ = step(both_firing(), errors(), "3-0", T0 + timedelta(seconds=75))
    assert (decision.action, decision.reason) == (Action.IGNORE, Reason.DUPLICATE)


def test_one_group_resolving_while_another_fires_leaves_the_incident_open() -> None:
    incident = both_firing()
    decision, partly = step(incident, latency(status="resolved", ends_at=T0 + timedelta(minutes=9)), "3-0",
                            T0 + timedelta(minutes=10))
    assert (decision.action, decision.reason) == (Action.REPEAT, Reason.OTHERS_FIRING)
    assert partly.status == "open" and partly.ended_at is None and partly.recheck_due is None
    assert [a.status for a in partly.alerts] == ["resolved", "firing"]
    assert partly.timeline[-1].kind == "alerts_resolved"
    assert "1 from other groups still firing (Backend5xxRateHigh)" in partly.timeline[-1].text

    decision, closed = step(partly, errors(status="resolved", ends_at=T0 + timedelta(minutes=12)), "4-0",
                            T0 + timedelta(minutes=13))
    assert (decision.action, decision.reason) == (Action.RESOLVE, Reason.ALL_RESOLVED)
    assert closed.status == "resolved" and closed.ended_at == T0 + timedelta(minutes=12)
    assert "All alerts resolved, of all 2 groups." in [e.text for e in closed.timeline]


def resolved_at(end) -> Incident:
    _, incident = step(None, latency(), "1-0", T0 + timedelta(seconds=30))
    _, incident = step(incident, latency(status="resolved", ends_at=end), "2-0", end + timedelta(seconds=30))
    assert incident.status == "resolved"
    return incident


def test_firing_again_within_the_window_re_opens_the_incident() -> None:
    end = T0 + timedelta(minutes=20)
    closed = resolved_at(end)
    assert closed.recheck_due is not None
    decision, reopened = step(closed, latency(starts_at=end + timedelta(minutes=4)), "3-0",
                              end + timedelta(minutes=4, seconds=30))
    assert (decision.action, decision.reason) == (Action.REOPEN, Reason.FLAPPED)
    assert reopened.id == closed.id and reopened.status == "open"
    assert reopened.ended_at is None and reopened.resolve_notified_at is None
    assert reopened.recheck_due is None and reopened.recheck is None  # the check after it is dropped
    assert reopened.analysis_due.owner == "3-0" and reopened.revision == closed.revision + 1
    assert reopened.onset_at == closed.onset_at
    [entry] = [e for e in reopened.timeline if e.kind == "reopened"]
    assert entry.text.startswith("Re-opened: alerts fired again 4 min after the resolution")
    assert [a.starts_at for a in reopened.alerts] == [end + timedelta(minutes=4)]


def test_another_group_firing_within_the_window_re_opens_it_too() -> None:
    end = T0 + timedelta(minutes=20)
    decision, reopened = step(resolved_at(end), errors(starts_at=end + timedelta(minutes=1)), "3-0",
                              end + timedelta(minutes=2))
    assert decision.action is Action.REOPEN and len(reopened.alerts) == 2


def test_firing_again_after_the_window_opens_a_new_incident_linked_to_the_old() -> None:
    end = T0 + timedelta(minutes=20)
    closed = resolved_at(end)
    decision, new = step(closed, latency(starts_at=end + timedelta(minutes=11)), "3-0",
                         end + timedelta(minutes=11, seconds=30))
    assert (decision.action, decision.reason) == (Action.OPEN, Reason.REFIRED)
    assert new.id != closed.id and new.previous_incident == closed.id


def test_a_window_of_zero_never_re_opens() -> None:
    end = T0 + timedelta(minutes=20)
    policy = lifecycle.Policy(reopen_window=timedelta(0))
    decision, _ = step(resolved_at(end), latency(starts_at=end + timedelta(seconds=5)), "3-0",
                       end + timedelta(seconds=30), policy=policy)
    assert decision.reason is Reason.REFIRED


def test_an_alert_naming_no_backend_is_analysed_over_all_backends_and_says_so() -> None:
    body = grouped([rule_alert("NodeFilesystemAlmostFull", None, instance="db1:9100")], by=("alertname",))
    _, incident = step(None, body, "1-0", T0)
    assert incident.correlation_key == UNSCOPED
    assert lifecycle.analysis_request(incident, incident.analysis_due).backend is None
    [scope] = [e for e in incident.timeline if e.kind == "scope"]
    assert "concern nothing the service measures by backend" in scope.text
    assert scope.text.endswith("analysed over all backends.")


def test_a_service_alert_says_which_service_it_was_correlated_by() -> None:
    body = grouped([rule_alert("CheckoutSlow", None, service="checkout")], by=("alertname",))
    _, incident = step(None, body, "1-0", T0)
    assert incident.correlation_key == "service=checkout"
    assert [e.text for e in incident.timeline if e.kind == "scope"] == [
        "Its alerts name no backend (service checkout); analysed over all backends."]


def test_a_check_for_an_earlier_resolution_is_not_attached_once_re_opened() -> None:
    end = T0 + timedelta(minutes=20)
    closed = resolved_at(end)
    due = closed.recheck_due
    _, reopened = step(closed, latency(starts_at=end + timedelta(minutes=2)), "3-0", end + timedelta(minutes=3))
    later = end + timedelta(minutes=6)
    assert lifecycle.attach_recheck(reopened, due, make_report(at=due.at), now=later) == reopened
    assert lifecycle.record_recheck_failure(reopened, due, "boom", now=later) == reopened


def test_records_stored_before_correlation_still_load_with_their_group() -> None:
    _, incident = step(None, latency(), "1-0", T0)
    raw = incident.model_dump(mode="json", exclude={"correlation_key"})
    for alert in raw["alerts"]:
        for field in ("group_key", "group_labels", "receiver"):
            del alert[field]
    old = Incident.model_validate_json(Incident.model_validate(raw).model_dump_json())
    assert old.correlation_key == ""
    assert old.alerts[0].group_key == incident.group_key and old.alerts[0].receiver == "incident-copilot"
    assert old.alerts[0].group_labels == {"alertname": LATENCY, "backend": "api"}
    # Its own group's resolution still resolves it: no alert of another group is left firing.
    decision, _ = step(old, latency(status="resolved", ends_at=T0 + timedelta(minutes=5)), "2-0",
                       T0 + timedelta(minutes=6))
    assert decision.action is Action.RESOLVE


@pytest.mark.parametrize(("title", "addition", "expected"), [
    ("Backend api: P99 latency above 1s", "Backend api: 5xx rate above 10%",
     "Backend api: P99 latency above 1s; 5xx rate above 10%"),
    ("Backend api: P99 latency above 1s", "Node disk full", "Backend api: P99 latency above 1s; Node disk full"),
    ("Backend api: P99 latency above 1s", "P99 latency above 1s", "Backend api: P99 latency above 1s"),
    ("Backend api: x", "  \n ", "Backend api: x"),
])
def test_an_alert_of_another_name_joining_adds_its_words_to_the_title(title, addition, expected):
    assert lifecycle.joined_title(title, addition) == expected


def test_joined_titles_stay_bounded():
    assert len(lifecycle.joined_title("a" * 190, "b" * 100)) == 200
