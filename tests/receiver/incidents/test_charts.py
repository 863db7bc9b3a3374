"""An incident's charts: read over the right span, written beside its post-mortem and shown in it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path

from agents import Thresholds
from ingestion import Series, SeriesPoint
from receiver.incidents import Incident, IncidentCharts, PostmortemWriter
from receiver.resources import resource_dir

from .test_postmortem import resolved_backend_incident

NS = {"s": "http://www.w3.org/2000/svg"}


class FakeSeries:
    """Per-minute points ending at `at`: slow and failing from `bad_from` to `bad_until`, else healthy."""

    def __init__(self, bad_from: datetime, bad_until: datetime) -> None:
        self.bad_from, self.bad_until = bad_from, bad_until
        self.asked: list[tuple[int, datetime, str | None]] = []
        self.fail: Exception | None = None

    async def __call__(self, minutes: int, at: datetime, backend: str | None) -> Series:
        self.asked.append((minutes, at, backend))
        if self.fail is not None:
            raise self.fail
        last = at.replace(second=0, microsecond=0)
        points = []
        for i in range(minutes):
            minute = last - timedelta(minutes=minutes - 1 - i)
            bad = self.bad_from <= minute < self.bad_until
            points.append(SeriesPoint(minute=minute, requests=1200, errors_4xx=12, errors_5xx=300 if bad else 2,
                                      error_rate_4xx_pct=1.0, error_rate_5xx_pct=25.0 if bad else 0.2,
                                      p50_ms=40.0, p95_ms=900.0 if bad else 120.0, p99_ms=2100.0 if bad else 200.0))
        return Series(window_minutes=minutes, start=points[0].minute, end=last + timedelta(minutes=1),
                      backend=backend, points=points)


def setup(tmp_path: Path, incident: Incident) -> tuple[PostmortemWriter, FakeSeries]:
    onset = incident.report.onset.at
    series = FakeSeries(onset, incident.ended_at)
    charts = IncidentCharts(series, Thresholds(), now=lambda: incident.ended_at + timedelta(hours=1))
    return PostmortemWriter(tmp_path, templates=resource_dir("templates"), slo_target_pct=99.9, charts=charts), series


async def test_charts_are_written_beside_the_post_mortem_and_embedded(tmp_path: Path) -> None:
    incident = resolved_backend_incident()
    writer, series = setup(tmp_path, incident)
    path = await writer.write(incident)
    text = path.read_text()
    folder = path.with_suffix("")
    assert sorted(p.name for p in folder.iterdir()) == ["errors.svg", "latency.svg", "traffic.svg"]
    assert f"![Latency on backend api]({folder.name}/latency.svg)" in text
    assert f"![Error rates on backend api]({folder.name}/errors.svg)" in text
    # From 15 minutes before the earliest sign (the baseline) to 5 minutes after the resolution.
    minutes, at, backend = series.asked[0]
    assert backend == "api" and at == incident.ended_at + timedelta(minutes=5)
    first_minute = at.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    assert first_minute <= incident.report.baseline_start - timedelta(minutes=15)
    latency = ET.parse(folder / "latency.svg").getroot()
    assert {g.get("data-mark") for g in latency.findall(".//s:g[@data-mark]", NS)} == {
        "onset", "alert", "diagnosed", "resolved"}
    assert {g.get("data-threshold") for g in latency.findall(".//s:g[@data-threshold]", NS)} == {
        "P95 limit", "P99 limit"}
    traffic = ET.parse(folder / "traffic.svg").getroot()
    assert traffic.find(".//s:g[@data-kind='baseline']", NS) is not None
    assert all((folder / name).stat().st_size < 40_000 for name in ("latency.svg", "errors.svg", "traffic.svg"))


async def test_charts_are_redrawn_with_the_post_mortem_and_left_with_an_edited_one(tmp_path: Path) -> None:
    incident = resolved_backend_incident()
    writer, series = setup(tmp_path, incident)
    path = await writer.write(incident)
    chart = path.with_suffix("") / "latency.svg"
    before = chart.read_text()
    series.bad_until = incident.report.onset.at + timedelta(minutes=1)  # the series now shows a shorter regression
    await writer.write(incident)
    assert chart.read_text() != before
    path.write_text(path.read_text().replace("_to be filled in_", "Ana", 1))
    series.bad_until = incident.ended_at
    assert await writer.write(incident) is None
    assert chart.read_text() != before  # the edited post-mortem keeps the charts it had


async def test_a_post_mortem_is_written_without_charts_when_the_series_cannot_be_read(tmp_path: Path) -> None:
    incident = resolved_backend_incident()
    writer, series = setup(tmp_path, incident)
    series.fail = ConnectionError("redis down")
    path = await writer.write(incident)
    assert "## Charts" not in path.read_text() and "## Timeline" in path.read_text()
    assert not path.with_suffix("").exists()


async def test_the_charts_begin_with_the_first_logged_minute() -> None:
    incident = resolved_backend_incident()
    series = FakeSeries(incident.report.onset.at, incident.ended_at)
    first_logged = incident.report.onset.at - timedelta(minutes=4)

    async def logs_begin_late(minutes: int, at: datetime, backend: str | None) -> Series:
        answer = await series(minutes, at, backend)
        points = [p if p.minute >= first_logged else p.model_copy(update={"requests": 0}) for p in answer.points]
        return answer.model_copy(update={"points": points})

    charts = IncidentCharts(logs_begin_late, Thresholds(), now=lambda: incident.ended_at + timedelta(hours=1))
    for chart in await charts(incident):
        plot = ET.fromstring(chart.svg).find(".//s:rect[@data-start]", NS)
        assert datetime.fromisoformat(plot.get("data-start")) == first_logged, chart.name


async def test_the_minute_still_filling_up_has_no_count_of_requests() -> None:
    incident = resolved_backend_incident()
    now = incident.ended_at + timedelta(minutes=2, seconds=20)
    charts = IncidentCharts(FakeSeries(incident.report.onset.at, incident.ended_at), Thresholds(), now=lambda: now)
    named = dict(await charts.charts(incident))
    requests = named["traffic"].lines[0].values
    assert requests[-1] is None and None not in requests[:-1]
    assert named["latency"].lines[2].values[-1] is not None  # a rate is a rate, however few its requests
    assert named["traffic"].minutes[-1] == now.replace(second=0, microsecond=0)
