"""A chart drawn as one standalone SVG document: the geometry here, the markup in `chart.svg.j2`.

Why a small template of our own rather than a charting library such as pygal: the charts are
all one kind (per-minute lines against time, limits, marked moments), and that takes about a
hundred lines of arithmetic. A library would bring its own styles and scripts to strip (pygal
links a tooltip script from a CDN by default, which an air-gapped network cannot reach), its
own release cycle to follow, and coordinates the tests could not predict. Here every point is
`Frame.x`/`Frame.y` of a value, so a test can check where it landed; the template is autoescaped
like any HTML, so a backend's name cannot become markup; and the colours are two CSS palettes
switched by `prefers-color-scheme`, so one file reads on light and dark pages alike.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import jinja2

from ..resources import resource_dir
from .model import Chart, Line, Mark

WIDTH, HEIGHT = 720, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 112, 52, 26
MINUTE = timedelta(minutes=1)
_HALF_MINUTE = timedelta(seconds=30)
_NICE_STEPS = (1, 2, 2.5, 5, 10)
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120)
_LABEL_CHAR_PX = 6.2  # about the width of a character at the labels' size
_MARK_ROW_PX = 12
_STYLE_CLASS = {"5xx": "e5xx", "4xx": "e4xx"}


@dataclass(frozen=True, slots=True)
class Frame:
    """Where a time and a value land: the plot area's box and what its edges stand for."""

    start: datetime
    end: datetime
    top: float  # the value at the top edge; the bottom edge is 0
    left: float = LEFT
    upper: float = TOP
    width: float = WIDTH - LEFT - RIGHT
    height: float = HEIGHT - TOP - BOTTOM

    @classmethod
    def of(cls, chart: Chart) -> "Frame":
        start = chart.minutes[0]
        end = max([chart.minutes[-1] + MINUTE, *(m.at for m in chart.marks if m.at >= start)])
        values = [v for line in chart.lines for v in line.values if v is not None]
        values += [t.value for t in chart.thresholds]
        return cls(start=start, end=end, top=nice_ceiling(max(values, default=0.0)))

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        return self.left + (at - self.start).total_seconds() / span * self.width

    def y(self, value: float) -> float:
        return self.upper + self.height - min(value, self.top) / self.top * self.height

    def point_x(self, minute: datetime) -> float:
        """A minute's value is drawn at the middle of its minute."""
        return self.x(minute + _HALF_MINUTE)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above value × 1.08 (a little headroom); 1 for nothing."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    target = value * 1.08
    magnitude = 10 ** math.floor(math.log10(target))
    return next(step * magnitude for step in _NICE_STEPS if step * magnitude >= target)


def value_ticks(top: float) -> list[float]:
    """Four or five round values from 0 to top."""
    for parts in (4, 5, 2):
        step = top / parts
        if abs(step - round(step, 6)) < 1e-9 and _is_round(step):
            return [step * i for i in range(parts + 1)]
    return [0.0, top]


def _is_round(step: float) -> bool:
    magnitude = 10 ** math.floor(math.log10(step))
    return any(abs(step - s * magnitude) < 1e-9 * magnitude for s in (1, 2, 2.5, 5))


def format_value(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value / 1000:g} s" if value >= 1000 else f"{value:.0f} ms"
    if unit == "%":
        return f"{value:g} %"
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def time_ticks(frame: Frame) -> list[datetime]:
    """Round minutes (every 1, 2, 5, 10, ... minutes) across the frame, eight at most."""
    minutes = (frame.end - frame.start) / MINUTE
    step = next((s for s in _TIME_STEPS if minutes / s <= 8), _TIME_STEPS[-1])
    whole = frame.start.replace(second=0, microsecond=0)
    if whole < frame.start:
        whole += MINUTE
    since_midnight = whole.hour * 60 + whole.minute
    tick = whole + (-since_midnight % step) * MINUTE
    ticks = []
    while tick <= frame.end:
        ticks.append(tick)
        tick += step * MINUTE
    return ticks


