"""The one shape every log format is parsed into."""

from __future__ import annotations

from typing import NamedTuple


class LogRecord(NamedTuple):
    """One HTTP request as HAProxy logged it (a NamedTuple: built once per line, so cheap to build).

    Timers are milliseconds; HAProxy writes -1 where a phase never happened
    (connection refused, client aborted), and so do we.
    """

    ts: float  # epoch seconds, UTC
    client_ip: str
    frontend: str
    backend: str
    server: str
    method: str
    path: str  # as requested, query string included
    status: int
    bytes_read: int
    time_request: int  # TR: time to receive the full request
    time_queue: int  # Tw: time waiting in queues
    time_connect: int  # Tc: time to connect to the server
    time_response: int  # Tr: server response time
    time_active: int  # Ta: total active time of the request
    termination_state: str  # e.g. "----", "sH--", "SC--"
    actconn: int = 0
    feconn: int = 0
    beconn: int = 0
    srv_conn: int = 0
    retries: int = 0
    srv_queue: int = 0
    backend_queue: int = 0


class RejectedLine(Exception):
    """A line that can never be ingested; ``reason`` says why in words a sender can act on."""

    def __init__(self, reason: str, code: str = "parse_error") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
