"""`incident-copilot worker`: more incident workers, on this machine or others, sharing one Redis."""

from __future__ import annotations

import asyncio
import logging
import signal

from agents import AnalysisMetrics, LLMClient
from ingestion import MetricsQueries
from prometheus_client import CollectorRegistry

from ..app import connect, incident_worker
from ..incidents import IncidentMetrics, incident_analysis
from ..logging_setup import configure_logging
from ..settings import Settings

log = logging.getLogger(__name__)


async def run(settings: Settings, *, consumer: str | None = None) -> int:
    configure_logging(settings.log_format, settings.log_level)
    if not settings.redis_url:
        log.error("a worker needs REDIS_URL: the Redis the service stores its notifications in")
        return 2
    redis = connect(settings.redis_url)
    config = settings.analysis_config()
    llm = LLMClient.from_config(config)
    registry = CollectorRegistry()
    analysis = incident_analysis(MetricsQueries(redis), config, llm, AnalysisMetrics(registry))
    worker = incident_worker(settings, redis, analysis, metrics=IncidentMetrics.create(registry), consumer=consumer)
    task = asyncio.create_task(worker.run())
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
    return 0
