"""`GET /incidents`, `/incidents/{id}` and `/incidents/{id}/postmortem`, and the in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .appkeys import (
    ALERT_STREAM,
    INCIDENT_ANALYSIS,
    INCIDENT_METRICS,
    INCIDENTS,
    POSTMORTEMS,
    REDIS,
    REGISTRY,
    SETTINGS,
)
from .errors import ApiError, InvalidBody, NotFound
from .incidents import (
    AlertStream,
    Incident,
    IncidentMetrics,
    IncidentRepository,
    PostmortemWriter,
    build_worker,
    is_incident_id,
)
from .middleware import validation_detail

log = logging.getLogger(__name__)


class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500)
    status: Literal["open", "resolved"] | None = None


async def list_incidents(request: web.Request) -> web.Response:
    try:
        params = ListParams.model_validate(dict(request.query))
    except ValidationError as exc:
        raise InvalidBody(validation_detail(exc)) from None
    summaries = await request.app[INCIDENTS].summaries(limit=params.limit, status=params.status)
    return web.json_response([s.model_dump(mode="json") for s in summaries])


async def get_incident(request: web.Request) -> web.Response:
    incident = await _incident(request)
    return web.json_response(incident.public())


async def get_postmortem(request: web.Request) -> web.Response:
    """The file as the team may have completed it; rendered from the record where this host has none."""
    incident = await _incident(request)
    writer = request.app[POSTMORTEMS]
    text = await asyncio.to_thread(writer.read, incident)
    if text is None:
        text = writer.render(incident)
    return web.Response(text=text, content_type="text/markdown", charset="utf-8")


async def _incident(request: web.Request) -> Incident:
    ident = request.match_info["id"]
    if not is_incident_id(ident):
        raise ApiError("an incident id looks like inc-20260101-0123abcd", error="invalid_incident_id")
    incident = await request.app[INCIDENTS].get(ident)
    if incident is None:
        raise NotFound(f"no incident {ident}")
    return incident


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """The incident store, the alert stream and, with `run_worker`, a worker in this process."""
    settings = app[SETTINGS]
    redis = app[REDIS]
    app[ALERT_STREAM] = AlertStream(redis)
    app[INCIDENTS] = IncidentRepository(redis)
    app[POSTMORTEMS] = PostmortemWriter(settings.postmortem_dir, slo_target_pct=settings.slo_target_pct)
    app[INCIDENT_METRICS] = metrics = IncidentMetrics.create(app[REGISTRY])
    analysis = app.get(INCIDENT_ANALYSIS)
    task: asyncio.Task | None = None
    if settings.run_worker and analysis is not None:
        worker = build_worker(redis, analysis, settings, metrics=metrics)
        task = asyncio.create_task(worker.run(), name="incident-worker")
        task.add_done_callback(_stopped)
    elif settings.run_worker:
        log.warning("no incident analysis configured: notifications are stored, not processed, in this process")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _stopped(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("incident worker stopped", exc_info=task.exception())


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/incidents", list_incidents)
    app.router.add_get("/incidents/{id}", get_incident)
    app.router.add_get("/incidents/{id}/postmortem", get_postmortem)
