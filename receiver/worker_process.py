"""`incident-copilot worker`: more incident workers, on this machine or others, sharing one Redis."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry

from agents import AnalysisMetrics, LLMClient
from ingestion import MetricsQueries

from .analyze_api import analysis_config, analysis_for_incidents
from .app import connect
from .incidents import run_worker
from .logging_setup import configure_logging
from .settings import Settings

log = logging.getLogger(__name__)


async def run(settings: Settings, *, consumer: str | None = None) -> int:
    configure_logging(settings.log_format, settings.log_level)
    if not settings.redis_url:
        log.error("a worker needs REDIS_URL: the Redis the service stores its notifications in")
        return 2
    redis = connect(settings.redis_url)
    config = analysis_config(settings)
    llm = LLMClient.from_config(config)
    registry = CollectorRegistry()
    analysis = analysis_for_incidents(MetricsQueries(redis), config, llm, AnalysisMetrics(registry))
    task = asyncio.create_task(run_worker(redis, analysis, settings, registry=registry, consumer=consumer))
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
