"""`POST /analyze`: analyse the golden signals now (or at a past moment) and answer the report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from agents import AnalysisRequest, SignalsUnavailable, analyze
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from ..appkeys import (
    ANALYSIS_CONFIG,
    ARCHIVE,
    ANALYSIS_METRICS,
    LLM,
    POSTMORTEMS,
    QUERIES,
    SETTINGS,
)
from .auth import require_token
from .errors import ApiError, UnsupportedMediaType
from .metrics import utc_moment
from .middleware import json_object_body, read_body


class AnalyzeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_minutes: int | None = Field(None, ge=1, le=360, description="Minutes before `at`; default the setting.")
    at: AwareDatetime | None = Field(None, description="RFC 3339 end of the window; default now.")
    backend: str | None = Field(None, min_length=1, max_length=200, description="Analyse one backend only.")
    postmortem: bool = Field(False, description="Also render a post-mortem draft of the report.")

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc_moment(value)


async def analyze_handler(request: web.Request) -> web.Response:
    app = request.app
    require_token(request, app[SETTINGS].analyze_token)
    body = await _body(request)
    analysis = AnalysisRequest(window_minutes=body.window_minutes, at=body.at, backend=body.backend)
    try:
        report = await analyze(app[QUERIES], analysis, config=app[ANALYSIS_CONFIG], llm=app[LLM],
                               metrics=app[ANALYSIS_METRICS], memory=app.get(ARCHIVE))
    except SignalsUnavailable as exc:
        raise ApiError(f"the metrics could not be read: {exc}", status=503, error="signals_unavailable",
                       headers={"Retry-After": "5"}) from None
    answer: dict[str, Any] = report.model_dump(mode="json")
    if body.postmortem:
        answer["postmortem"] = app[POSTMORTEMS].render_draft(report)
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


async def _body(request: web.Request) -> AnalyzeBody:
    raw = await read_body(request, request.app[SETTINGS].max_body_bytes) if request.can_read_body else b""
    if not raw.strip():
        return AnalyzeBody()
    if request.content_type not in ("application/json", "application/octet-stream"):
        raise UnsupportedMediaType(f"Content-Type {request.content_type!r} is not supported; use application/json")
    return json_object_body(raw, AnalyzeBody, not_an_object={
        "loc": ["body"], "msg": "expected a JSON object", "type": "object_type"})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/analyze", analyze_handler)
