"""The typed keys under which the application keeps its shared resources."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from aiohttp import web

from agents import AnalysisConfig, AnalysisMetrics, LLMClient, Report
from ingestion import MetricsQueries, MetricsStore

from .incidents import AlertStream, IncidentAnalysis, IncidentMetrics, IncidentRepository, PostmortemWriter
from .log_intake import LogIntake
from .service_metrics import ServiceMetrics
from .settings import Settings

if TYPE_CHECKING:  # the listener module imports these keys; name its types without a cycle
    from .syslog_listener import SyslogLimits, SyslogListener

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
STORE = web.AppKey("store", MetricsStore)
QUERIES = web.AppKey("queries", MetricsQueries)
REGISTRY = web.AppKey("registry", CollectorRegistry)
SERVICE_METRICS = web.AppKey("service_metrics", ServiceMetrics)
INTAKE = web.AppKey("intake", LogIntake)
SYSLOG: web.AppKey[SyslogListener] = web.AppKey("syslog")
SYSLOG_LIMITS: web.AppKey[SyslogLimits] = web.AppKey("syslog_limits")
ALERT_STREAM = web.AppKey("alert_stream", AlertStream)
INCIDENTS = web.AppKey("incidents", IncidentRepository)
POSTMORTEMS = web.AppKey("postmortems", PostmortemWriter)
INCIDENT_METRICS = web.AppKey("incident_metrics", IncidentMetrics)
INCIDENT_ANALYSIS = web.AppKey("incident_analysis", IncidentAnalysis)
ANALYSIS_CONFIG = web.AppKey("analysis_config", AnalysisConfig)
LLM: web.AppKey[LLMClient | None] = web.AppKey("llm")
ANALYSIS_METRICS = web.AppKey("analysis_metrics", AnalysisMetrics)
# Renders a post-mortem for a report made by `POST /analyze` and returns what the answer carries of it.
PostmortemHook = Callable[[Report], Awaitable[Any]]
POSTMORTEM_HOOK: web.AppKey[PostmortemHook] = web.AppKey("postmortem_hook")
