"""Alertmanager's webhook payload (version 4), as Alertmanager 0.25+ sends it.

Fields this service does not use (`notification_reason`, later additions) are accepted and
ignored, so a newer Alertmanager is never answered with a final 4xx for them.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Go's zero time: Alertmanager's way of saying "has not ended".
_ZERO_TIME_YEAR = 1
# RFC 3339 with any number of fractional digits; Go writes up to nine, Python reads six.
_RFC3339 = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<zone>[Zz]|[+-]\d{2}:\d{2})$"
)


def parse_go_time(value: object) -> object:
    """Read Go's RFC 3339 timestamps (nanoseconds included) as aware UTC datetimes."""
    if not isinstance(value, str):
        return value
    match = _RFC3339.match(value.strip())
    if match is None:
        raise ValueError("not an RFC 3339 timestamp with a time zone")
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    zone = "+00:00" if match["zone"] in ("Z", "z") else match["zone"]
    moment = datetime.fromisoformat(f"{match['base'].replace('t', 'T').replace(' ', 'T')}.{frac}{zone}")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("timestamp outside the years 1 to 9999 once in UTC") from None


def _not_zero_time(value: object) -> object:
    parsed = parse_go_time(value)
    if isinstance(parsed, datetime) and parsed.year == _ZERO_TIME_YEAR:
        return None
    return parsed


GoTime = Annotated[datetime, BeforeValidator(parse_go_time)]
GoEndTime = Annotated[datetime | None, BeforeValidator(_not_zero_time)]
Status = Literal["firing", "resolved"]


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: GoTime = Field(alias="startsAt")
    ends_at: GoEndTime = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL", max_length=4096)
    fingerprint: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z]+$")

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


class Notification(BaseModel):
    """One webhook call: a group of alerts sharing `groupKey`."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1, max_length=4096)
    status: Status
    receiver: str = Field("", max_length=1024)
    alerts: list[Alert] = Field(min_length=1)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL", max_length=4096)
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    def to_json(self) -> bytes:
        """Compact JSON in Alertmanager's own field names, readable back by `model_validate_json`."""
        return orjson.dumps(self.model_dump(mode="json", by_alias=True))


def dedup_key(notification: Notification) -> str:
    """Same group, status and alerts (fingerprint, status, start) = the same notification, in any order."""
    alerts = sorted(
        (a.fingerprint, a.status, a.starts_at.isoformat()) for a in notification.alerts
    )
    material = orjson.dumps([notification.group_key, notification.status, alerts])
    return hashlib.sha256(material).hexdigest()[:32]
