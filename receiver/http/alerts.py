"""`POST /alerts`: Alertmanager's webhook. Validate, persist to the stream, answer.

Alertmanager retries only on 5xx, so the answer follows its contract: 400/413/422 for a body
that will never be accepted, 503 (from the middleware) while Redis cannot store it, and 200
only once the notification is in the stream. The incident worker does the rest.

A notification of more than `ALERTS_MAX_ALERTS` alerts is stored with its first ones and the
rest counted in its `truncatedAlerts`, as Alertmanager's own `max_alerts` does; one whose body
is over `ALERTS_MAX_BODY_BYTES` cannot be read at all and is refused. Both are counted in
`incident_copilot_alert_notifications_oversize_total{outcome}` and logged.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from aiohttp import web

from ..appkeys import ALERT_STREAM, INCIDENT_METRICS, SETTINGS
from ..incidents import Notification
from .auth import require_token
from .errors import BodyTooLarge
from .middleware import json_object, json_value, read_body

log = logging.getLogger(__name__)

# Above this, the body is parsed in a thread: tens of milliseconds the event loop keeps.
_PARSE_IN_THREAD_BYTES = 1024 * 1024


async def post_alerts(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    require_token(request, settings.webhook_token)
    metrics = request.app[INCIDENT_METRICS]
    try:
        body = await read_body(request, settings.alerts_max_body_bytes)
    except BodyTooLarge:
        metrics.oversize.labels("refused").inc()
        log.error("alert notification refused: body over ALERTS_MAX_BODY_BYTES; set max_alerts in Alertmanager",
                  extra={"limit_bytes": settings.alerts_max_body_bytes})
        raise
    if len(body) > _PARSE_IN_THREAD_BYTES:
        notification, cut = await asyncio.to_thread(parse_notification, body, settings.alerts_max_alerts)
    else:
        notification, cut = parse_notification(body, settings.alerts_max_alerts)
    if cut:
        metrics.oversize.labels("truncated").inc()
        log.warning("alert notification truncated to ALERTS_MAX_ALERTS",
                    extra={"kept": len(notification.alerts), "truncated": cut, "group_key": notification.group_key})
    entry = await request.app[ALERT_STREAM].add(notification, received_at=datetime.now(timezone.utc))
    metrics.notifications.labels(notification.status).inc()
    return web.json_response({"status": "stored", "entry": entry, "alerts": len(notification.alerts),
                              "truncatedAlerts": notification.truncated_alerts})


def parse_notification(body: bytes, max_alerts: int) -> tuple[Notification, int]:
    """The notification with at most `max_alerts` alerts, and how many it lost here.

    400 for JSON that does not parse, 422 (with the fields) for JSON that is not a notification.
    """
    value = json_value(body)
    cut = 0
    if isinstance(value, dict):
        alerts, truncated = value.get("alerts"), value.get("truncatedAlerts", 0)
        # A `truncatedAlerts` of the wrong type is left for validation to refuse.
        if isinstance(alerts, list) and len(alerts) > max_alerts and type(truncated) is int:
            cut = len(alerts) - max_alerts
            value["alerts"] = alerts[:max_alerts]
            value["truncatedAlerts"] = truncated + cut
    notification = json_object(value, Notification, not_an_object={
        "loc": [], "msg": "expected an Alertmanager notification object", "type": "dict_type"})
    return notification, cut


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/alerts", post_alerts)
