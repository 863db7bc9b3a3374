"""The JSON shape of a log entry (`POST /logs` with application/json or NDJSON)."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .bounds import MAX_BYTES, MAX_COUNT, STATUSES, TIMER_LIMIT_MS, well_formed_state
from .records import LogRecord

_TIMER = dict(ge=-1, lt=TIMER_LIMIT_MS)
_COUNT = dict(ge=0, le=MAX_COUNT)


class LogEntry(BaseModel):
    """One HAProxy log entry as JSON. Timers in milliseconds; -1 means not available."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    time_local: datetime = Field(description="ISO-8601; without an offset it is read as UTC.")
    client_ip: str = Field("", max_length=64)
    frontend_name: str = Field(min_length=1, max_length=200)
    backend_name: str = Field(min_length=1, max_length=200)
    server_name: str = Field("-", max_length=200)
    http_request: str = Field(max_length=8192, description='"GET /path HTTP/1.1"')
    status_code: int = Field(ge=-1, le=599, description="100 to 599; -1 or 0 when HAProxy sent no response.")
    bytes_read: int = Field(0, ge=0, le=MAX_BYTES)
    time_request: int = Field(-1, **_TIMER)
    time_queue: int = Field(-1, **_TIMER)
    time_connect: int = Field(-1, **_TIMER)
    time_response: int = Field(-1, **_TIMER)
    time_active: int = Field(**_TIMER)
    termination_state: str = Field("----", pattern=r"^(?:[-A-Za-z]{2}){0,2}$",
                                   description="HAProxy's %tsc (4 characters) or %ts (2).")
    actconn: int = Field(0, **_COUNT)
    feconn: int = Field(0, **_COUNT)
    beconn: int = Field(0, **_COUNT)
    srv_conn: int = Field(0, **_COUNT)
    retries: int = Field(0, **_COUNT)
    srv_queue: int = Field(0, **_COUNT)
    backend_queue: int = Field(0, **_COUNT)

    @field_validator("status_code")
    @classmethod
    def _haproxy_status(cls, value: int) -> int:
        if value not in STATUSES:
            raise ValueError("HAProxy writes 100 to 599, or -1 or 0 with no response")
        return value

    def to_record(self) -> LogRecord:
        ts = self.time_local
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        method, path = split_request(self.http_request)
        return LogRecord(
            ts=ts.timestamp(),
            client_ip=self.client_ip,
            frontend=clean_name(self.frontend_name),
            backend=clean_name(self.backend_name),
            server=clean_name(self.server_name),
            method=method,
            path=path,
            status=self.status_code,
            bytes_read=self.bytes_read,
            time_request=self.time_request,
            time_queue=self.time_queue,
            time_connect=self.time_connect,
            time_response=self.time_response,
            time_active=self.time_active,
            termination_state=self.termination_state,
            actconn=self.actconn,
            feconn=self.feconn,
            beconn=self.beconn,
            srv_conn=self.srv_conn,
            retries=self.retries,
            srv_queue=self.srv_queue,
            backend_queue=self.backend_queue,
        )


_CONTROL = dict.fromkeys(range(32), " ")

# (field, default, minimum) of the integer fields, in LogRecord order after the request.
_TIMERS = (("time_request", -1), ("time_queue", -1), ("time_connect", -1), ("time_response", -1))
_COUNTERS = ("actconn", "feconn", "beconn", "srv_conn", "retries", "srv_queue", "backend_queue")


def plain_record(item: dict) -> LogRecord | None:
    """The record of an entry whose every field has exactly the expected JSON type and range.

    The common case, at a fraction of the model's cost; anything else (a string where a
    number belongs, a missing field, a value out of range) returns None, and the caller
    validates with `LogEntry`, which accepts or explains it.
    """
    get = item.get
    stamp, frontend, backend = get("time_local"), get("frontend_name"), get("backend_name")
    request, status, active = get("http_request"), get("status_code"), get("time_active")
    client, server, term = get("client_ip", ""), get("server_name", "-"), get("termination_state", "----")
    size = get("bytes_read", 0)
    if not (type(stamp) is str and type(frontend) is str and type(backend) is str and type(request) is str
            and type(client) is str and type(server) is str and type(term) is str
            and type(status) is int and type(active) is int and type(size) is int):
        return None
    if not (0 < len(frontend) <= 200 and 0 < len(backend) <= 200 and len(server) <= 200 and len(client) <= 64
            and len(request) <= 8192 and status in STATUSES and -1 <= active < TIMER_LIMIT_MS
            and 0 <= size <= MAX_BYTES and well_formed_state(term)):
        return None
    timers = []
    for name, default in _TIMERS:
        value = get(name, default)
        if type(value) is not int or not -1 <= value < TIMER_LIMIT_MS:
            return None
        timers.append(value)
    counters = []
    for name in _COUNTERS:
        value = get(name, 0)
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            return None
        counters.append(value)
    try:
        ts = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    method, path = split_request(request)
    return LogRecord(ts.timestamp(), client, clean_name(frontend), clean_name(backend), clean_name(server),
                     method, path, status, size, *timers, active, term, *counters)


def clean_name(name: str) -> str:
    """Names become Redis field parts: no control characters (tab is our separator)."""
    if name.isprintable() and name.strip() == name:
        return name[:200] or "-"
    return name.translate(_CONTROL).strip()[:200] or "-"


def split_request(request: str) -> tuple[str, str]:
    """`"GET /a?b HTTP/1.1"` -> ("GET", "/a?b"); absolute URIs keep only their path."""
    parts = request.split(" ")
    if len(parts) < 2 or not parts[0]:
        return "-", "-"
    method, target = parts[0], parts[1]
    if "://" in target:
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    return clean_name(method)[:16], target if target.isprintable() else target.translate(_CONTROL)