def segments(frame: Frame, minutes: tuple[datetime, ...], line: Line) -> list[list[tuple[float, float]]]:
    """The line's points, split where a minute had nothing to measure."""
    runs: list[list[tuple[float, float]]] = [[]]
    for minute, value in zip(minutes, line.values):
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((round(frame.point_x(minute), 1), round(frame.y(value), 1)))
    return [run for run in runs if run]


def _mark_rows(frame: Frame, marks: tuple[Mark, ...]) -> list[tuple[Mark, float, int, bool]]:
    """Each moment in view with its x, the row of its label (close labels do not overlap) and whether
    the label goes left of its line (near the right edge)."""
    placed: list[tuple[Mark, float, int, bool]] = []
    rows: list[tuple[float, float]] = []  # the span of the labels taken in each row
    right = frame.left + frame.width
    for mark in sorted(marks, key=lambda m: m.at):
        if not frame.start <= mark.at <= frame.end:
            continue
        x = frame.x(mark.at)
        width = len(mark.name) * _LABEL_CHAR_PX + 6
        leftward = x + width > right
        span = (x - width, x) if leftward else (x, x + width)
        row = next((i for i, (lo, hi) in enumerate(rows) if span[0] > hi or span[1] < lo), len(rows))
        if row == len(rows):
            rows.append(span)
        else:
            rows[row] = (min(rows[row][0], span[0]), max(rows[row][1], span[1]))
        placed.append((mark, round(x, 1), row, leftward))
    return placed


def description(chart: Chart) -> str:
    """The chart in words, for screen readers and for anyone the picture does not reach."""
    parts = [chart.summary] if chart.summary else []
    for line in chart.lines:
        known = [(m, v) for m, v in zip(chart.minutes, line.values) if v is not None]
        if not known:
            parts.append(f"{line.name}: no data.")
            continue
        peak_minute, peak = max(known, key=lambda mv: mv[1])
        parts.append(f"{line.name}: {format_value(known[0][1], chart.unit)} at {known[0][0]:%H:%M}, "
                     f"peak {format_value(peak, chart.unit)} at {peak_minute:%H:%M}, "
                     f"{format_value(known[-1][1], chart.unit)} at {known[-1][0]:%H:%M}.")
    parts += [f"{t.name}: {format_value(t.value, chart.unit)}." for t in chart.thresholds]
    parts += [f"{m.name} at {m.at:%H:%M:%S} UTC." for m in sorted(chart.marks, key=lambda m: m.at)]
    parts += list(chart.notes)
    return " ".join(parts)


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    return env.get_template("chart.svg.j2")


def draw_svg(chart: Chart) -> str:
    """The chart as a standalone SVG document (no script, no external reference)."""
    if not chart.minutes:
        raise ValueError("a chart needs at least one minute")
    frame = Frame.of(chart)
    legend, x = [], float(LEFT)
    for line in chart.lines:
        legend.append((line, round(x, 1)))
        x += 26 + len(line.name) * _LABEL_CHAR_PX + 14
    return _template().render(
        chart=chart, frame=frame, width=WIDTH, height=HEIGHT, desc=description(chart),
        value_ticks=[(round(frame.y(v), 1), format_value(v, chart.unit), v) for v in value_ticks(frame.top)],
        time_ticks=[(round(frame.x(t), 1), f"{t:%H:%M}") for t in time_ticks(frame)],
        lines=[(line, _STYLE_CLASS.get(line.style, line.style), segments(frame, chart.minutes, line))
               for line in chart.lines],
        thresholds=[(t, round(frame.y(t.value), 1), format_value(t.value, chart.unit)) for t in chart.thresholds],
        marks=_mark_rows(frame, chart.marks), legend=legend, style_class=_STYLE_CLASS, row_px=_MARK_ROW_PX,
    ).strip() + "\n"
