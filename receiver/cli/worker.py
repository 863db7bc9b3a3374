"""`incident-copilot worker`: more incident workers, on this machine or others, sharing one Redis."""

from __future__ import annotations

import asyncio
import logging
import signal

from agents import AnalysisMetrics, LLMClient
from ingestion import MetricsQueries
from prometheus_client import CollectorRegistry

from ..announcements import Announcer
from ..app import connect, incident_worker, notify_dispatcher, open_memory
from ..incidents import IncidentMetrics, incident_analysis
from ..logging_setup import configure_logging
from ..notify import ConfigError, NotifyMetrics, Outbox, load_config
from ..settings import Settings

log = logging.getLogger(__name__)


async def run(settings: Settings, *, consumer: str | None = None) -> int:
    configure_logging(settings.log_format, settings.log_level)
    if not settings.redis_url:
        log.error("a worker needs REDIS_URL: the Redis the service stores its notifications in")
        return 2
    try:
        notify = load_config(settings.notify_config) if settings.notify_config else None
    except ConfigError as exc:
        log.error("the notifications file cannot be used:\n%s", exc)
        return 2
    redis = connect(settings.redis_url)
    config = settings.analysis_config()
    llm = LLMClient.from_config(config, redis=redis)
    registry = CollectorRegistry()
    library = open_memory(settings)
    await asyncio.to_thread(library.sync)
    analysis = incident_analysis(MetricsQueries(redis), config, llm, AnalysisMetrics(registry), memory=library.archive)
    announcer = Announcer(Outbox(redis), public_url=settings.public_url) if notify else None
    worker = incident_worker(settings, redis, analysis, metrics=IncidentMetrics.create(registry), consumer=consumer,
                             announcer=announcer, library=library)
    jobs = [worker.run()]
    if settings.memory_poll_seconds:
        jobs.append(library.watch(settings.memory_poll_seconds))
    if notify is not None:  # this worker's incidents are delivered from here too
        jobs.append(notify_dispatcher(settings, notify, redis, metrics=NotifyMetrics.create(registry),
                                      consumer=consumer).run())
    task = asyncio.create_task(_together(*jobs))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("worker stopped")
    finally:
        if llm is not None:
            await llm.close()
        await redis.aclose()
        library.archive.close()
    return 0


async def _together(*jobs) -> None:
    """Run the jobs until one stops; then the others are stopped too."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for finished in done:
            finished.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
