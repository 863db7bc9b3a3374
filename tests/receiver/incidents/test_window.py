"""A fresh incident is analysed over its own minutes, not diluted by the healthy ones before it."""

from __future__ import annotations

import copy
import io
from datetime import datetime, timedelta, timezone

import pytest
from redis.asyncio import Redis

from ingestion.simulate import LiveTraffic
from receiver.app import create_app
from receiver.appkeys import ALERT_STREAM
from receiver.settings import Settings

from tests.support.settings import with_settings
from tests.support.incidents import Service, payload

pytestmark = pytest.mark.integration


def zulu(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_an_alert_seconds_after_the_onset_gets_a_report_that_sees_the_errors(
        real_redis: Redis, settings: Settings, aiohttp_client) -> None:
    # Ten healthy minutes, then api fails a fifth of its requests for the last 100 seconds:
    # Prometheus' 1-minute window crossed 75 s ago, and Alertmanager notifies now.
    settings = with_settings(settings, run_worker=True, log_timezone="UTC")
    app = create_app(settings, redis=real_redis)
    client = await aiohttp_client(app)
    now = datetime.now(timezone.utc)
    step = now - timedelta(seconds=100)
    traffic = LiveTraffic("deploy-regression", rps=40, seed=5)
    lines = (traffic.lines((now - timedelta(minutes=10)).timestamp(), step.timestamp(), incident=False)
             + traffic.lines(step.timestamp(), now.timestamp(), incident=True))
    response = await client.post("/logs", data=io.BytesIO("\n".join(lines).encode()),
                                 headers={"Content-Type": "text/plain"})
    assert response.status == 202 and (await response.json())["rejected"] == 0

    body = copy.deepcopy(payload("backend-5xx-firing"))
    body["alerts"][0]["startsAt"] = zulu(now - timedelta(seconds=75))
    service = Service(client, app[ALERT_STREAM], settings.postmortem_dir)
    await service.post(body)
    [row] = await service.diagnosed()
    report = (await service.incident(row["id"]))["report"]

    assert report["window_minutes"] < 10  # the incident's minutes, and one before
    (errors,) = [f for f in report["findings"] if f["specialist"] == "errors"]
    # Over the ten minutes before the notification, the 5xx share would read below 5 %.
    assert errors["severity"] in ("warning", "critical"), errors
    assert any(e["metric"] == "error_rate_5xx_pct" and e["value"] > 5 for e in errors["evidence"]), errors
