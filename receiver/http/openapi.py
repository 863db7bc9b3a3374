"""The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json`.

Bodies, answers and query parameters come from the models the handlers themselves validate
and serialise with, so the document changes when they do. Answers the handlers assemble as
plain dicts are described by the small models below.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib import metadata
from typing import Any, Literal

import orjson
from agents import Report, SimilarIncident
from aiohttp import web
from ingestion import METRIC_VIEWS, Health, LogEntry
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..incidents import Incident, IncidentSummary, Notification
from .analyze import AnalyzeBody
from .incidents import ListParams
from .logs import JSON_TYPES, NDJSON_TYPES, TEXT_TYPES
from .metrics import WindowParams

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loc: list[str | int] = Field(description="Where: the field's path in the body or query.")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="A stable name for the failure, e.g. `invalid_body` or `redis_unavailable`.")
    detail: str | list[FieldError] | None = Field(description="A sentence, or the field errors of a 422.")


class LineError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: int = Field(ge=1, description="1-based position of the line or entry in the body.")
    reason: str


class BatchAnswer(BaseModel):
    """What became of each line of a `POST /logs` body."""

    model_config = ConfigDict(extra="forbid")

    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)
    errors: list[LineError] = Field(max_length=10, description="The first rejected lines.")


class BatchRejection(BatchAnswer):
    """A batch of which nothing was accepted."""

    error: Literal["empty", "nothing_accepted"]
    detail: str


class AlertsStored(BaseModel):
    """The notification is in the alert stream; the incident worker takes it from there."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["stored"]
    entry: str = Field(description="Id of the stream entry holding the notification.")
    alerts: int = Field(ge=1, description="Alerts stored from the notification (at most `ALERTS_MAX_ALERTS`).")
    truncatedAlerts: int = Field(ge=0, description="Alerts the notification did not carry (Alertmanager's "
                                                   "`max_alerts`) or that were not kept here.")


class PostmortemDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_name: str = Field(description="The name the post-mortem would have in POSTMORTEM_DIR; nothing is written.")
    markdown: str


class AnalyzeAnswer(Report):
    postmortem: PostmortemDraft | None = Field(None, description="Present when the body asked for it.")


class IncidentDurations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_to_detect: float | None = Field(description="Seconds from onset to the first notification.")
    time_to_diagnose: float | None = Field(description="Seconds from the first notification to the first report.")
    time_to_resolve: float | None = Field(description="Seconds from onset to resolution.")


# What `Incident.public()` leaves out of the record: the bookkeeping of deliveries.
INCIDENT_BOOKKEEPING = frozenset({"applied", "seen", "analysis_due", "recheck_due", "revision", "report_revision"})

IncidentDetail = create_model(
    "IncidentDetail",
    # `public()` dumps every field it keeps, so each one is always there.
    __config__=ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True),
    __doc__="One incident with its alerts, timeline and latest report.",
    **{name: (info.annotation, info) for name, info in Incident.model_fields.items()
       if name not in INCIDENT_BOOKKEEPING},
    severity=(str, Field(description="The worst severity the alerts declared, else the report's verdict.")),
    similar=(list[SimilarIncident], Field(description="Past incidents like this one, best first, as its latest "
                                                      "analysis recalled them; empty when none is similar.")),
    analysis_pending=(bool, Field(description="An analysis is owed and not written yet.")),
    recheck_pending=(bool, Field(description="A check after the resolution is owed.")),
    recheck_due_at=(datetime | None, Field(description="When the owed check after the resolution is due.")),
    durations_seconds=(IncidentDurations, ...),
)

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    *((view.model, "serialization") for view in METRIC_VIEWS),
    (Health, "serialization"),
    (ErrorBody, "serialization"),
    (BatchAnswer, "serialization"),
    (BatchRejection, "serialization"),
    (AlertsStored, "serialization"),
    (AnalyzeAnswer, "serialization"),
    (IncidentSummary, "serialization"),
    (IncidentDetail, "serialization"),
    (LogEntry, "validation"),
    (AnalyzeBody, "validation"),
    (Notification, "validation"),
]

