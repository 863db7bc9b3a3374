"""`POST /logs`: JSON, NDJSON or raw HAProxy lines; a bad line never poisons its batch."""

from __future__ import annotations

import codecs

import orjson
from aiohttp import web
from ingestion import Batch, LogEntry
from pydantic import ValidationError

from ..appkeys import INTAKE, SETTINGS
from .auth import require_token
from .errors import ApiError, InvalidBody, UnsupportedMediaType
from .middleware import read_body, validation_detail

TEXT_TYPES = {"text/plain"}
JSON_TYPES = {"application/json"}
NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}


async def post_logs(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    require_token(request, settings.ingest_token)
    kind = request.content_type
    if kind not in TEXT_TYPES | JSON_TYPES | NDJSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {kind!r} is not supported; use application/json, application/x-ndjson or text/plain"
        )
    charset = request.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        raise UnsupportedMediaType(f"unknown charset {charset!r}") from None
    body = await read_body(request, settings.max_body_bytes)
    intake = request.app[INTAKE]
    if kind in TEXT_TYPES:
        text = body.decode(charset, errors="replace")
        batch = await intake.text(text.splitlines(), source="http")
    elif kind in NDJSON_TYPES:
        batch = await intake.ndjson(body.splitlines(), source="http")
    else:
        batch = await _json(intake, body)
    return _answer(batch)


async def _json(intake, body: bytes) -> Batch:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(f"malformed JSON: {exc}", error="malformed_json") from None
    if isinstance(value, dict):
        try:
            LogEntry.model_validate(value)
        except ValidationError as exc:
            raise InvalidBody(validation_detail(exc)) from None
        return await intake.entries([value], source="http")
    if isinstance(value, list):
        return await intake.entries(value, source="http")
    raise ApiError("expected a log entry object or an array of them", error="malformed_json")


def _answer(batch: Batch) -> web.Response:
    if batch.accepted:
        return web.json_response(batch.answer(), status=202)
    status = 422 if batch.reasons and set(batch.reasons) == {"invalid_entry"} else 400
    if not batch.rejected:
        return web.json_response({**batch.answer(), "error": "empty", "detail": "no log lines in the body"},
                                 status=400)
    return web.json_response({**batch.answer(), "error": "nothing_accepted",
                              "detail": "every line was rejected; see errors"}, status=status)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/logs", post_logs)
