"""What a chart shows: lines of per-minute values, limits as horizontal lines, moments as vertical ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# The look of a line: each has a colour for light and dark backgrounds and its own dash, so the
# lines stay apart in grey print and for readers who do not tell the colours apart.
LineStyle = Literal["p50", "p95", "p99", "5xx", "4xx", "requests", "site"]
MarkKind = Literal["onset", "alert", "diagnosed", "resolved"]


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    style: LineStyle
    values: tuple[float | None, ...]  # one per minute of the chart; None where there was nothing to measure


@dataclass(frozen=True, slots=True)
class Threshold:
    """A level drawn across the chart: a limit the signal should stay under, or where it usually sits."""

    name: str
    value: float
    kind: Literal["limit", "baseline"] = "limit"


@dataclass(frozen=True, slots=True)
class Mark:
    kind: MarkKind
    name: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Chart:
    """Per-minute lines from `minutes[0]` to the end of `minutes[-1]`, in `unit` ("ms", "%", "req/min")."""

    title: str
    unit: str
    minutes: tuple[datetime, ...]
    lines: tuple[Line, ...]
    thresholds: tuple[Threshold, ...] = ()
    marks: tuple[Mark, ...] = ()
    summary: str = ""  # a sentence or two said before the figures of the description
    notes: tuple[str, ...] = field(default=())
