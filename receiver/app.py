"""The composition root: the one place that builds the service from its settings.

Every shared resource is made, and closed, by a cleanup context here, in order: Redis, the
ingestion store and intake, the syslog listener, the archive of past incidents, the analysis, the notification delivery,
and the incidents with their in-process worker. Handlers (`receiver.http`) only read what these put under `appkeys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

from agents import AnalysisMetrics, LLMClient
from aiohttp import web
from ingestion import Limits, MetricsQueries, MetricsStore, RedisClient, is_cluster
from prometheus_client import CollectorRegistry, Counter, Gauge

from . import http, ui
from .announcements import Announcer, failed_delivery_recorder
from .appkeys import (
    ALERT_STREAM,
    ANNOUNCER,
    ARCHIVE,
    ANALYSIS_CONFIG,
    ANALYSIS_METRICS,
    EXPOSITION,
    HTTP_REQUESTS,
    INCIDENT_ANALYSIS,
    INCIDENT_CHARTS,
    INCIDENT_METRICS,
    INCIDENTS,
    INTAKE,
    INTAKE_METRICS,
    LLM,
    NOTIFY_CONFIG,
    NOTIFY_METRICS,
    POSTMORTEM_LIBRARY,
    POSTMORTEMS,
    QUERIES,
    REDIS,
    REGISTRY,
    SETTINGS,
    SHARED_PORTS,
    SYSLOG,
    SYSLOG_LIMITS,
)
from .embedded_redis import start_embedded_redis
from .incidents import (
    AlertStream,
    IncidentAnalysis,
    IncidentCharts,
    IncidentMetrics,
    IncidentRepository,
    IncidentWorker,
    Policy,
    PostmortemWriter,
    incident_analysis,
)
from .intake import GroupCommitPolicy, IntakeMetrics, LogIntake, SyslogLimits, SyslogListener, log_timezone
from .memory import ARCHIVE_FILE, Archive, PostmortemLibrary
from .keyspace import connect as connect  # where callers have long found it
from .keyspace import connect_configured, tag_key_names, tag_key_names_when_reachable
from .notify import Dispatcher, NotifyConfig, NotifyMetrics, Outbox, load_config
from .resources import resource_dir
from .retry import REDIS_UNAVAILABLE
from .settings import Settings
from .workers import exposition_registry, shares_metrics

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, redis: RedisClient | None = None,
               llm: LLMClient | None = None) -> web.Application:
    """Build the service. A `redis` or `llm` passed in is used and left open; one made here is closed here."""
    app = web.Application(middlewares=[http.request_context], client_max_size=settings.max_body_bytes,
                          handler_args=http.handler_args(settings))
    app[SETTINGS] = settings
    registry = CollectorRegistry(auto_describe=True)
    app[REGISTRY] = registry
    app[EXPOSITION] = exposition_registry(registry)
    app[HTTP_REQUESTS] = Counter("incident_copilot_http_requests", "HTTP requests served, by route and status.",
                                 ["route", "status"], registry=registry)
    app[INTAKE_METRICS] = IntakeMetrics.create(registry)
    if settings.notify_config is not None:  # read now: a broken file stops the start, naming its line
        app[NOTIFY_CONFIG] = load_config(settings.notify_config)
        app[NOTIFY_METRICS] = NotifyMetrics.create(registry)
    app.cleanup_ctx.append(_redis_ctx(redis))
    app.cleanup_ctx.append(_ingestion_ctx)
    app.cleanup_ctx.append(_syslog_ctx)
    app.cleanup_ctx.append(_memory_ctx)
    app.cleanup_ctx.append(_analysis_ctx(llm))
    app.cleanup_ctx.append(_notify_ctx)
    app.cleanup_ctx.append(_incidents_ctx)
    http.setup_routes(app)
    ui.setup_routes(app)
    return app


def postmortem_writer(settings: Settings, redis: RedisClient) -> PostmortemWriter:
    """Post-mortems with their charts, drawn from the series as they stand when each is written."""
    return PostmortemWriter(settings.postmortem_dir, templates=resource_dir("templates"),
                            slo_target_pct=settings.slo_target_pct, charts=incident_charts(settings, redis))


def incident_charts(settings: Settings, redis: RedisClient) -> IncidentCharts:
    series = MetricsQueries(redis).series
    return IncidentCharts(lambda minutes, at, backend: series(minutes, at, backend, limit=1), settings.thresholds)


def open_memory(settings: Settings) -> PostmortemLibrary:
    """The archive of past incidents under DATA_DIR, and POSTMORTEM_DIR's post-mortems indexed in it."""
    return PostmortemLibrary(settings.postmortem_dir, Archive(settings.data_dir / ARCHIVE_FILE))


