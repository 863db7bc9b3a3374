"""Request ids, JSON errors and the retry contract: 4xx is final, 503 means try again."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import TypeVar

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import PayloadEncodingError
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from ..appkeys import HTTP_REQUESTS, SETTINGS
from ..logging_setup import request_id
from ..retry import REDIS_UNAVAILABLE
from .content_encoding import body_decoder
from .errors import ApiError, BodyTooLarge, InvalidBody

log = logging.getLogger(__name__)

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
M = TypeVar("M", bound=BaseModel)
_CHUNK = 64 * 1024
# The errors aiohttp itself raises, by a name that does not depend on the Python version's reason phrases.
_HTTP_ERRORS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
                415: "unsupported_media_type"}


# Every answer is data, never a page to render or frame.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff",
                    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


def error_response(status: int, error: str, detail: object = None, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


def validation_detail(error: ValidationError) -> list[dict]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, decoded, refusing (413) one larger than `limit` whether or not it declares its length.

    A body that does not arrive within `HTTP_BODY_TIMEOUT_SECONDS` is a 408; one cut short (the
    sender closed, or its chunked framing broke) a 400.
    """
    decoder = body_decoder(request.headers.get(hdrs.CONTENT_ENCODING), limit)
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body larger than {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(request.app[SETTINGS].http_body_timeout_seconds):
            async for chunk in request.content.iter_chunked(_CHUNK):
                body += decoder.feed(chunk) if decoder is not None else chunk
                if len(body) > limit:
                    raise BodyTooLarge(f"body larger than {limit} bytes")
    except TimeoutError:
        raise ApiError("the body did not arrive in time", status=408, error="request_timeout",
                       headers={"Connection": "close"}) from None
    except (PayloadEncodingError, ConnectionResetError) as exc:
        raise ApiError(f"the body was cut short: {exc}", error="incomplete_body") from None
    if decoder is not None:
        decoder.finish()
    return bytes(body)


def json_object_body(raw: bytes, model: type[M], *, not_an_object: dict) -> M:
    """400 for JSON that does not parse, 422 with `not_an_object` for one that is no object, 422 with the fields."""
    return json_object(json_value(raw), model, not_an_object=not_an_object)


def json_value(raw: bytes) -> object:
    """The parsed body; 400 for JSON that does not parse."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(f"malformed JSON: {exc}", error="malformed_json") from None


def json_object(value: object, model: type[M], *, not_an_object: dict) -> M:
    """`value` as `model`: 422 with `not_an_object` for one that is no object, 422 with the fields."""
    if not isinstance(value, dict):
        raise InvalidBody([not_an_object])
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidBody(validation_detail(exc)) from None


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
    token = request_id.set(rid)
    try:
        response = await _answer(request, handler)
        response.headers["X-Request-ID"] = rid
        for name, value in SECURITY_HEADERS.items():  # a page sets the policy it needs; data gets the strict one
            response.headers.setdefault(name, value)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[HTTP_REQUESTS].labels(route, str(response.status)).inc()
        return response
    finally:
        request_id.reset(token)


async def _answer(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        return error_response(exc.status, _HTTP_ERRORS.get(exc.status, f"http_{exc.status}"), exc.text, headers)
    except REDIS_UNAVAILABLE as exc:
        log.warning("redis unavailable: %s", exc)  # the address stays in the log, out of the answer
        return error_response(503, "redis_unavailable", "Redis is not reachable; try again", {"Retry-After": "5"})
    except RedisError as exc:
        # Redis answered with an error, as it would again: no 503, which asks to try again.
        # A batch of logs is written all or nothing, so none of it was counted.
        log.error("redis refused %s %s: %s", request.method, request.path, exc)
        return error_response(500, "redis_error", "Redis refused the request; see the service log")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "unexpected error; see the service log")
