"""`GET /ui/`, `/ui/incidents/{id}`, their charts and `/ui/metrics`: pages for people following incidents.

Everything is rendered here, autoescaped (alerts and logs are untrusted), and the pages run no
script: a meta refresh keeps an open incident current. The policy each page sends lets in only
this service's own stylesheet and images, so nothing is fetched from elsewhere and the pages
work in an air-gapped network. With READ_TOKEN set, a browser is asked for it (basic auth,
any user name, the token as password).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ..appkeys import INCIDENT_CHARTS, INCIDENTS, QUERIES, SETTINGS
from ..charts import draw_svg, sparkline
from ..http import NotFound, Unauthorized, require_token, requested_incident
from ..incidents import (
    Incident,
    TimelineEntry,
    chart_backend,
    format_duration,
    format_time,
    format_value,
    golden_signal_charts,
    is_chart_file,
    is_incident_id,
)
from ..resources import resource_dir

PAGE_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
# An SVG shown as an image runs no script; its own <style> colours it for light and dark pages.
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
LIST_LIMIT = 100
REFRESH_SECONDS = 15
METRICS_MINUTES = 60
_STYLESHEET = web.AppKey("ui_stylesheet", bytes)


def _require_read(request: web.Request) -> None:
    try:
        require_token(request, request.app[SETTINGS].read_token)
    except Unauthorized:  # a browser asks for basic credentials, not for a bearer token
        raise Unauthorized("the read token is required (basic auth, the token as password)",
                           headers={"WWW-Authenticate": 'Basic realm="incident-copilot", charset="UTF-8"'}) from None


def _page(template: str, request: web.Request, context: dict, *, status: int = 200) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


async def incident_list(request: web.Request) -> web.Response:
    _require_read(request)
    status = request.query.get("status") if request.query.get("status") in ("open", "resolved") else None
    backend = request.query.get("backend", "")[:200]
    repository = request.app[INCIDENTS]
    summaries = await repository.summaries(limit=LIST_LIMIT, status=status)
    found = await asyncio.gather(*(repository.get(s.id) for s in summaries))
    rows = [(incident, chart_backend(incident)) for incident in found if incident is not None]
    backends = sorted({b for _, b in rows if b})
    if backend:
        rows = [(incident, b) for incident, b in rows if b == backend]
    return _page("ui/list.html.j2", request, {
        "rows": rows, "backends": backends, "status": status, "backend": backend, "limit": LIST_LIMIT,
        "refresh": REFRESH_SECONDS if any(i.status == "open" for i, _ in rows) else None})


async def incident_page(request: web.Request) -> web.Response:
    incident = await _incident(request)
    charts = await request.app[INCIDENT_CHARTS].charts(incident)
    report = incident.report
    timeline = list(incident.timeline)
    if report is not None and report.onset is not None:
        changed = "; ".join(report.onset.changes[:3]) or report.onset.signal
        timeline.append(TimelineEntry(at=report.onset.at, kind="onset",
                                      text=f"Signals changed in the logs: {changed} (first bad minute)."))
    runbooks = {a.annotations.get("runbook_url", "").strip(): a.alertname for a in incident.alerts}
    return _page("ui/incident.html.j2", request, {
        "incident": incident, "report": report, "backend": chart_backend(incident),
        "charts": [(f"{name}.svg", chart) for name, chart in charts],
        "timeline": sorted(timeline, key=lambda e: e.at),
        "runbooks": [(name or "runbook", url) for url, name in runbooks.items() if _web_url(url)],
        "refresh": REFRESH_SECONDS if incident.status == "open" else None})


async def incident_chart(request: web.Request) -> web.Response:
    incident = await _incident(request)
    name = request.match_info["name"]
    if not is_chart_file(name):
        raise NotFound(f"no chart {name}")
    charts = dict(await request.app[INCIDENT_CHARTS].charts(incident))
    chart = charts.get(name.removesuffix(".svg"))
    if chart is None:
        raise NotFound("no series to draw yet")
    return _svg(draw_svg(chart))


async def metrics_page(request: web.Request) -> web.Response:
    _require_read(request)
    backend = request.query.get("backend", "")[:200] or None
    site = await request.app[QUERIES].series(METRICS_MINUTES, None, None, limit=20)
    rows = [(row.backend, row.requests, [p.requests for p in row.points], [p.error_rate_5xx_pct for p in row.points],
             [p.p99_ms for p in row.points]) for row in site.by_backend]
    known = {row[0] for row in rows}
    return _page("ui/metrics.html.j2", request, {
        "minutes": METRICS_MINUTES, "rows": rows, "backend": backend if backend in known else None,
        "charts": ("latency", "errors", "traffic"), "end": site.end, "more": site.more_backends,
        "refresh": None})


async def metrics_chart(request: web.Request) -> web.Response:
    _require_read(request)
    name = request.match_info["name"]
    if not is_chart_file(name):
        raise NotFound(f"no chart {name}")
    backend = request.query.get("backend", "")[:200] or None
    series = await request.app[QUERIES].series(METRICS_MINUTES, None, backend, limit=1)
    charts = dict(golden_signal_charts(series.points, backend, request.app[SETTINGS].thresholds,
                                       about=f", the last {METRICS_MINUTES} minutes",
                                       now=datetime.now(timezone.utc)))
    return _svg(draw_svg(charts[name.removesuffix(".svg")]))


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_STYLESHEET], content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "max-age=300"})


async def to_list(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


def _svg(text: str) -> web.Response:
    return web.Response(text=text, content_type="image/svg+xml", charset="utf-8",
                        headers={"Content-Security-Policy": CHART_POLICY, "Cache-Control": "no-store"})


async def _incident(request: web.Request) -> Incident:
    _require_read(request)  # first, so that a browser is asked for the token
    return await requested_incident(request)


def _web_url(value: object) -> str | None:
    """An http(s) URL to link to; None for anything else (javascript:, data:, relative paths)."""
    text = "" if value is None else str(value).strip()
    parts = urlsplit(text)
    return text if parts.scheme.lower() in ("http", "https") and parts.netloc and len(text) <= 2048 else None


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    return format_duration((now or datetime.now(timezone.utc)) - value) + " ago"


def _duration(value: timedelta | None) -> str:
    return "—" if value is None else format_duration(value)


def setup_routes(app: web.Application) -> None:
    templates = resource_dir("templates")
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(templates)), autoescape=True,
                               undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update({"time": format_time, "duration": _duration, "value": format_value, "web_url": _web_url,
                        "ago": _ago, "sparkline": sparkline})
    env.tests["incident_id"] = lambda value: isinstance(value, str) and is_incident_id(value)
    app[_STYLESHEET] = (templates / "ui" / "style.css").read_bytes()
    app.router.add_get("/ui", to_list)
    app.router.add_get("/ui/", incident_list)
    app.router.add_get("/ui/incidents/{id}", incident_page)
    app.router.add_get("/ui/incidents/{id}/charts/{name}", incident_chart)
    app.router.add_get("/ui/metrics", metrics_page)
    app.router.add_get("/ui/metrics/charts/{name}", metrics_chart)
    app.router.add_get("/ui/static/style.css", stylesheet)
