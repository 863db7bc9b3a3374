"""The pages in a real browser: Debian's Chromium, headless, loads the list and a demo incident.

It finds the title, the three charts (each fetched and answered 200) and the timeline, and the
browser reports nothing on its console (a blocked stylesheet or image, a policy violation, a
script error would all show there). The screenshots are kept in `var/test-artefacts/`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from receiver.app import create_app
from receiver.appkeys import HTTP_REQUESTS, INCIDENTS
from receiver.settings import Settings
from tests.support.incidents import PATIENCE

from .scene import HOSTILE, deploy_regression, incident, store
from .test_pages import Page

pytestmark = pytest.mark.browser

ARTEFACTS = Path(__file__).resolve().parents[3] / "var" / "test-artefacts"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not on PATH: scripts/system-packages.sh installs it (apt-get install chromium)")
    return found


async def browse(url: str, profile: Path, *extra: str) -> tuple[str, list[str], float]:
    """The page's DOM after load (or what `extra` asks for), the console messages, and the seconds it took."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
        "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", "--window-size=1280,2600",
        "--virtual-time-budget=5000", *extra, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), PATIENCE * 2)
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    console = [line for line in err.decode(errors="replace").splitlines() if ":CONSOLE" in line]
    return out.decode(), console, time.perf_counter() - started


def answered(app, route: str) -> dict[str, float]:
    """How many requests of a route were answered, by status."""
    counter = app[HTTP_REQUESTS]
    return {sample.labels["status"]: sample.value for metric in counter.collect() for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels["route"] == route}


@pytest.fixture
async def served(fake_redis: Redis, settings: Settings, aiohttp_client):
    return await aiohttp_client(create_app(settings, redis=fake_redis))


async def test_the_list_and_an_incident_page_load_in_chromium(served, tmp_path: Path) -> None:
    record = await deploy_regression(served, served.app[INCIDENTS])
    hostile = await store(served.app[INCIDENTS], incident(record.onset_at, resolved_at=None, summary=HOSTILE,
                                                          backend="web", entry="9"))
    base = str(served.make_url("/")).rstrip("/")

    dom, console, seconds = await browse(f"{base}/ui/incidents/{record.id}", tmp_path / "profile", "--dump-dom")
    assert console == []
    page = Page(dom)
    assert "P99 2.1 s on backend api: slow server responses" in page.words
    assert [link for link in page.links if "/charts/" in link] == [
        f"/ui/incidents/{record.id}/charts/{name}.svg" for name in ("latency", "errors", "traffic")]
    assert "Timeline" in page.words and "Signals changed in the logs" in page.words
    assert answered(served.app, "/ui/incidents/{id}/charts/{name}") == {"200": 3.0}
    assert answered(served.app, "/ui/static/style.css") == {"200": 1.0}

    dom, console, _ = await browse(f"{base}/ui/", tmp_path / "profile", "--dump-dom")
    assert console == []
    assert f"/ui/incidents/{record.id}" in Page(dom).links

    # An annotation holding a script is text in the live DOM, and nothing ran.
    dom, console, _ = await browse(f"{base}/ui/incidents/{hostile.id}", tmp_path / "profile", "--dump-dom")
    assert console == []
    assert HOSTILE in Page(dom).words and "script" not in Page(dom).tags

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "incident-page.png"
    shot.unlink(missing_ok=True)
    _, console, _ = await browse(f"{base}/ui/incidents/{record.id}", tmp_path / "profile", f"--screenshot={shot}")
    assert console == [] and shot.stat().st_size > 10_000
    print(f"\nincident page loaded in Chromium in {seconds:.2f} s (browser start included); screenshot: {shot}")