# Token-protected operations and the setting that holds each token.
TOKEN_SETTINGS = {
    ("post", "/logs"): "INGEST_TOKEN",
    ("post", "/analyze"): "ANALYZE_TOKEN",
    ("post", "/alerts"): "WEBHOOK_TOKEN",
    ("get", "/incidents"): "READ_TOKEN",
    ("get", "/incidents/{id}"): "READ_TOKEN",
    ("get", "/incidents/{id}/postmortem"): "READ_TOKEN",
    ("get", "/prometheus/metrics"): "READ_TOKEN",
    **{("get", view.path): "READ_TOKEN" for view in METRIC_VIEWS},
}

_DESCRIPTION = """\
Golden signals from HAProxy logs, Alertmanager-triggered analysis and post-mortem drafts.

Every response carries an `X-Request-ID`: the caller's when it is 1 to 128 characters of
`A-Za-z0-9._:-`, else a new one. Errors are JSON `{"error": ..., "detail": ...}`; a 4xx is
final, a 503 means try again (after `Retry-After` seconds where given). A request line or
header longer than 8190 bytes is refused by the HTTP server itself, with a plain-text 400.

Request bodies may be sent with `Content-Encoding: gzip` or `deflate` (or `identity`); another
encoding is answered 415, bytes that are not what their encoding says 400, and the size limits
apply to the decoded body. A body that does not arrive within `HTTP_BODY_TIMEOUT_SECONDS` is
answered 408. A connection beyond `HTTP_MAX_CONNECTIONS` is answered 503 before its request is
read; one that takes longer than `HTTP_HEADER_TIMEOUT_SECONDS` to send its first request head is
closed. Every response carries `X-Content-Type-Options: nosniff` and a `Content-Security-Policy`
that allows nothing.
"""


def openapi_document() -> dict[str, Any]:
    """The whole document as a JSON-ready dict."""
    refs, defs = models_json_schema(_MODELS, ref_template=REF)

    def ref(model: type[BaseModel]) -> dict[str, str]:
        mode = "validation" if (model, "validation") in refs else "serialization"
        return refs[(model, mode)]

    paths: dict[str, dict[str, Any]] = {
        "/logs": {"post": _post_logs(ref)},
        "/analyze": {"post": _post_analyze(ref)},
        "/alerts": {"post": _post_alerts(ref)},
        "/incidents": {"get": _list_incidents(ref)},
        "/incidents/{id}": {"get": _get_incident(ref)},
        "/incidents/{id}/postmortem": {"get": _get_postmortem()},
        "/health": {"get": _health(ref)},
        "/prometheus/metrics": {"get": _prometheus()},
        "/openapi.json": {"get": _openapi()},
    }
    window = _query_parameters(WindowParams)
    for view in METRIC_VIEWS:
        paths[view.path] = {"get": {
            "operationId": "metrics_" + view.name,
            "tags": ["metrics"],
            "summary": view.summary,
            "parameters": [window[name] for name in view.parameters],
            "responses": {"200": _json("The view of the window.", ref(view.model)), **_errors(422, 503)},
        }}
    for (method, path), setting in TOKEN_SETTINGS.items():
        operation = paths[path][method]
        operation["security"] = [{}, {"bearerToken": []}, {"basicToken": []}]
        operation["description"] = (operation.get("description", "") + f"\n\nWith `{setting}` set, the request "
                                    "must carry that token (bearer, or basic auth with the token as password); "
                                    "without it the route is open.").strip()
        operation["responses"].update(_errors(401))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Incident Copilot", "version": _version(), "description": _DESCRIPTION,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "tags": [{"name": name} for name in ("logs", "metrics", "analysis", "alerts", "incidents", "service")],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(defs["$defs"].items())),
            "headers": {
                "RequestId": {"description": "The caller's request id, or a new one.", "required": True,
                              "schema": {"type": "string"}},
                "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}},
                "WwwAuthenticate": {"description": "The scheme to authenticate with.", "required": True,
                                    "schema": {"type": "string"}},
            },
            "securitySchemes": {
                "bearerToken": {"type": "http", "scheme": "bearer",
                                "description": "`Authorization: Bearer <token>`; only checked where the route's "
                                               "token setting is set (`READ_TOKEN` for the reads)."},
                "basicToken": {"type": "http", "scheme": "basic",
                               "description": "Basic auth with any user name and the token as password."},
            },
        },
    }


