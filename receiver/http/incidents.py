"""`GET /incidents`, `/incidents/{id}` and `/incidents/{id}/postmortem`."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..appkeys import INCIDENTS, POSTMORTEMS, SETTINGS
from ..incidents import Incident, is_incident_id
from .auth import require_token
from .errors import ApiError, InvalidBody, NotFound
from .middleware import validation_detail

log = logging.getLogger(__name__)


class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500)
    status: Literal["open", "resolved"] | None = None


async def list_incidents(request: web.Request) -> web.Response:
    require_token(request, request.app[SETTINGS].read_token)
    try:
        params = ListParams.model_validate(dict(request.query))
    except ValidationError as exc:
        raise InvalidBody(validation_detail(exc)) from None
    summaries = await request.app[INCIDENTS].summaries(limit=params.limit, status=params.status)
    return web.json_response([s.model_dump(mode="json") for s in summaries])


async def get_incident(request: web.Request) -> web.Response:
    incident = await requested_incident(request)
    return web.json_response(incident.public())


async def get_postmortem(request: web.Request) -> web.Response:
    """The file as the team may have completed it; rendered from the record where this host has none."""
    incident = await requested_incident(request)
    writer = request.app[POSTMORTEMS]
    text = await asyncio.to_thread(writer.read, incident)
    if text is None:
        text = writer.render(incident)
    return web.Response(text=text, content_type="text/markdown", charset="utf-8")


async def requested_incident(request: web.Request) -> Incident:
    """The incident the path names, for a caller holding the read token; 400 for a malformed id, 404 for none."""
    require_token(request, request.app[SETTINGS].read_token)
    ident = request.match_info["id"]
    if not is_incident_id(ident):
        raise ApiError("an incident id looks like inc-20260101-0123abcd", error="invalid_incident_id")
    incident = await request.app[INCIDENTS].get(ident)
    if incident is None:
        raise NotFound(f"no incident {ident}")
    return incident


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/incidents", list_incidents)
    app.router.add_get("/incidents/{id}", get_incident)
    app.router.add_get("/incidents/{id}/postmortem", get_postmortem)
