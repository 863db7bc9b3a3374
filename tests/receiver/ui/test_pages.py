"""The incident pages as a browser gets them: HTML from the app, escaped, self-contained, behind the read token."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from agents import SimilarIncident
from redis.asyncio import Redis

from receiver.app import create_app
from receiver.appkeys import INCIDENTS
from receiver.settings import Settings

from .scene import HOSTILE, deploy_regression, incident, store

NS = {"s": "http://www.w3.org/2000/svg"}


class Page(HTMLParser):
    """What a page links to and says: every src/href, every element's text, the scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href") and value]

    def handle_data(self, data) -> None:
        self.text.append(data)

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture
async def client(fake_redis: Redis, settings: Settings, aiohttp_client):
    return await aiohttp_client(create_app(settings, redis=fake_redis))


async def get_page(client, path: str, **kwargs) -> tuple[Page, str]:
    response = await client.get(path, **kwargs)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "img-src 'self'" in policy and "script-src" not in policy
    html = await response.text()
    return Page(html), html


async def test_an_incident_page_shows_its_title_charts_findings_timeline_and_links(client) -> None:
    record = await deploy_regression(client, client.app[INCIDENTS])
    page, _ = await get_page(client, f"/ui/incidents/{record.id}")
    assert "P99 2.1 s on backend api: slow server responses" in page.words
    assert record.title in page.words
    charts = [link for link in page.links if "/charts/" in link]
    assert charts == [f"/ui/incidents/{record.id}/charts/{name}.svg" for name in ("latency", "errors", "traffic")]
    assert "Timeline" in page.words and "Signals changed in the logs" in page.words
    assert "resolved" in page.words and "5xx_rate" not in page.words
    assert f"/incidents/{record.id}/postmortem" in page.links and "http://alertmanager.example:9093" in page.links
    # Nothing fetched from elsewhere, and no script at all.
    assert all(link.startswith("/") for link in page.links if not link.startswith("http://alertmanager.example")
               and not link.startswith("http://127.0.0.1:9090/graph"))
    assert "script" not in page.tags

    for link in charts:
        response = await client.get(link)
        assert response.status == 200 and response.content_type == "image/svg+xml"
        svg = ET.fromstring(await response.text())
        assert {g.get("data-mark") for g in svg.findall(".//s:g[@data-mark]", NS)} == {
            "onset", "alert", "diagnosed", "resolved"}
    latency = ET.fromstring(await (await client.get(charts[0])).text())
    p99 = [float(y) for poly in latency.findall(".//s:g[@data-series='P99']/s:polyline", NS)
           for y in re.findall(r",([\d.]+)", poly.get("points"))]
    limit = float(latency.find(".//s:g[@data-threshold='P99 limit']/s:line", NS).get("y1"))
    assert min(p99) < limit < max(p99)  # the regression crosses the P99 limit, the healthy minutes stay under


async def test_an_annotation_holding_a_script_shows_as_text(client) -> None:
    record = await deploy_regression(client, client.app[INCIDENTS], summary=HOSTILE)
    page, html = await get_page(client, f"/ui/incidents/{record.id}")
    assert HOSTILE in page.words
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#34;annotation&#34;)&lt;/script&gt;" in html


async def test_the_list_is_newest_first_and_filters_by_status_and_backend(client) -> None:
    now = datetime.now(timezone.utc)
    repository = client.app[INCIDENTS]
    older = await store(repository, incident(now - timedelta(hours=2), resolved_at=now - timedelta(hours=1),
                                             backend="api", entry="1"))
    newer = await store(repository, incident(now - timedelta(minutes=10), resolved_at=None, backend="web",
                                             entry="2"))
    page, html = await get_page(client, "/ui/")
    rows = [link for link in page.links if link.startswith("/ui/incidents/")]
    assert rows == [f"/ui/incidents/{newer.id}", f"/ui/incidents/{older.id}"]
    assert '<meta http-equiv="refresh"' in html  # one is still open
    page, _ = await get_page(client, "/ui/", params={"status": "resolved"})
    assert [link for link in page.links if link.startswith("/ui/incidents/")] == [f"/ui/incidents/{older.id}"]
    page, html = await get_page(client, "/ui/", params={"backend": "web"})
    assert [link for link in page.links if link.startswith("/ui/incidents/")] == [f"/ui/incidents/{newer.id}"]
    page, _ = await get_page(client, "/ui/", params={"backend": "nope"})
    assert "No incidents match these filters." in page.words


