"""What the queries return: the JSON of `GET /metrics/*` and of the agents' tools."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Window(BaseModel):
    """The minutes a view covers: [start, end)."""

    window_minutes: int
    start: datetime
    end: datetime
    as_of: datetime | None = Field(
        None, description="When the still-filling minute was read: an answer over it may be a snapshot up to "
                          "QUERY_SNAPSHOT_SECONDS old. Absent from views of past windows.",
        exclude_if=lambda value: value is None)


class Overview(Window):
    backend: str | None = None
    total_requests: int
    errors_4xx: int
    errors_5xx: int
    error_rate_4xx_pct: float
    error_rate_5xx_pct: float
    requests_per_minute: float


class StatusCodes(Window):
    backend: str | None = None
    total_requests: int
    codes: dict[str, int] = Field(description="Requests by HTTP status code, most frequent first.")


class Latency(BaseModel):
    count: int
    p50: float | None = Field(description="Milliseconds; null without requests.")
    p95: float | None
    p99: float | None


class ResponseTimes(Window, Latency):
    backend: str | None = None


class BackendStats(BaseModel):
    backend: str
    requests: int
    errors_4xx: int
    errors_5xx: int
    error_rate_4xx_pct: float
    error_rate_5xx_pct: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    status_codes: dict[str, int]
    termination_states: dict[str, int]
    queued_requests: int = Field(description="Requests that waited in a server or backend queue.")
    mean_queue_ms: float | None = Field(description="Mean time waiting in queues (Tw).")
    mean_connect_ms: float | None = Field(description="Mean time to connect to a server (Tc).")
    mean_response_ms: float | None = Field(description="Mean server response time (Tr).")


class Backends(Window):
    backends: list[BackendStats] = Field(description="Busiest first.")


class FrontendStats(BaseModel):
    frontend: str
    requests: int
    errors_4xx: int
    errors_5xx: int
    error_rate_4xx_pct: float
    error_rate_5xx_pct: float


class Frontends(Window):
    frontends: list[FrontendStats]


class PathStats(BaseModel):
    route: str = Field(description='Method and normalised path, e.g. "POST /api/checkout".')
    method: str
    path: str
    requests: int
    status_classes: dict[str, int] = Field(description='Requests by class: "2xx", "3xx", "4xx", "5xx".')
    status_codes: dict[str, int] = Field(description="Error (4xx/5xx) requests by status code.")
    errors_4xx: int
    errors_5xx: int
    error_rate_4xx_pct: float
    error_rate_5xx_pct: float
    mean_ms: float | None
    p95_ms: float | None = Field(description="From coarse buckets: an upper bound of the bucket.")


class Paths(Window):
    backend: str | None = None
    top_by_errors: list[PathStats]
    top_by_latency: list[PathStats]


class TerminationStates(Window):
    backend: str | None = None
    total_requests: int
    states: dict[str, int] = Field(description='First two characters of the state ("sH", "SC", "--"), most first.')
    by_backend: dict[str, dict[str, int]]


class RpsPoint(BaseModel):
    minute: datetime
    requests: int


class Rps(BaseModel):
    minutes: int
    end: datetime
    backend: str | None = None
    points: list[RpsPoint] = Field(description="Requests per minute, oldest first, zero-filled.")


class SeriesPoint(BaseModel):
    """One minute of a scope's golden signals."""

    minute: datetime = Field(description="Start of the minute (UTC).")
    requests: int
    errors_4xx: int
    errors_5xx: int
    error_rate_4xx_pct: float
    error_rate_5xx_pct: float
    p50_ms: float | None = Field(description="Null in a minute without requests.")
    p95_ms: float | None
    p99_ms: float | None


class BackendSeries(BaseModel):
    backend: str
    requests: int = Field(description="Over the whole window.")
    points: list[SeriesPoint]


class Series(Window):
    backend: str | None = None
    route: str | None = Field(None, description='With a route ("POST /api/checkout"), its own minutes; '
                                                'its percentiles are upper bounds of coarse buckets.')
    points: list[SeriesPoint] = Field(description="Oldest first, one per minute, zero-filled.")
    by_backend: list[BackendSeries] = Field(
        default_factory=list,
        description="Without `backend`: each backend's own minutes, busiest first, up to `limit`.")
    more_backends: int = Field(0, description="Backends left out of `by_backend` by the limit.")


class ServerStats(BaseModel):
    backend: str
    server: str = Field(description='As HAProxy names it after the slash; "<NOSRV>" when none was chosen.')
    requests: int
    errors_4xx: int
    errors_5xx: int
    error_rate_4xx_pct: float
    error_rate_5xx_pct: float
    mean_ms: float | None = Field(description="Mean total active time (Ta).")
    status_codes: dict[str, int] = Field(description="Error (4xx/5xx) requests by status code, most first.")
    termination_states: dict[str, int] = Field(
        description='Abnormal termination states (first two characters, not "--"), most first.')


class Servers(Window):
    backend: str | None = None
    servers: list[ServerStats] = Field(description="Most 5xx first, then busiest; up to `limit`.")
    more_servers: int = Field(0, description="Servers left out by the limit.")


class SampleRequest(BaseModel):
    """One failing or slow request as HAProxy logged it, without the client's address or query string."""

    at: datetime
    backend: str
    server: str
    route: str = Field(description="Method and normalised path.")
    status: int
    time_active_ms: int = Field(description="Ta; -1 where HAProxy wrote -1.")
    time_queue_ms: int
    time_connect_ms: int
    time_response_ms: int
    termination_state: str
    retries: int


class Samples(Window):
    backend: str | None = None
    requests: list[SampleRequest] = Field(
        description="5xx first, then the slowest; up to `limit`, from the few kept per minute and backend.")


class RedisSaturation(BaseModel):
    used_memory_bytes: int
    maxmemory_bytes: int = Field(description="0 when Redis has no limit.")
    memory_used_pct: float | None = Field(description="Null when Redis has no maxmemory.")
    connected_clients: int
    blocked_clients: int
    rejected_connections: int
    maxclients: int | None = None


class HaproxySaturation(BaseModel):
    requests: int
    queued_requests: int = Field(description="Requests that waited in a queue (Tw > 0 or a queue position).")
    queued_pct: float
    mean_queue_ms: float | None
    max_actconn: int
    max_feconn: int
    max_beconn: int
    max_srv_conn: int
    max_srv_queue: int
    max_backend_queue: int
    retries: int


class Saturation(Window):
    backend: str | None = None
    redis: RedisSaturation
    haproxy: HaproxySaturation


class Health(BaseModel):
    status: str
    redis: str
    detail: str | None = None
