"""`POST /analyze`: analyse the golden signals now (or at a past moment) and answer the report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from agents import (
    AnalysisConfig,
    AnalysisMetrics,
    AnalysisRequest,
    LLMClient,
    Report,
    SignalSource,
    SignalsUnavailable,
    Thresholds,
    analyze,
)

from .appkeys import (
    ANALYSIS_CONFIG,
    ANALYSIS_METRICS,
    INCIDENT_ANALYSIS,
    LLM,
    POSTMORTEM_HOOK,
    QUERIES,
    REGISTRY,
    SETTINGS,
)
from .auth import require_token
from .errors import ApiError, UnsupportedMediaType
from .incidents import IncidentAnalysis
from .metrics_api import utc_moment
from .middleware import json_object_body
from .settings import Settings



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


def analysis_config(settings: Settings) -> AnalysisConfig:
    """The analysis knobs of the service settings."""
    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    return AnalysisConfig(
        thresholds=Thresholds(
            latency_p95_ms=settings.latency_p95_threshold_ms,
            latency_p99_ms=settings.latency_p99_threshold_ms,
            error_rate_5xx_pct=settings.error_rate_5xx_threshold_pct,
            error_rate_5xx_critical_pct=settings.error_rate_5xx_critical_pct,
            error_rate_4xx_pct=settings.error_rate_4xx_threshold_pct,
            memory_used_pct=settings.memory_usage_threshold_pct,
            min_requests_per_minute=settings.min_requests_per_minute,
            traffic_spike_factor=settings.traffic_spike_factor,
        ),
        window_minutes=settings.analysis_window_minutes,
        deadline_seconds=settings.analysis_deadline_seconds,
        anthropic_api_key=key or None,
        anthropic_base_url=settings.anthropic_base_url,
        model=settings.anthropic_model,
        max_tokens=settings.llm_max_tokens,
        llm_timeout_seconds=settings.llm_timeout_seconds,
        max_tool_rounds=settings.llm_max_tool_rounds,
        max_concurrency=settings.llm_max_concurrency,
        max_analyses_per_hour=settings.llm_max_analyses_per_hour,
    )


def analysis_ctx(llm: LLMClient | None = None):
    """Cleanup context for the analysis resources. An `llm` passed in is used and not closed;
    otherwise one is made from the settings (none without an API key) and closed here."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = analysis_config(app[SETTINGS])
        app[ANALYSIS_CONFIG] = config
        app[ANALYSIS_METRICS] = AnalysisMetrics(app[REGISTRY])
        owned = LLMClient.from_config(config) if llm is None else None
        app[LLM] = llm or owned
        if INCIDENT_ANALYSIS not in app:  # tests may bring their own
            app[INCIDENT_ANALYSIS] = incident_analysis(app)
        try:
            yield
        finally:
            if owned is not None:
                await owned.close()

    return ctx


def incident_analysis(app: web.Application) -> IncidentAnalysis:
    return analysis_for_incidents(app[QUERIES], app[ANALYSIS_CONFIG], app[LLM], app[ANALYSIS_METRICS])


def analysis_for_incidents(queries: SignalSource, config: AnalysisConfig, llm: LLMClient | None,
                           metrics: AnalysisMetrics | None) -> IncidentAnalysis:
    """What the incident worker runs: the full analysis when alerts fire, rules only after resolution."""

    async def analyse(request: AnalysisRequest) -> Report:
        return await analyze(queries, request, config=config, llm=llm, metrics=metrics)

    async def recheck(request: AnalysisRequest) -> Report:
        return await analyze(queries, request, config=config, llm=None, metrics=metrics)

    return IncidentAnalysis(analyse=analyse, recheck=recheck)


async def analyze_handler(request: web.Request) -> web.Response:
    app = request.app
    require_token(request, app[SETTINGS].analyze_token)
    body = await _body(request)
    analysis = AnalysisRequest(window_minutes=body.window_minutes, at=body.at, backend=body.backend)
    try:
        report = await analyze(app[QUERIES], analysis, config=app[ANALYSIS_CONFIG], llm=app[LLM],
                               metrics=app[ANALYSIS_METRICS])
    except SignalsUnavailable as exc:
        raise ApiError(f"the metrics could not be read: {exc}", status=503, error="signals_unavailable",
                       headers={"Retry-After": "5"}) from None
    answer: dict[str, Any] = report.model_dump(mode="json")
    if body.postmortem:
        hook = app.get(POSTMORTEM_HOOK)
        answer["postmortem"] = await hook(report) if hook is not None else None
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


async def _body(request: web.Request) -> AnalyzeBody:
    raw = await request.read() if request.can_read_body else b""
    if not raw.strip():
        return AnalyzeBody()
    if request.content_type not in ("application/json", "application/octet-stream"):
        raise UnsupportedMediaType(f"Content-Type {request.content_type!r} is not supported; use application/json")
    return json_object_body(raw, AnalyzeBody, not_an_object={
        "loc": ["body"], "msg": "expected a JSON object", "type": "object_type"})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/analyze", analyze_handler)
