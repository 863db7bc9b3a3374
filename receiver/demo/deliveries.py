"""What the demo says of its notifications, when it was given a notifications file (NOTIFY_CONFIG)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from ..announcements import snapshot
from ..appkeys import NOTIFY_CONFIG, REDIS
from ..incidents import IncidentRepository
from ..notify import Outbox


async def report_deliveries(app: web.Application, incident_ids: list[str], step: Callable[[str], None], *,
                            patience: float = 30.0) -> None:
    """Wait (a while) until each incident's last change is announced and the outbox is empty, then say
    where each incident's messages went.

    An incident's record is saved before its change is announced, so an empty outbox alone may
    only mean the last message is not enqueued yet.
    """
    outbox = Outbox(app[REDIS])
    incidents = IncidentRepository(app[REDIS])
    deadline = time.monotonic() + patience

    async def settled() -> bool:
        for incident_id in incident_ids:
            incident = await incidents.get(incident_id)
            if incident is not None and await outbox.owes(snapshot(incident)):
                return False
        return not await outbox.pending()

    while not await settled() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    waiting = await outbox.pending()
    places = {t.id: t.describe() for t in app[NOTIFY_CONFIG].all_targets()}
    for incident_id in incident_ids:
        outcomes = await outbox.outcomes(incident_id)
        if not outcomes:
            step(f"{incident_id}: no message sent (no receiver of the notifications file wants it)")
        for kind, target, outcome in outcomes:
            step(f"{incident_id}: the {kind} message to {places.get(target, target)}: {outcome}")
    if waiting:
        step(f"{waiting} message{'s' if waiting != 1 else ''} still being retried as the demo stops; "
             "they are delivered when the service next runs on this Redis")