async def test_an_open_incident_page_refreshes_and_a_resolved_one_does_not(client) -> None:
    now = datetime.now(timezone.utc)
    repository = client.app[INCIDENTS]
    live = await store(repository, incident(now - timedelta(minutes=5), resolved_at=None, entry="1"))
    _, html = await get_page(client, f"/ui/incidents/{live.id}")
    assert '<meta http-equiv="refresh" content="15">' in html
    done = await store(repository, incident(now - timedelta(hours=3), resolved_at=now - timedelta(hours=2),
                                            backend="web", entry="2"))
    _, html = await get_page(client, f"/ui/incidents/{done.id}")
    assert "http-equiv" not in html


async def test_the_metrics_page_has_each_backend_and_its_charts(client) -> None:
    await deploy_regression(client, client.app[INCIDENTS])
    page, _ = await get_page(client, "/ui/metrics")
    assert "/ui/metrics?backend=api" in page.links
    assert re.search("[▁▂▃▄▅▆▇█]{30,}", page.words)
    page, _ = await get_page(client, "/ui/metrics", params={"backend": "api"})
    charts = [link for link in page.links if "/charts/" in link]
    assert charts == [f"/ui/metrics/charts/{n}.svg?backend=api" for n in ("latency", "errors", "traffic")]
    for link in charts:
        response = await client.get(link)
        assert response.status == 200 and response.content_type == "image/svg+xml"
        assert ET.fromstring(await response.text()).find("s:title", NS).text.endswith("on backend api")


async def test_pages_need_the_read_token_and_ask_a_browser_for_it(fake_redis: Redis, settings: Settings,
                                                                  aiohttp_client) -> None:
    settings = Settings(_env_file=None, **{**settings.model_dump(), "read_token": "s3cret"})
    client = await aiohttp_client(create_app(settings, redis=fake_redis))
    record = await store(client.app[INCIDENTS], incident(datetime.now(timezone.utc), resolved_at=None))
    for path in ("/ui/", f"/ui/incidents/{record.id}", f"/ui/incidents/{record.id}/charts/latency.svg",
                 "/ui/metrics", "/ui/metrics/charts/errors.svg"):
        response = await client.get(path)
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    basic = base64.b64encode(b"anyone:s3cret").decode()
    await get_page(client, f"/ui/incidents/{record.id}", headers={"Authorization": f"Basic {basic}"})
    await get_page(client, "/ui/", headers={"Authorization": "Bearer s3cret"})
    assert (await client.get("/ui/static/style.css")).status == 200  # no secret in a stylesheet


async def test_unknown_incidents_and_charts_are_404(client) -> None:
    record = await store(client.app[INCIDENTS], incident(datetime.now(timezone.utc), resolved_at=None))
    assert (await client.get("/ui/incidents/inc-20260101-0123abcd")).status == 404
    assert (await client.get("/ui/incidents/not-an-id")).status == 400
    assert (await client.get(f"/ui/incidents/{record.id}/charts/passwd.svg")).status == 404
    assert (await client.get("/ui/metrics/charts/..%2Fsecret.svg")).status == 404
    response = await client.get("/ui", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/ui/"


async def test_an_incident_page_lists_similar_incidents_with_their_fixes_as_inert_text(client) -> None:
    record = incident(datetime.now(timezone.utc) - timedelta(minutes=20), resolved_at=None)
    past = [SimilarIncident(incident_id="inc-20261002-aaaabbbb", file="2026-10-02-api-aaaabbbb.md",
                            title="api: sH timeouts", date="2026-10-02", score=0.81, why=["same backend api"],
                            mitigation="Rolled back api to 7.2."),
            SimilarIncident(file="notes.md", title="Old notes", score=0.4, why=["mentions backend api"],
                            mitigation=f"{HOSTILE} see https://evil.example/fix")]
    record = record.model_copy(update={"report": record.report.model_copy(update={"similar": past})})
    await store(client.app[INCIDENTS], record)
    page, html = await get_page(client, f"/ui/incidents/{record.id}")
    assert "/ui/incidents/inc-20261002-aaaabbbb" in page.links
    assert ("api: sH timeouts (2026-10-02, 2026-10-02-api-aaaabbbb.md; similarity 0.81: same backend api) "
            "How it was mitigated, as its post-mortem says: “Rolled back api to 7.2.”") in page.words
    assert "Old notes (date unknown, notes.md; similarity 0.40: mentions backend api)" in page.words
    assert "<script" not in html and "https[:]//evil[.]example/fix" in page.words
    assert not any("evil" in link for link in page.links)
