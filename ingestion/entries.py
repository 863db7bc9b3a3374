"""The JSON shape of a log entry (`POST /logs` with application/json or NDJSON)."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field

from .records import LogRecord


class LogEntry(BaseModel):
    """One HAProxy log entry as JSON. Timers in milliseconds; -1 means not available."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    time_local: datetime = Field(description="ISO-8601; without an offset it is read as UTC.")
    client_ip: str = Field("", max_length=64)
    frontend_name: str = Field(min_length=1, max_length=200)
    backend_name: str = Field(min_length=1, max_length=200)
    server_name: str = Field("-", max_length=200)
    http_request: str = Field(max_length=8192, description='"GET /path HTTP/1.1"')
    status_code: int = Field(ge=-1, le=999)
    bytes_read: int = Field(0, ge=0)
    time_request: int = Field(-1, ge=-1)
    time_queue: int = Field(-1, ge=-1)
    time_connect: int = Field(-1, ge=-1)
    time_response: int = Field(-1, ge=-1)
    time_active: int = Field(ge=-1)
    termination_state: str = Field("----", max_length=4)
    actconn: int = Field(0, ge=0)
    feconn: int = Field(0, ge=0)
    beconn: int = Field(0, ge=0)
    srv_conn: int = Field(0, ge=0)
    retries: int = Field(0, ge=0)
    srv_queue: int = Field(0, ge=0)
    backend_queue: int = Field(0, ge=0)

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
