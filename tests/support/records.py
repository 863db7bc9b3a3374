"""Building log records and lines for tests."""

from __future__ import annotations

import time
from datetime import timezone

from ingestion import LogRecord
from ingestion.simulate import format_httplog_line


def record(ts: float | None = None, *, frontend: str = "fe_http", backend: str = "api", server: str = "api-1",
           method: str = "GET", path: str = "/api/items/1", status: int = 200, ta: int = 20, tw: int = 0,
           tc: int = 0, tr: int | None = None, term: str = "----", srv_queue: int = 0) -> LogRecord:
    return LogRecord(
        ts=time.time() - 1 if ts is None else ts, client_ip="10.0.0.1", frontend=frontend, backend=backend,
        server=server, method=method, path=path, status=status, bytes_read=100, time_request=0,
        time_queue=tw, time_connect=tc, time_response=ta if tr is None else tr, time_active=ta,
        termination_state=term, actconn=5, feconn=4, beconn=3, srv_conn=2, retries=0, srv_queue=srv_queue,
        backend_queue=0,
    )


def line(ts: float | None = None, **fields) -> str:
    return format_httplog_line(record(ts, **fields), timezone.utc)


def body(*lines: str) -> str:
    return "\n".join(lines) + "\n"
