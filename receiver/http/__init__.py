"""The HTTP edge: route handlers, request plumbing (middleware, errors, auth) and the OpenAPI document.

Handlers read the application's resources through `receiver.appkeys`; the composition root
(`receiver.app`) puts them there.
"""

from aiohttp import web

from . import alerts, analyze, incidents, logs, metrics, openapi
from .auth import require_token
from .errors import NotFound, Unauthorized
from .incidents import requested_incident
from .middleware import request_context
from .server import ServerLimits, handler_args, serve


def setup_routes(app: web.Application) -> None:
    """Every route of the service."""
    for room in (logs, metrics, analyze, alerts, incidents, openapi):
        room.setup_routes(app)


__all__ = ["NotFound", "ServerLimits", "Unauthorized", "handler_args", "request_context", "require_token",
           "requested_incident", "serve", "setup_routes"]
