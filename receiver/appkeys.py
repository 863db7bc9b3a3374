"""The typed keys under which the application keeps its shared resources."""

from __future__ import annotations

from agents import AnalysisConfig, AnalysisMetrics, LLMClient
from aiohttp import web
from ingestion import MetricsQueries, RedisClient
from prometheus_client import CollectorRegistry, Counter

from .incidents import (
    AlertStream,
    IncidentAnalysis,
    IncidentCharts,
    IncidentMetrics,
    IncidentRepository,
    PostmortemWriter,
)
from .memory import Archive, PostmortemLibrary
from .intake import IntakeMetrics, LogIntake, SyslogLimits, SyslogListener
from .notify import NotifyConfig, NotifyMetrics
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS: web.AppKey[RedisClient] = web.AppKey("redis")  # one server, a Sentinel's master, or a Cluster
QUERIES = web.AppKey("queries", MetricsQueries)
REGISTRY = web.AppKey("registry", CollectorRegistry)
# What `/prometheus/metrics` shows of the process metrics: REGISTRY, or a worker group's sums of it.
EXPOSITION = web.AppKey("exposition", CollectorRegistry)
# Set in a process of `serve --workers N`: the HTTP and syslog ports are shared with the others.
SHARED_PORTS = web.AppKey("shared_ports", bool)
HTTP_REQUESTS = web.AppKey("http_requests", Counter)
INTAKE_METRICS = web.AppKey("intake_metrics", IntakeMetrics)
INTAKE = web.AppKey("intake", LogIntake)
SYSLOG = web.AppKey("syslog", SyslogListener)
SYSLOG_LIMITS = web.AppKey("syslog_limits", SyslogLimits)
ALERT_STREAM = web.AppKey("alert_stream", AlertStream)
INCIDENTS = web.AppKey("incidents", IncidentRepository)
POSTMORTEMS = web.AppKey("postmortems", PostmortemWriter)
INCIDENT_METRICS = web.AppKey("incident_metrics", IncidentMetrics)
INCIDENT_ANALYSIS = web.AppKey("incident_analysis", IncidentAnalysis)
INCIDENT_CHARTS = web.AppKey("incident_charts", IncidentCharts)
ANALYSIS_CONFIG = web.AppKey("analysis_config", AnalysisConfig)
LLM: web.AppKey[LLMClient | None] = web.AppKey("llm")
ANALYSIS_METRICS = web.AppKey("analysis_metrics", AnalysisMetrics)
ARCHIVE = web.AppKey("archive", Archive)
POSTMORTEM_LIBRARY = web.AppKey("postmortem_library", PostmortemLibrary)
NOTIFY_CONFIG = web.AppKey("notify_config", NotifyConfig)
NOTIFY_METRICS = web.AppKey("notify_metrics", NotifyMetrics)
# The announcer is the composition root's (it joins incidents and notify): typed loosely to keep the ground below it.
ANNOUNCER: web.AppKey[object] = web.AppKey("announcer")
