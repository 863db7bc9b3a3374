"""The application factory: one place that builds the service from its settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, Redis

from agents import LLMClient
from ingestion import Limits, MetricsQueries, MetricsStore

from . import alerts_api, analyze_api, incidents_api, logs_api, metrics_api, openapi
from .appkeys import INTAKE, QUERIES, REDIS, REGISTRY, SERVICE_METRICS, SETTINGS, STORE
from .embedded_redis import start_embedded_redis
from .log_intake import LogIntake, log_timezone
from .middleware import request_context
from .service_metrics import ServiceMetrics
from .settings import Settings
from .syslog_listener import syslog_ctx

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, redis: Redis | None = None, llm: LLMClient | None = None) -> web.Application:
    """Build the service. A `redis` or `llm` passed in is used and left open; one made here is closed here."""
    app = web.Application(middlewares=[request_context], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    registry = CollectorRegistry(auto_describe=True)
    app[REGISTRY] = registry
    app[SERVICE_METRICS] = ServiceMetrics.create(registry)
    app.cleanup_ctx.append(_redis_ctx(redis))
    app.cleanup_ctx.append(_ingestion_ctx)
    app.cleanup_ctx.append(syslog_ctx)
    app.cleanup_ctx.append(analyze_api.analysis_ctx(llm))
    app.cleanup_ctx.append(incidents_api.worker_ctx)
    logs_api.setup_routes(app)
    metrics_api.setup_routes(app)
    analyze_api.setup_routes(app)
    alerts_api.setup_routes(app)
    incidents_api.setup_routes(app)
    openapi.setup_routes(app)
    return app


def connect(url: str, *, max_connections: int = 256) -> Redis:
    """A client whose pool makes callers wait for a connection rather than fail past its size."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, decode_responses=True, health_check_interval=10,
        socket_connect_timeout=2, socket_timeout=5, retry_on_timeout=False,
    )
    return Redis.from_pool(pool)


def _redis_ctx(given: Redis | None):
    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[REDIS] = given
            yield
            return
        settings = app[SETTINGS]
        embedded = None
        if settings.redis_url:
            url = settings.redis_url
            log.info("using redis at REDIS_URL", extra={"url": _redact(url)})
        else:
            embedded = await start_embedded_redis(settings.data_dir)
            url = embedded.url
        client = connect(url)
        app[REDIS] = client
        try:
            yield
        finally:
            await client.aclose()
            if embedded is not None:
                await embedded.stop()

    return redis_ctx


async def _ingestion_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = app[REDIS]
    store = MetricsStore(
        redis, retention_minutes=settings.retention_minutes,
        limits=Limits(backends=settings.max_backends, frontends=settings.max_frontends, paths=settings.max_paths),
    )
    app[STORE] = store
    app[QUERIES] = MetricsQueries(redis)
    app[INTAKE] = LogIntake(store, tz=log_timezone(settings.log_timezone),
                            retention_minutes=settings.retention_minutes,
                            skew_seconds=settings.clock_skew_seconds, metrics=app[SERVICE_METRICS])
    yield


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