def _post_logs(ref) -> dict[str, Any]:
    entries = {"anyOf": [ref(LogEntry), {"type": "array", "items": ref(LogEntry)}]}
    content: dict[str, Any] = {}
    for kind in sorted(TEXT_TYPES):
        content[kind] = {"schema": {"type": "string", "description": "HAProxy `option httplog` lines, bare or "
                                                                     "inside RFC 3164 / RFC 5424 syslog."}}
    for kind in sorted(JSON_TYPES):
        content[kind] = {"schema": entries}
    for kind in sorted(NDJSON_TYPES):
        content[kind] = {"schema": {"type": "string", "description": "One log entry object a line."}}
    rejection = {"anyOf": [ref(BatchRejection), ref(ErrorBody)]}
    return {
        "operationId": "post_logs",
        "tags": ["logs"],
        "summary": "Ingest logs",
        "description": "A bad line never poisons its batch: the answer says what became of each.",
        "requestBody": {"required": True, "content": content},
        "responses": {
            "202": _json("Some lines were accepted.", ref(BatchAnswer)),
            "400": _json("Nothing was accepted, the body was empty, its JSON does not parse, or its "
                         "content encoding is broken.", rejection),
            "413": _json("The body is larger than `MAX_BODY_BYTES` (once decoded).", ref(ErrorBody)),
            "415": _json("Another content type or content encoding.", ref(ErrorBody)),
            "422": _json("JSON of the wrong types.", rejection),
            **_errors(408, 503),
        },
    }


def _post_analyze(ref) -> dict[str, Any]:
    return {
        "operationId": "analyze",
        "tags": ["analysis"],
        "summary": "Analyse the golden signals now, or at a past moment",
        "requestBody": {"required": False, "content": {"application/json": {"schema": ref(AnalyzeBody)}}},
        "responses": {
            "200": _json("The report.", ref(AnalyzeAnswer)),
            "400": _json("The JSON does not parse, or the content encoding is broken.", ref(ErrorBody)),
            **_errors(408, 413, 415, 422, 503),
        },
    }


def _post_alerts(ref) -> dict[str, Any]:
    return {
        "operationId": "post_alerts",
        "tags": ["alerts"],
        "summary": "Alertmanager webhook (version 4 payload)",
        "description": "Answers only once the notification is stored; Alertmanager retries on 5xx only. "
                       "A notification of more than `ALERTS_MAX_ALERTS` alerts is stored with its first ones, "
                       "the rest counted in `truncatedAlerts`; a body over `ALERTS_MAX_BODY_BYTES` is refused.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref(Notification)}}},
        "responses": {
            "200": _json("Stored for the incident worker.", ref(AlertsStored)),
            "400": _json("The JSON does not parse, or the content encoding is broken.", ref(ErrorBody)),
            **_errors(408, 413, 415, 422, 503),
        },
    }


def _list_incidents(ref) -> dict[str, Any]:
    return {
        "operationId": "list_incidents",
        "tags": ["incidents"],
        "summary": "Incidents, newest first",
        "parameters": list(_query_parameters(ListParams).values()),
        "responses": {
            "200": _json("Incident summaries.", {"type": "array", "items": ref(IncidentSummary)}),
            **_errors(422, 503),
        },
    }


INCIDENT_ID_PATTERN = "^inc-[0-9]{8}-[0-9a-f]{8}$"
_INCIDENT_ID = {
    "name": "id", "in": "path", "required": True, "description": "e.g. `inc-20260101-0123abcd`; anything else "
    "is answered 400.", "schema": {"type": "string", "pattern": INCIDENT_ID_PATTERN},
}


