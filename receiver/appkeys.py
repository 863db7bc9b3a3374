"""The typed keys under which the application keeps its shared resources."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from aiohttp import web

from ingestion import MetricsQueries, MetricsStore

from .log_intake import LogIntake
from .service_metrics import ServiceMetrics
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
STORE = web.AppKey("store", MetricsStore)
QUERIES = web.AppKey("queries", MetricsQueries)
REGISTRY = web.AppKey("registry", CollectorRegistry)
SERVICE_METRICS = web.AppKey("service_metrics", ServiceMetrics)
INTAKE = web.AppKey("intake", LogIntake)
