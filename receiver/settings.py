"""Every knob of the service, read from the environment (and `.env`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from agents import AnalysisConfig, Thresholds
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .intake import DEFAULT_QUEUE_LINES

# The thresholds' defaults are the analysis's: one source for the settings, the evaluators and the rules.
_T = Thresholds()

# The setting behind each threshold: `Settings.thresholds` reads them, the rule file's header names them.
THRESHOLD_SETTINGS: Mapping[str, str] = MappingProxyType({
    "latency_p95_threshold_ms": "latency_p95_ms",
    "latency_p99_threshold_ms": "latency_p99_ms",
    "error_rate_5xx_threshold_pct": "error_rate_5xx_pct",
    "error_rate_5xx_critical_pct": "error_rate_5xx_critical_pct",
    "error_rate_4xx_threshold_pct": "error_rate_4xx_pct",
    "memory_usage_threshold_pct": "memory_used_pct",
    "min_requests_per_minute": "min_requests_per_minute",
    "traffic_spike_factor": "traffic_spike_factor",
})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Service
    host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(8080, description="Port of the HTTP API.")
    serve_workers: int = Field(
        0, ge=0, description="Processes of `serve` sharing its HTTP and syslog ports; 0: one per core; 1: one, "
                             "without a parent.")
    log_format: Literal["json", "text"] = Field("json", description="`json` (one object a line) or `text`.")
    log_level: str = Field("INFO", description="Python logging level.")
    data_dir: Path = Field(Path("var"), description="Where the embedded Redis keeps its data.")
    redis_url: str | None = Field(
        None, description="Redis to use; unset = start an embedded `redis-server` under DATA_DIR."
    )
    redis_cluster: bool = Field(
        False, description="REDIS_URL is a node of a Redis Cluster (any one: the others are learnt from it)."
    )
    redis_sentinels: str = Field(
        "", pattern=r"^(\s*[^\s,:]+:\d{1,5}\s*(,\s*[^\s,:]+:\d{1,5}\s*)*)?$",
        description="Redis Sentinels (`host:port,host:port`) that name the master to use; REDIS_URL then gives "
                    "only the password and database, if any.",
    )
    redis_sentinel_master: str = Field("", description="The master's name at the Sentinels.")

    # Ingestion
    retention_minutes: int = Field(360, ge=10, description="How long minute buckets live (TTL).")
    clock_skew_seconds: int = Field(300, ge=0, description="How far in the future a log timestamp may be.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest accepted request body.")
    max_backends: int = Field(100, ge=1, description="Distinct backends tracked; more fold into `__other__`.")
    max_frontends: int = Field(50, ge=1, description="Distinct frontends tracked; more fold into `__other__`.")
    max_paths: int = Field(500, ge=1, description="Distinct normalised paths per hour; more fold into `__other__`.")
    log_timezone: str = Field(
        "", description="Zone of HAProxy's local-time log dates (IANA name); empty = this host's zone."
    )
    group_commit_ms: float = Field(
        1.0, ge=0, le=100,
        description="A small `POST /logs` batch waits this long for others, to be written to Redis with them; "
                    "0: each alone.",
    )
    query_snapshot_seconds: float = Field(
        1.0, ge=0, le=10,
        description="A view over the still-filling minute is read once and answered from that snapshot this long "
                    "(its `as_of`); 0: read at every query.",
    )
    syslog_host: str = Field("127.0.0.1", description="Address of the syslog listener (UDP and TCP).")
    syslog_port: int = Field(5140, ge=0, description="Port of the syslog listener; 0 disables it.")
    syslog_queue_lines: int = Field(
        DEFAULT_QUEUE_LINES, ge=1, description="Syslog lines held while Redis falls behind (about 250 bytes each); beyond: dropped."
    )
    syslog_tcp_idle_seconds: float = Field(
        300, gt=0, description="A TCP syslog connection that sends nothing this long is closed (the sender reconnects)."
    )
    syslog_tcp_max_connections: int = Field(
        256, ge=1, description="TCP syslog connections at once; more are closed as they arrive."
    )

    # HTTP server
    http_header_timeout_seconds: float = Field(
        10, gt=0, description="A new connection must send a whole request head within this long; else it is closed."
    )
    http_body_timeout_seconds: float = Field(
        60, gt=0, description="A request body must arrive within this long; else `408`."
    )
    http_keepalive_seconds: float = Field(
        30, gt=0, description="An idle keep-alive connection (or one slow to send its next request head) is closed after this long."
    )
    http_max_connections: int = Field(
        512, ge=1, description="HTTP connections at once; more are answered `503` with `Retry-After` and closed."
    )

    # Golden-signal thresholds: the alert rules are rendered from these.
    latency_p95_threshold_ms: float = Field(_T.latency_p95_ms, gt=0, description="P95 above this: warning.")
    latency_p99_threshold_ms: float = Field(_T.latency_p99_ms, gt=0, description="P99 above this: critical.")
    error_rate_5xx_threshold_pct: float = Field(_T.error_rate_5xx_pct, gt=0, description="5xx rate above this: warning.")
    error_rate_5xx_critical_pct: float = Field(_T.error_rate_5xx_critical_pct, gt=0, description="5xx rate above this: critical.")
    error_rate_4xx_threshold_pct: float = Field(_T.error_rate_4xx_pct, gt=0, description="4xx rate above this: warning.")
    memory_usage_threshold_pct: float = Field(_T.memory_used_pct, gt=0, description="Redis memory above this % of maxmemory.")
    min_requests_per_minute: float = Field(
        _T.min_requests_per_minute, ge=0, description="Traffic floor below which error rates and latency do not alert."
    )
    traffic_spike_factor: float = Field(_T.traffic_spike_factor, gt=1, description="Traffic above this multiple of its baseline: spike.")

    # Analysis
    anthropic_api_key: SecretStr | None = Field(None, description="Enables the model; unset = rules only.")
    anthropic_base_url: str | None = Field(None, description="Messages API base URL (proxies, tests).")
    anthropic_model: str = Field("claude-sonnet-4-6", description="Model for specialists and synthesis.")
    llm_max_tokens: int = Field(
        1024, ge=64, description="max_tokens of each model call, at least: a call asks for as many as its largest "
                                 "valid answer needs.")
    llm_timeout_seconds: float = Field(20, gt=0, description="Timeout of each model call.")
    llm_synthesis_thinking: Literal["off", "adaptive"] = Field(
        "off", description="`adaptive`: the synthesis thinks before it concludes (models with adaptive thinking).")
    llm_prompt_caching: bool = Field(
        True, description="Cache the specialists' shared prompt prefix and each tool loop's turns (cache reads "
                          "cost a tenth of fresh input, writes 1.25 times).")
    llm_max_tool_rounds: int = Field(4, ge=1, description="Tool rounds a specialist may take.")
    llm_max_concurrency: int = Field(4, ge=1, description="Model calls in flight at once, for all workers on one Redis.")
    llm_max_analyses_per_hour: int = Field(
        30, ge=0, description="Model-backed analyses an hour, for all workers on one Redis; beyond: rules.")
    llm_max_tokens_per_hour: int = Field(
        0, ge=0, description="Model tokens an hour (input, cache and output), for all workers on one Redis; beyond: "
                             "rules. 0: no token budget.")
    analysis_deadline_seconds: float = Field(60, gt=0, description="Deadline of a whole analysis.")
    analysis_window_minutes: int = Field(10, ge=1, description="Default window of `POST /analyze`.")
    incident_window_min_minutes: int = Field(
        3, ge=1, le=60,
        description="An incident is analysed from a minute before its onset to the notification, and over "
                    "at least this many minutes.",
    )

    # Receiver
    webhook_token: SecretStr | None = Field(None, description="Bearer token required on `POST /alerts`.")
    analyze_token: SecretStr | None = Field(None, description="Bearer token required on `POST /analyze`.")
    ingest_token: SecretStr | None = Field(None, description="Bearer token required on `POST /logs`.")
    read_token: SecretStr | None = Field(
        None, description="Bearer token required on `GET /incidents*`, `/metrics/*` and `/prometheus/metrics`."
    )
    alerts_max_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1024,
        description="Largest Alertmanager notification body (about 30,000 alerts); beyond: `413`, counted.",
    )
    alerts_max_alerts: int = Field(
        1000, ge=1, description="Alerts kept from one notification; the rest are counted in its `truncatedAlerts`."
    )
    run_worker: bool = Field(True, description="Run an incident worker inside the service.")
    analysis_concurrency: int = Field(2, ge=1, description="Analyses a worker runs at once.")
    worker_reclaim_idle_seconds: float = Field(
        60, gt=0, description="A notification a worker took and left this long (it died) is taken over by another."
    )
    incident_reopen_minutes: float = Field(
        10, ge=0,
        description="An alert firing again within this long after its incident resolved re-opens it (a flap) "
                    "instead of opening another; 0 never re-opens.",
    )
    recheck_delay_seconds: float = Field(
        300, gt=0,
        description="The check after a resolution looks at the signals this long after it, over as many minutes "
                    "(at least one); it runs then, from a schedule kept in Redis.",
    )
    postmortem_dir: Path = Field(Path("docs/post-mortems"), description="Where post-mortems are written.")
    slo_target_pct: float = Field(99.9, gt=0, lt=100, description="Availability SLO for error-budget figures.")
    memory_poll_seconds: float = Field(
        5, ge=0,
        description="How often POSTMORTEM_DIR is checked for new or edited post-mortems to archive; 0: only at start.",
    )

    # Notifications
    notify_config: Path | None = Field(
        None, description="Notifications file (YAML: routes and Slack, Teams, webhook receivers); unset: none sent."
    )
    public_url: str = Field(
        "", pattern=r"^(https?://\S+)?$",
        description="The service's address as its users reach it (https://copilot.example.com): links in messages.",
    )

    @model_validator(mode="after")
    def _one_way_to_redis(self) -> "Settings":
        if self.redis_cluster and self.redis_sentinels:
            raise ValueError("REDIS_CLUSTER and REDIS_SENTINELS exclude each other: a Cluster fails over by itself, "
                             "Sentinels watch a single master; set one of them")
        if self.redis_cluster and not self.redis_url:
            raise ValueError("REDIS_CLUSTER needs REDIS_URL: the address of one node of the cluster")
        if bool(self.redis_sentinels) != bool(self.redis_sentinel_master):
            raise ValueError("REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: the Sentinels, and the name "
                             "of the master they watch")
        return self

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """REDIS_SENTINELS as (host, port) pairs."""
        pairs = [part.strip().rsplit(":", 1) for part in self.redis_sentinels.split(",") if part.strip()]
        return [(host, int(port)) for host, port in pairs]

    @property
    def external_redis(self) -> bool:
        """Whether a Redis is configured (a URL, a Cluster or Sentinels) rather than embedded."""
        return bool(self.redis_url or self.redis_sentinels)

    @property
    def thresholds(self) -> Thresholds:
        """The golden-signal thresholds: what the evaluators judge by and the alert rules fire on."""
        return Thresholds(**{field: getattr(self, setting) for setting, field in THRESHOLD_SETTINGS.items()})

    def analysis_config(self) -> AnalysisConfig:
        """The analysis knobs of these settings."""
        key = self.anthropic_api_key.get_secret_value() if self.anthropic_api_key else None
        return AnalysisConfig(
            thresholds=self.thresholds,
            window_minutes=self.analysis_window_minutes,
            deadline_seconds=self.analysis_deadline_seconds,
            anthropic_api_key=key or None,
            anthropic_base_url=self.anthropic_base_url,
            model=self.anthropic_model,
            max_tokens=self.llm_max_tokens,
            llm_timeout_seconds=self.llm_timeout_seconds,
            max_tool_rounds=self.llm_max_tool_rounds,
            max_concurrency=self.llm_max_concurrency,
            max_analyses_per_hour=self.llm_max_analyses_per_hour,
            max_tokens_per_hour=self.llm_max_tokens_per_hour,
            public_url=self.public_url,
            prompt_caching=self.llm_prompt_caching,
            synthesis_thinking=self.llm_synthesis_thinking,
        )