def incident_worker(settings: Settings, redis: RedisClient, analysis: IncidentAnalysis, *,
                    metrics: IncidentMetrics | None = None, consumer: str | None = None,
                    announcer: Announcer | None = None, library: PostmortemLibrary | None = None) -> IncidentWorker:
    """A consumer of the alert stream configured from the settings: in the service, or `incident-copilot worker`.

    With `library`, each post-mortem it writes is archived at once, for the next incident to recall.
    """
    return IncidentWorker(
        AlertStream(redis), IncidentRepository(redis), analysis,
        postmortems=postmortem_writer(settings, redis), metrics=metrics, consumer=consumer,
        concurrency=settings.analysis_concurrency, claim_min_idle=settings.worker_reclaim_idle_seconds,
        policy=Policy(min_window_minutes=settings.incident_window_min_minutes,
                      reopen_window=timedelta(minutes=settings.incident_reopen_minutes),
                      recheck_delay=timedelta(seconds=settings.recheck_delay_seconds)),
        on_change=_on_change(announcer, library),
    )


def _on_change(announcer: Announcer | None, library: PostmortemLibrary | None):
    if library is None:
        return announcer

    async def changed(incident) -> None:
        try:
            await asyncio.to_thread(library.index_file, incident.postmortem_file)
        except Exception:  # the folder's next poll archives it
            log.warning("post-mortem not archived now", exc_info=True, extra={"incident": incident.id})
        if announcer is not None:
            await announcer(incident)

    return changed


def notify_dispatcher(settings: Settings, config: NotifyConfig, redis: RedisClient, *,
                      metrics: NotifyMetrics | None = None, consumer: str | None = None) -> Dispatcher:
    """A consumer of the outbox: in the service, or beside the incident worker of `incident-copilot worker`."""
    return Dispatcher(config, Outbox(redis), metrics=metrics, consumer=consumer,
                      claim_min_idle=settings.worker_reclaim_idle_seconds,
                      on_given_up=failed_delivery_recorder(IncidentRepository(redis), postmortem_writer(settings, redis)))


def _redis_ctx(given: RedisClient | None):
    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[REDIS] = given
            yield
            return
        settings = app[SETTINGS]
        embedded = None
        url = settings.redis_url
        if settings.redis_sentinels:
            log.info("using the redis master the sentinels name", extra={"sentinels": settings.redis_sentinels,
                                                                          "master": settings.redis_sentinel_master})
        elif settings.redis_cluster:
            log.info("using the redis cluster of REDIS_URL", extra={"url": _redact(url)})
        elif url:
            log.info("using redis at REDIS_URL", extra={"url": _redact(url)})
        else:
            embedded = await start_embedded_redis(settings.data_dir)
            url = embedded.url
        client = connect_configured(settings, url)
        app[REDIS] = client
        renaming = None
        if not is_cluster(client):  # a Cluster never held names from before hash tags
            try:
                await tag_key_names(client)
            except REDIS_UNAVAILABLE as exc:
                log.warning("redis unreachable at start; keys named before hash tags get their names once it "
                            "is back: %s", exc)
                renaming = tag_key_names_when_reachable(client)
        try:
            async with _in_background(renaming, "key-renaming"):
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
    app[QUERIES] = MetricsQueries(redis, snapshot_seconds=settings.query_snapshot_seconds)
    app[INTAKE] = LogIntake(store, tz=log_timezone(settings.log_timezone),
                            retention_minutes=settings.retention_minutes,
                            skew_seconds=settings.clock_skew_seconds, metrics=app[INTAKE_METRICS],
                            group_commit=GroupCommitPolicy(window_seconds=settings.group_commit_ms / 1000))
    try:
        yield
    finally:
        await app[INTAKE].close()


