"""`GET /metrics/*`, `GET /health` and `GET /prometheus/metrics`."""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web
from ingestion import collect_metrics, render_metrics
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from ..appkeys import QUERIES, REDIS, REGISTRY
from .errors import InvalidBody
from .middleware import validation_detail

MAX_WINDOW_MINUTES = 24 * 60


class WindowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = Field(5, ge=1, le=MAX_WINDOW_MINUTES, description="Minutes, ending at `at`.")
    at: AwareDatetime | None = Field(None, description="RFC 3339 end of the window; default now.")
    backend: str | None = Field(None, min_length=1, max_length=200)
    limit: int = Field(10, ge=1, le=100, description="Rows per list (paths).")
    minutes: int = Field(30, ge=1, le=MAX_WINDOW_MINUTES, description="Points of `/metrics/rps`.")

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc_moment(value)


EARLIEST = datetime(1970, 1, 2, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 1, tzinfo=timezone.utc)


def utc_moment(value: datetime | None) -> datetime | None:
    """An `at` in UTC, refused (422) where a window ending there could not be computed."""
    if value is None:
        return None
    try:
        moment = value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("must be between 1970 and 9999") from None
    if not EARLIEST <= moment <= LATEST:
        raise ValueError("must be between 1970 and 9999")
    return moment


def _params(request: web.Request, allowed: set[str]) -> WindowParams:
    raw = dict(request.query)
    unknown = set(raw) - allowed
    if unknown:
        raise InvalidBody([{"loc": ["query", name], "msg": "unknown parameter", "type": "extra_forbidden"}
                           for name in sorted(unknown)])
    try:
        return WindowParams.model_validate(raw)
    except ValidationError as exc:
        raise InvalidBody(validation_detail(exc)) from None


def _json(model: BaseModel) -> web.Response:
    return web.Response(body=model.model_dump_json(), content_type="application/json")


_WAB = {"window", "at", "backend"}
_WA = {"window", "at"}


async def overview(request: web.Request) -> web.Response:
    p = _params(request, _WAB)
    return _json(await request.app[QUERIES].overview(p.window, p.at, p.backend))


async def status_codes(request: web.Request) -> web.Response:
    p = _params(request, _WAB)
    return _json(await request.app[QUERIES].status_codes(p.window, p.at, p.backend))


async def response_times(request: web.Request) -> web.Response:
    p = _params(request, _WAB)
    return _json(await request.app[QUERIES].response_times(p.window, p.at, p.backend))


async def backends(request: web.Request) -> web.Response:
    p = _params(request, _WA)
    return _json(await request.app[QUERIES].backends(p.window, p.at))


async def frontends(request: web.Request) -> web.Response:
    p = _params(request, _WA)
    return _json(await request.app[QUERIES].frontends(p.window, p.at))


async def paths(request: web.Request) -> web.Response:
    p = _params(request, _WAB | {"limit"})
    return _json(await request.app[QUERIES].paths(p.window, p.at, p.backend, p.limit))


async def termination_states(request: web.Request) -> web.Response:
    p = _params(request, _WAB)
    return _json(await request.app[QUERIES].termination_states(p.window, p.at, p.backend))


async def rps(request: web.Request) -> web.Response:
    p = _params(request, {"minutes", "at", "backend"})
    return _json(await request.app[QUERIES].rps(p.minutes, p.at, p.backend))


async def saturation(request: web.Request) -> web.Response:
    p = _params(request, _WAB)
    return _json(await request.app[QUERIES].saturation(p.window, p.at, p.backend))


async def health(request: web.Request) -> web.Response:
    try:
        await request.app[REDIS].ping()
    except Exception as exc:  # any failure to reach Redis makes the service unhealthy
        return web.json_response({"status": "unavailable", "redis": "unreachable", "detail": str(exc)}, status=503)
    return web.json_response({"status": "ok", "redis": "ok", "detail": None})


async def prometheus(request: web.Request) -> web.Response:
    families = await collect_metrics(request.app[REDIS])
    body = render_metrics(families) + generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/metrics/overview", overview)
    r.add_get("/metrics/status-codes", status_codes)
    r.add_get("/metrics/response-times", response_times)
    r.add_get("/metrics/backends", backends)
    r.add_get("/metrics/frontends", frontends)
    r.add_get("/metrics/paths", paths)
    r.add_get("/metrics/termination-states", termination_states)
    r.add_get("/metrics/rps", rps)
    r.add_get("/metrics/saturation", saturation)
    r.add_get("/health", health)
    r.add_get("/prometheus/metrics", prometheus)
