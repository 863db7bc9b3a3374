"""`GET /metrics/*`, `GET /health` and `GET /prometheus/metrics`."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from aiohttp import web
from aiohttp.typedefs import Handler
from ingestion import METRIC_VIEWS, MetricView, collect_metrics, is_cluster, render_metrics
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

from ..appkeys import EXPOSITION, QUERIES, REDIS, SETTINGS
from .auth import require_token
from .errors import InvalidBody
from .middleware import validation_detail

log = logging.getLogger(__name__)

MAX_WINDOW_MINUTES = 24 * 60


class WindowParams(BaseModel):
    """Every parameter of the metric views, with HTTP's bounds; a view allows those it takes."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(5, ge=1, le=MAX_WINDOW_MINUTES, description="Minutes, ending at `at`.")
    at: AwareDatetime | None = Field(None, description="RFC 3339 end of the window; default now.")
    backend: str | None = Field(None, min_length=1, max_length=200)
    limit: int = Field(10, ge=1, le=100, description="Rows per list (routes, servers, backends of a series).")
    minutes: int = Field(30, ge=1, le=MAX_WINDOW_MINUTES,
                         description="One-minute points of `/metrics/rps` and `/metrics/series`.")
    route: str | None = Field(None, min_length=1, max_length=300,
                              description='One route as `/metrics/paths` names it, e.g. "POST /api/checkout".')

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


def _params(request: web.Request, allowed: frozenset[str]) -> WindowParams:
    raw = dict(request.query)
    unknown = set(raw) - allowed
    if unknown:
        raise InvalidBody([{"loc": ["query", name], "msg": "unknown parameter", "type": "extra_forbidden"}
                           for name in sorted(unknown)])
    try:
        return WindowParams.model_validate(raw)
    except ValidationError as exc:
        raise InvalidBody(validation_detail(exc)) from None


# Above this many rows, an answer is serialised off the event loop: a day of many backends is
# megabytes of JSON, tens of milliseconds during which nothing else would be served.
_BIG_ANSWER_ROWS = 500


async def _json(model: BaseModel) -> web.Response:
    rows = sum(len(v) for v in model.__dict__.values() if isinstance(v, list | dict))
    body = await asyncio.to_thread(model.model_dump_json) if rows > _BIG_ANSWER_ROWS else model.model_dump_json()
    return web.Response(body=body, content_type="application/json")


def _serve(view: MetricView) -> Handler:
    """The handler of `GET /metrics/<view>`: the query parameters the view takes, and its answer."""
    allowed = frozenset(view.parameters)

    async def handler(request: web.Request) -> web.Response:
        require_token(request, request.app[SETTINGS].read_token)
        params = _params(request, allowed)
        return await _json(await view.read(request.app[QUERIES], params.model_dump()))

    return handler


async def health(request: web.Request) -> web.Response:
    redis = request.app[REDIS]
    try:
        await redis.ping()
        # A Cluster that lost a master answers PING and refuses every key once it declares itself down.
        state = (await redis.cluster_info()).get("cluster_state", "ok") if is_cluster(redis) else "ok"
    except Exception as exc:  # any failure to reach Redis makes the service unhealthy
        log.warning("health check: redis unreachable: %s", exc)  # the address stays in the log
        return web.json_response({"status": "unavailable", "redis": "unreachable", "detail": "redis unreachable"},
                                 status=503, headers={"Retry-After": "5"})
    if state != "ok":
        log.warning("health check: the redis cluster is %s", state)
        return web.json_response({"status": "unavailable", "redis": "cluster_down",
                                   "detail": f"the Redis Cluster is {state}: a master is down"},
                                 status=503, headers={"Retry-After": "5"})
    return web.json_response({"status": "ok", "redis": "ok", "detail": None})


async def prometheus(request: web.Request) -> web.Response:
    require_token(request, request.app[SETTINGS].read_token)
    families = await collect_metrics(request.app[REDIS])
    body = render_metrics(families) + generate_latest(request.app[EXPOSITION])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_routes(app: web.Application) -> None:
    r = app.router
    for view in METRIC_VIEWS:
        r.add_get(view.path, _serve(view))
    r.add_get("/health", health)
    r.add_get("/prometheus/metrics", prometheus)
