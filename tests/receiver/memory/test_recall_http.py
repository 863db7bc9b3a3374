"""A new incident recalls the team's post-mortem of the last time: in its JSON, its post-mortem and its advice."""

from __future__ import annotations

import io
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ingestion.simulate import LiveTraffic
from receiver.app import create_app
from receiver.appkeys import ALERT_STREAM
from receiver.settings import Settings
from tests.support.incidents import Service, payload
from tests.support.settings import with_settings

pytestmark = pytest.mark.integration

RECALL_SET = Path(__file__).parents[2] / "fixtures" / "recall" / "postmortems"
PAYMENTS = "2026-10-02-payments-refusing-connections.md"
UNRELATED = "search-latency-2026-05.md"


def zulu(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def payments_refusing(settings: Settings, redis: Redis, aiohttp_client, past: list[str], *,
                            joined: bool = False) -> tuple[dict, str]:
    """POSTMORTEM_DIR holding `past`, then payments2 refusing connections and its 5xx alert (and, `joined`, a second
    alert that asks for another analysis): the incident, its post-mortem."""
    settings.postmortem_dir.mkdir(parents=True)
    for name in past:
        shutil.copy(RECALL_SET / name, settings.postmortem_dir / name)
    settings = with_settings(settings, run_worker=True, log_timezone="UTC", memory_poll_seconds=0)
    app = create_app(settings, redis=redis)
    client = await aiohttp_client(app)
    now = datetime.now(timezone.utc)
    step = now - timedelta(seconds=150)
    traffic = LiveTraffic("server-refusing", rps=40, seed=5)
    lines = (traffic.lines((now - timedelta(minutes=10)).timestamp(), step.timestamp(), incident=False)
             + traffic.lines(step.timestamp(), now.timestamp(), incident=True))
    lines = [line.replace(" web/web-", " payments/payments") for line in lines]
    response = await client.post("/logs", data=io.BytesIO("\n".join(lines).encode()),
                                 headers={"Content-Type": "text/plain"})
    assert response.status == 202 and (await response.json())["rejected"] == 0

    body = json.loads(json.dumps(payload("backend-5xx-firing")).replace("api", "payments"))
    body["alerts"][0]["startsAt"] = zulu(now - timedelta(seconds=90))
    service = Service(client, app[ALERT_STREAM], settings.postmortem_dir)
    await service.post(body)
    [row] = await service.diagnosed()
    if joined:
        body = json.loads(json.dumps(payload("backend-5xx-joined")).replace("api", "payments"))
        for alert in body["alerts"]:
            alert["startsAt"] = zulu(now - timedelta(seconds=90))
        await service.post(body)
        await service.settled()
    incident = await service.incident(row["id"])
    markdown = (settings.postmortem_dir / incident["postmortem_file"]).read_text(encoding="utf-8")
    return incident, markdown


async def test_a_hand_written_post_mortem_of_the_last_time_comes_first_with_its_mitigation(
        real_redis: Redis, settings: Settings, aiohttp_client) -> None:
    incident, markdown = await payments_refusing(
        settings, real_redis, aiohttp_client, [PAYMENTS, "2026-10-20-payments-slow-database.md", UNRELATED])

    first = incident["similar"][0]
    assert first["file"] == PAYMENTS
    assert first["date"] == "2026-10-02"
    assert first["mitigation"].startswith("Drained payments2 in HAProxy")
    assert "mentions backend payments" in first["why"] and "mentions termination state SC" in first["why"]
    assert incident["report"]["similar"] == incident["similar"]
    assert all(s["file"] != UNRELATED for s in incident["similar"])
    # The rules quote the past fix, with its date and source, as the second thing to do.
    assert any(r.startswith(f"Last time (2026-10-02, {PAYMENTS})") and "Drained payments2" in r
               for r in incident["report"]["recommendations"])

    section = markdown.split("## Similar incidents", 1)[1].split("\n## ", 1)[0]
    assert f"[Payments refused connections after the 2.14 deploy]({PAYMENTS}) (2026-10-02)" in section
    assert "**How it was mitigated** (" in section and "Drained payments2 in HAProxy" in section
    # The hand-written file is read, never written.
    assert (settings.postmortem_dir / PAYMENTS).read_bytes() == (RECALL_SET / PAYMENTS).read_bytes()


async def test_an_incident_analysed_again_never_recalls_its_own_post_mortem(
        real_redis: Redis, settings: Settings, aiohttp_client) -> None:
    incident, _ = await payments_refusing(settings, real_redis, aiohttp_client, [PAYMENTS], joined=True)

    assert [e["kind"] for e in incident["timeline"]].count("diagnosed") == 2  # its own post-mortem was archived between
    assert "incident-copilot fingerprint" in (settings.postmortem_dir / incident["postmortem_file"]).read_text()
    assert [s["file"] for s in incident["similar"]] == [PAYMENTS]


async def test_nothing_similar_is_an_answer(real_redis: Redis, settings: Settings, aiohttp_client) -> None:
    incident, markdown = await payments_refusing(settings, real_redis, aiohttp_client, [UNRELATED])

    assert incident["similar"] == []
    assert not any(r.startswith("Last time") for r in incident["report"]["recommendations"])
    assert "None similar: no past incident in the archive comes above the relevance floor." in markdown


async def test_an_archive_that_cannot_be_opened_leaves_the_service_running_without_memory(
        fake_redis: Redis, settings: Settings, aiohttp_client, caplog: pytest.LogCaptureFixture) -> None:
    settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.data_dir.write_text("a file where the data folder should be")
    client = await aiohttp_client(create_app(settings, redis=fake_redis))
    response = await client.post("/analyze", json={})
    assert response.status == 200 and (await response.json())["similar"] == []
    assert any(r.getMessage().startswith("no memory of past incidents") for r in caplog.records)
