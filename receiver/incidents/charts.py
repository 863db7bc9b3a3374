"""The charts of an incident: its backend's latency, errors and traffic around it, with its moments marked.

Pure choices (which span, which lines, which moments) apart from the one read of the series;
the drawing is `receiver.charts`'. The series is read through a callable the composition root
passes in (`MetricsQueries.series`), so this room knows no Redis.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from statistics import fmean

from agents import Thresholds
from ingestion import Series, SeriesPoint

from ..charts import Chart, Line, Mark, Threshold, draw_svg
from .model import Incident

log = logging.getLogger(__name__)

# (minutes, at, backend) -> the per-minute series ending with the minute holding `at`.
SeriesReader = Callable[[int, datetime, str | None], Awaitable[Series]]

MINUTES_BEFORE = 15  # shown before the earliest of the onset, the alert and the baseline
MINUTES_AFTER = 5  # shown after the resolution, once they have passed
MAX_MINUTES = 240
CHART_NAMES = ("latency", "errors", "traffic")
_CHART_FILE = re.compile(r"^(latency|errors|traffic)\.svg$")


@dataclass(frozen=True, slots=True)
class ChartFile:
    name: str  # "latency.svg"
    title: str
    svg: str


def is_chart_file(name: str) -> bool:
    return bool(_CHART_FILE.match(name))


def chart_backend(incident: Incident) -> str | None:
    """The backend the charts follow: the culprit the analysis found, else the one analysed or alerted on."""
    report = incident.report
    if report is not None and (report.culprit or report.backend):
        return report.culprit or report.backend
    return incident.common_labels.get("backend") or None


def chart_span(incident: Incident, now: datetime) -> tuple[datetime, datetime]:
    """From well before the first sign of trouble to a few minutes after the resolution (or now)."""
    report = incident.report
    first = [incident.onset_at]
    if report is not None:
        first += [report.window_start] + ([report.onset.at] if report.onset else [])
        first += [report.baseline_start] if report.baseline_start else []
    start = min(first) - timedelta(minutes=MINUTES_BEFORE)
    end = now if incident.ended_at is None else min(now, incident.ended_at + timedelta(minutes=MINUTES_AFTER))
    end = max(end, incident.onset_at)
    return max(start, end - timedelta(minutes=MAX_MINUTES)), end


def span_minutes(start: datetime, end: datetime) -> int:
    """Whole minutes from the one holding `start` to the one holding `end`."""
    return int(end.timestamp() // 60 - start.timestamp() // 60) + 1


def incident_marks(incident: Incident) -> tuple[Mark, ...]:
    report = incident.report
    marks = []
    if report is not None and report.onset is not None:
        marks.append(Mark("onset", "signals changed", report.onset.at))
    marks.append(Mark("alert", "alert fired", incident.onset_at))
    if incident.diagnosed_at is not None:
        marks.append(Mark("diagnosed", "diagnosed", incident.diagnosed_at))
    if incident.ended_at is not None:
        marks.append(Mark("resolved", "resolved", incident.ended_at))
    return tuple(marks)


def incident_charts(incident: Incident, points: list[SeriesPoint], backend: str | None,
                    thresholds: Thresholds, *, now: datetime | None = None) -> list[tuple[str, Chart]]:
    """The three charts of an incident, named, from its scope's per-minute points."""
    points = _from_first_request(points)
    return golden_signal_charts(points, backend, thresholds, marks=incident_marks(incident),
                                baseline=_baseline(incident, points) if points else None,
                                about=f", in incident {incident.id}", now=now)


def golden_signal_charts(points: list[SeriesPoint], backend: str | None, thresholds: Thresholds, *,
                         marks: tuple[Mark, ...] = (), baseline: float | None = None,
                         about: str = "", now: datetime | None = None) -> list[tuple[str, Chart]]:
    """Latency, error rates and traffic of a scope (a backend, or the whole site), named.

    The minute holding `now` is still filling up: its rates are drawn, its count of requests is not.
    """
    points = _from_first_request(points)
    if not points:
        return []
    scope = f"backend {backend}" if backend else "all backends"
    minutes = tuple(p.minute for p in points)
    latency = Chart(
        title=f"Latency on {scope}", unit="ms", minutes=minutes, marks=marks,
        lines=(Line("P50", "p50", tuple(p.p50_ms for p in points)),
               Line("P95", "p95", tuple(p.p95_ms for p in points)),
               Line("P99", "p99", tuple(p.p99_ms for p in points))),
        thresholds=(Threshold("P95 limit", thresholds.latency_p95_ms),
                    Threshold("P99 limit", thresholds.latency_p99_ms)),
        summary=f"Response time percentiles per minute on {scope}{about}.")
    errors = Chart(
        title=f"Error rates on {scope}", unit="%", minutes=minutes, marks=marks,
        lines=(Line("5xx", "5xx", tuple(_rate(p.error_rate_5xx_pct, p) for p in points)),
               Line("4xx", "4xx", tuple(_rate(p.error_rate_4xx_pct, p) for p in points))),
        thresholds=(Threshold("5xx limit", thresholds.error_rate_5xx_pct),
                    Threshold("5xx critical", thresholds.error_rate_5xx_critical_pct),
                    Threshold("4xx limit", thresholds.error_rate_4xx_pct)),
        summary=f"Share of requests answered 5xx and 4xx per minute on {scope}{about}.")
    traffic = Chart(
        title=f"Requests per minute on {scope}", unit="req/min", minutes=minutes, marks=marks,
        lines=(Line("requests", "requests", tuple(
            None if now is not None and p.minute + timedelta(minutes=1) > now else float(p.requests)
            for p in points)),),
        thresholds=(Threshold("baseline", baseline, kind="baseline"),) if baseline is not None else (),
        summary=f"Requests per minute on {scope}{about}"
                + (", against the minutes before the onset." if baseline is not None else "."))
    return [("latency", latency), ("errors", errors), ("traffic", traffic)]


def _from_first_request(points: list[SeriesPoint]) -> list[SeriesPoint]:
    """The points from the first minute with a request on: the logs may begin after the span does."""
    first = next((i for i, p in enumerate(points) if p.requests), len(points) - 1)
    return points[max(0, first):]


def _rate(value: float, point: SeriesPoint) -> float | None:
    return value if point.requests else None


def _baseline(incident: Incident, points: list[SeriesPoint]) -> float | None:
    """Mean requests per minute over the analysis' baseline, else over the minutes before the first sign."""
    report = incident.report
    if report is not None and report.baseline_start and report.baseline_end:
        start, end = report.baseline_start, report.baseline_end
    else:
        start = points[0].minute
        end = min([incident.onset_at, *([report.onset.at] if report and report.onset else [])])
    before = [p.requests for p in points if start <= p.minute < end]
    return round(fmean(before), 1) if before else None


class IncidentCharts:
    """Reads an incident's series and draws its charts; what the post-mortems and the pages call."""

    def __init__(self, read: SeriesReader, thresholds: Thresholds,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._read = read
        self._thresholds = thresholds
        self._now = now

    async def charts(self, incident: Incident) -> list[tuple[str, Chart]]:
        now = self._now()
        start, end = chart_span(incident, now)
        backend = chart_backend(incident)
        series = await self._read(span_minutes(start, end), end, backend)
        return incident_charts(incident, series.points, backend, self._thresholds, now=now)

    async def __call__(self, incident: Incident) -> list[ChartFile]:
        return [ChartFile(f"{name}.svg", chart.title, draw_svg(chart)) for name, chart in await self.charts(incident)]
