"""Bearer token (or basic auth with the token as password), compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web
from pydantic import SecretStr

from .errors import Unauthorized


def presented_secret(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def require_token(request: web.Request, token: SecretStr | None) -> None:
    """Raise Unauthorized unless the request carries `token`; no token configured means open."""
    if token is None or not token.get_secret_value():
        return
    secret = presented_secret(request.headers.get("Authorization", ""))
    expected = token.get_secret_value().encode()
    if secret is None or not hmac.compare_digest(secret.encode(), expected):
        raise Unauthorized("a valid bearer token is required",
                           headers={"WWW-Authenticate": 'Bearer realm="incident-copilot"'})
