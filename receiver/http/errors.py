"""Errors the HTTP edge turns into JSON answers; domain code raises these, never HTTP responses."""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    error = "bad_request"

    def __init__(self, detail: object = None, *, status: int | None = None, error: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.detail = detail
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error
        self.headers = headers or {}


class Unauthorized(ApiError):
    status = 401
    error = "unauthorized"


class UnsupportedMediaType(ApiError):
    status = 415
    error = "unsupported_media_type"


class InvalidBody(ApiError):
    status = 422
    error = "invalid_body"


class BodyTooLarge(ApiError):
    status = 413
    error = "body_too_large"


class NotFound(ApiError):
    status = 404
    error = "not_found"
