"""Alertmanager's webhook payload: real bodies, Go timestamps, what is refused and the dedup key."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from receiver.incidents.notification import Notification, dedup_key

from tests.support.incidents import payload


def test_a_real_alertmanager_0_25_body_parses() -> None:
    n = Notification.model_validate(payload("firing"))
    [alert] = n.alerts
    assert n.status == "firing" and n.receiver == "hook" and n.external_url == "http://vm:19093"
    assert n.group_key == '{}:{alertname="FeasTest"}'
    assert alert.alertname == "FeasTest" and alert.labels["severity"] == "page"
    assert alert.fingerprint == "c472b0ebc3f6c4c9"
    # Nine fractional digits are cut to the microsecond, not refused or rounded into the next second.
    assert alert.starts_at == datetime(2026, 11, 25, 16, 26, 25, 864858, tzinfo=timezone.utc)
    assert alert.ends_at is None  # Go's zero time: not ended


def test_a_resolved_body_carries_the_end() -> None:
    n = Notification.model_validate(payload("resolved"))
    assert n.status == "resolved" and n.firing == []
    assert n.alerts[0].ends_at == datetime(2026, 11, 25, 16, 31, 25, 864858, tzinfo=timezone.utc)


def test_unknown_fields_are_ignored() -> None:
    body = payload("backend-5xx-firing")
    assert body["notification_reason"] == "new_alerts"
    body["alerts"][0]["someFutureField"] = {"x": 1}
    assert Notification.model_validate(body).alerts[0].alertname == "Backend5xxRateHigh"


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-25T16:26:25Z", datetime(2026, 11, 25, 16, 26, 25, tzinfo=timezone.utc)),
    ("2026-11-25T16:26:25.1Z", datetime(2026, 11, 25, 16, 26, 25, 100000, tzinfo=timezone.utc)),
    ("2026-11-25T16:26:25.999999999Z", datetime(2026, 11, 25, 16, 26, 25, 999999, tzinfo=timezone.utc)),
    ("2026-11-25T17:26:25.5+01:00", datetime(2026, 11, 25, 16, 26, 25, 500000, tzinfo=timezone.utc)),
    ("2026-11-25t16:26:25z", datetime(2026, 11, 25, 16, 26, 25, tzinfo=timezone.utc)),
])
def test_go_timestamps(text: str, expected: datetime) -> None:
    body = payload("firing")
    body["alerts"][0]["startsAt"] = text
    assert Notification.model_validate(body).alerts[0].starts_at == expected


@pytest.mark.parametrize("text", ["2026-11-25T16:26:25", "yesterday", "2026-13-40T99:00:00Z", ""])
def test_timestamps_without_zone_or_nonsense_are_refused(text: str) -> None:
    body = payload("firing")
    body["alerts"][0]["startsAt"] = text
    with pytest.raises(ValidationError) as caught:
        Notification.model_validate(body)
    assert [e["loc"] for e in caught.value.errors()] == [("alerts", 0, "startsAt")]


@pytest.mark.parametrize(("change", "loc"), [
    (lambda b: b.pop("groupKey"), ("groupKey",)),
    (lambda b: b.update(version="3"), ("version",)),
    (lambda b: b.update(status="pending"), ("status",)),
    (lambda b: b.update(alerts=[]), ("alerts",)),
    (lambda b: b["alerts"][0].update(fingerprint="../../x"), ("alerts", 0, "fingerprint")),
    (lambda b: b["alerts"][0]["labels"].update(severity=3), ("alerts", 0, "labels", "severity")),
])
def test_schema_errors_name_the_field(change, loc) -> None:
    body = payload("firing")
    change(body)
    with pytest.raises(ValidationError) as caught:
        Notification.model_validate(body)
    assert loc in [e["loc"] for e in caught.value.errors()]


def test_stored_form_reads_back_the_same() -> None:
    n = Notification.model_validate(payload("backend-5xx-joined"))
    assert Notification.model_validate_json(n.to_json()) == n


def test_the_dedup_key_ignores_alert_order_but_not_what_changed() -> None:
    body = payload("backend-5xx-joined")
    key = dedup_key(Notification.model_validate(body))

    reordered = copy.deepcopy(body)
    reordered["alerts"].reverse()
    assert dedup_key(Notification.model_validate(reordered)) == key

    one_resolved = copy.deepcopy(body)
    one_resolved["alerts"][1].update(status="resolved", endsAt="2026-03-14T09:50:00Z")
    assert dedup_key(Notification.model_validate(one_resolved)) != key

    refired = copy.deepcopy(body)
    refired["alerts"][0]["startsAt"] = "2026-03-14T11:00:00Z"
    assert dedup_key(Notification.model_validate(refired)) != key

    other_group = copy.deepcopy(body)
    other_group["groupKey"] = '{}:{alertname="Other"}'
    assert dedup_key(Notification.model_validate(other_group)) != key