def _get_incident(ref) -> dict[str, Any]:
    return {
        "operationId": "get_incident",
        "tags": ["incidents"],
        "summary": "One incident with its timeline and report",
        "parameters": [_INCIDENT_ID],
        "responses": {
            "200": _json("The incident.", ref(IncidentDetail)),
            "400": _json("Not an incident id.", _ERROR_REF),
            **_errors(404, 503),
        },
    }


def _get_postmortem() -> dict[str, Any]:
    return {
        "operationId": "get_postmortem",
        "tags": ["incidents"],
        "summary": "The incident's post-mortem",
        "description": "The file as the team may have completed it; rendered from the record where this host "
                       "has none.",
        "parameters": [_INCIDENT_ID],
        "responses": {
            "200": _text("The post-mortem.", "text/markdown"),
            "400": _json("Not an incident id.", _ERROR_REF),
            **_errors(404, 503),
        },
    }


def _health(ref) -> dict[str, Any]:
    unavailable = _json("Redis does not answer.", ref(Health))
    unavailable["headers"]["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
    return {
        "operationId": "health",
        "tags": ["service"],
        "summary": "Whether Redis answers",
        "responses": {
            "200": _json("Redis answers.", ref(Health)),
            "503": unavailable,
        },
    }


def _prometheus() -> dict[str, Any]:
    return {
        "operationId": "prometheus_metrics",
        "tags": ["service"],
        "summary": "Prometheus text exposition",
        "responses": {"200": _text("The exposition (format 0.0.4).", "text/plain"), **_errors(503)},
    }


def _openapi() -> dict[str, Any]:
    return {
        "operationId": "openapi",
        "tags": ["service"],
        "summary": "This document",
        "responses": {"200": _json("The OpenAPI document.", {"type": "object"})},
    }


_ERROR_REF = {"$ref": REF.format(model=ErrorBody.__name__)}
_ERRORS = {
    401: "A token is required and the request did not carry it.",
    408: "The body did not arrive within `HTTP_BODY_TIMEOUT_SECONDS`.",
    404: "No such incident.",
    413: "The body is too large.",
    415: "Another content type or content encoding.",
    422: "Values of the wrong type or out of range; `detail` lists the fields.",
    503: "Redis is not reachable; try again.",
}


def _errors(*statuses: int) -> dict[str, Any]:
    answers = {}
    for status in statuses:
        answer = _json(_ERRORS[status], _ERROR_REF)
        if status == 401:
            answer["headers"]["WWW-Authenticate"] = {"$ref": "#/components/headers/WwwAuthenticate"}
        if status == 503:
            answer["headers"]["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
        answers[str(status)] = answer
    return answers


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "headers": _request_id(), "content": {"application/json": {"schema": schema}}}


def _text(description: str, kind: str) -> dict[str, Any]:
    return {"description": description, "headers": _request_id(), "content": {kind: {"schema": {"type": "string"}}}}


def _request_id() -> dict[str, Any]:
    return {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}}


def _query_parameters(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Each field of a query model as an OpenAPI parameter (`null` is what leaving it out means)."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    parameters = {}
    for name, field in schema["properties"].items():
        field = dict(field)
        field.pop("title", None)
        description = field.pop("description", None)
        if "anyOf" in field:
            branches = [b for b in field.pop("anyOf") if b != {"type": "null"}]
            if field.get("default", "") is None:
                del field["default"]
            field = {**branches[0], **field} if len(branches) == 1 else {"anyOf": branches, **field}
        parameter = {"name": name, "in": "query", "required": name in required, "schema": field}
        if description:
            parameter["description"] = description
        parameters[name] = parameter
    return parameters


def _version() -> str:
    try:
        return metadata.version("incident-copilot")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@cache
def _document_json() -> bytes:
    # Built on first request, not with each app: it takes tens of milliseconds and never changes.
    return orjson.dumps(openapi_document())


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_document_json(), content_type="application/json")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)
