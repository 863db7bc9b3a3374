"""`POST /alerts`: Alertmanager's webhook. Validate, persist to the stream, answer.

Alertmanager retries only on 5xx, so the answer follows its contract: 400/413/422 for a body
that will never be accepted, 503 (from the middleware) while Redis cannot store it, and 200
only once the notification is in the stream. The incident worker does the rest.
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from ..appkeys import ALERT_STREAM, INCIDENT_METRICS, SETTINGS
from ..incidents import Notification
from .auth import require_token
from .middleware import json_object_body, read_body

# Alertmanager sends every alert of a group in one body; a megabyte is thousands of alerts.
MAX_ALERTS_BODY = 1024 * 1024


async def post_alerts(request: web.Request) -> web.Response:
    require_token(request, request.app[SETTINGS].webhook_token)
    notification = parse_notification(await read_body(request, MAX_ALERTS_BODY))
    entry = await request.app[ALERT_STREAM].add(notification, received_at=datetime.now(timezone.utc))
    request.app[INCIDENT_METRICS].notifications.labels(notification.status).inc()
    return web.json_response({"status": "stored", "entry": entry, "alerts": len(notification.alerts)})


def parse_notification(body: bytes) -> Notification:
    """400 for JSON that does not parse, 422 (with the fields) for JSON that is not a notification."""
    return json_object_body(body, Notification, not_an_object={
        "loc": [], "msg": "expected an Alertmanager notification object", "type": "dict_type"})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/alerts", post_alerts)