async def _syslog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Listen for syslog on SYSLOG_HOST:SYSLOG_PORT (UDP and TCP) while the app runs; port 0 disables it."""
    settings = app[SETTINGS]
    if not settings.syslog_port:
        yield
        return
    limits = app.get(SYSLOG_LIMITS) or SyslogLimits(queue_lines=settings.syslog_queue_lines,
                                                    tcp_idle_seconds=settings.syslog_tcp_idle_seconds,
                                                    tcp_max_connections=settings.syslog_tcp_max_connections)
    listener = SyslogListener(app[INTAKE], app[INTAKE_METRICS], limits)
    await listener.start(settings.syslog_host, settings.syslog_port, reuse_port=app.get(SHARED_PORTS, False))
    app[SYSLOG] = listener
    registry = app[REGISTRY]
    gauge = None
    refresh = None
    if not math.isnan(listener.kernel_drops()):
        gauge = Gauge("incident_copilot_syslog_kernel_drops",
                      "Syslog datagrams the kernel dropped because the receive buffer was full.", registry=registry,
                      multiprocess_mode="livesum")
        if shares_metrics():  # the group's sum is read from files: each worker writes its socket's count there
            refresh = asyncio.create_task(_refresh_every(gauge, listener.kernel_drops, 1.0))
        else:
            gauge.set_function(listener.kernel_drops)
    log.info("syslog listening", extra={"addresses": listener.addresses})
    try:
        yield
    finally:
        if refresh is not None:
            refresh.cancel()
        await listener.close()
        if gauge is not None:
            registry.unregister(gauge)


async def _refresh_every(gauge: Gauge, value: Callable[[], float], seconds: float) -> None:
    while True:
        gauge.set(value())
        await asyncio.sleep(seconds)


async def _memory_ctx(app: web.Application) -> AsyncIterator[None]:
    """The archive of past incidents, POSTMORTEM_DIR indexed into it now and watched while the app runs."""
    settings = app[SETTINGS]
    try:
        library = open_memory(settings)
    except (OSError, sqlite3.Error) as exc:  # incidents are still analysed, without recalling past ones
        log.error("no memory of past incidents: the archive cannot be opened: %s", exc,
                  extra={"path": str(settings.data_dir / ARCHIVE_FILE)})
        yield
        return
    app[POSTMORTEM_LIBRARY] = library
    app[ARCHIVE] = library.archive
    await asyncio.to_thread(library.sync)
    watcher = library.watch(settings.memory_poll_seconds) if settings.memory_poll_seconds else None
    try:
        async with _in_background(watcher, "postmortem-archive"):
            yield
    finally:
        library.archive.close()


def _analysis_ctx(llm: LLMClient | None):
    """The analysis resources. An `llm` passed in is used and not closed; otherwise one is made from
    the settings (none without an API key) and closed here."""

    async def analysis_ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[SETTINGS].analysis_config()
        app[ANALYSIS_CONFIG] = config
        app[ANALYSIS_METRICS] = AnalysisMetrics(app[REGISTRY])
        # The model budgets live in the service's Redis, so every worker on it shares them.
        owned = LLMClient.from_config(config, redis=app[REDIS]) if llm is None else None
        app[LLM] = llm or owned
        if INCIDENT_ANALYSIS not in app:  # tests may bring their own
            app[INCIDENT_ANALYSIS] = incident_analysis(app[QUERIES], config, app[LLM], app[ANALYSIS_METRICS],
                                                       memory=app.get(ARCHIVE))
        try:
            yield
        finally:
            if owned is not None:
                await owned.close()

    return analysis_ctx


async def _notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """With NOTIFY_CONFIG: the outbox incidents announce themselves to and, with RUN_WORKER, its delivery here."""
    config = app.get(NOTIFY_CONFIG)
    if config is None:
        yield
        return
    settings = app[SETTINGS]
    app[ANNOUNCER] = Announcer(Outbox(app[REDIS]), public_url=settings.public_url)
    dispatcher = notify_dispatcher(settings, config, app[REDIS], metrics=app[NOTIFY_METRICS])
    async with _in_background(dispatcher.run() if settings.run_worker else None, "notify-dispatcher"):
        yield


async def _incidents_ctx(app: web.Application) -> AsyncIterator[None]:
    """The incident store, the alert stream and, with RUN_WORKER, a worker in this process."""
    settings = app[SETTINGS]
    redis = app[REDIS]
    app[ALERT_STREAM] = AlertStream(redis)
    app[INCIDENTS] = IncidentRepository(redis)
    app[POSTMORTEMS] = postmortem_writer(settings, redis)
    app[INCIDENT_CHARTS] = incident_charts(settings, redis)
    app[INCIDENT_METRICS] = metrics = IncidentMetrics.create(app[REGISTRY])
    worker = incident_worker(settings, redis, app[INCIDENT_ANALYSIS], metrics=metrics, announcer=app.get(ANNOUNCER),
                             library=app.get(POSTMORTEM_LIBRARY))
    async with _in_background(worker.run() if settings.run_worker else None, "incident-worker"):
        yield


@contextlib.asynccontextmanager
async def _in_background(job: Coroutine[Any, Any, None] | None, name: str) -> AsyncIterator[None]:
    """Run `job` (if any) as a task while the block runs; cancel it and wait for it after."""
    task: asyncio.Task | None = None
    if job is not None:
        task = asyncio.create_task(job, name=name)
        task.add_done_callback(_report_crash)
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s stopped", task.get_name(), exc_info=task.exception())


def _redact(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
