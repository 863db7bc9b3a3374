"""Whether a number the model states is one the service holds: in an evaluation or a tool result it ran.

Pure logic: the numbers of JSON data and of prose, and a tolerant match between them (a model
rounds 1834 ms to "1.8 s", 12.04 % to "12 %"). A number that matches nothing has no source.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# A number in prose, not part of a name: "P99", "5xx", "sH", "HTTP/1.1", "16:41", "2024-05-14" are not figures.
_NUMBER = re.compile(r"(?<![\w.:/-])(\d+(?:[.,]\d+)*)(?![\w:/-]|\.\d)(\s*(?:%|ms\b|s\b|x\b|×|k\b|req(?:uests?)?\b|rps\b))?")
_UNITLESS_SMALL = 10  # "2 servers", "the last 3 minutes": counts that small are wording, not measurements
# How a held value may be restated in a unit: milliseconds as seconds, and seconds as milliseconds.
_SCALES = {"s": (1.0, 1 / 1000), "ms": (1.0, 1000.0)}


def numbers_in(data: Any) -> set[float]:
    """Every number in JSON-like data: values, and figures inside its strings and keys."""
    found: set[float] = set()
    _collect(data, found)
    return found


def _collect(data: Any, found: set[float]) -> None:
    if isinstance(data, bool) or data is None:
        return
    if isinstance(data, int | float):
        if math.isfinite(data):
            found.add(float(data))
    elif isinstance(data, str):
        found.update(value for _, value, _ in _figures(data))
    elif isinstance(data, dict):
        for key, value in data.items():
            _collect(key, found)
            _collect(value, found)
    elif isinstance(data, list | tuple | set | frozenset):
        for item in data:
            _collect(item, found)


def _figures(text: str) -> Iterable[tuple[str, float, str]]:
    for match in _NUMBER.finditer(text):
        raw, unit = match.group(1), (match.group(2) or "").strip()
        try:
            value = float(raw.replace(",", ""))
        except ValueError:
            continue
        yield raw, value, unit


def is_held(value: float, known: set[float], *, stated: str | None = None, unit: str = "") -> bool:
    """True when `value` is some known number, at the precision it is stated in or within 0.5 %."""
    decimals = len(stated.replace(",", "").partition(".")[2]) if stated else 6
    step = 0.5 * 10 ** -decimals + 1e-9
    for held in known:
        for scale in _SCALES.get(unit, (1.0,)):
            candidate = held * scale
            if abs(value - candidate) <= max(step, 0.005 * abs(candidate)):
                return True
    return False


def unsourced_figures(text: str, known: set[float]) -> list[str]:
    """The figures of `text` that no known number holds, as written ("0.2 %")."""
    missing = []
    for raw, value, unit in _figures(text):
        if not unit and value.is_integer() and value <= _UNITLESS_SMALL:
            continue
        if not is_held(value, known, stated=raw, unit=unit):
            missing.append(f"{raw} {unit}".strip())
    return missing


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One lookup the model ran and the service answered: its name, the arguments it ran with, its numbers."""

    name: str
    arguments: tuple[tuple[str, str], ...]
    numbers: frozenset[float]

    def describe(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.arguments)})"


def call_holding(value: float, tool: str | None, calls: Iterable[ToolCallRecord]) -> ToolCallRecord | None:
    """The first call (of `tool`, when named) whose result holds `value` exactly as the service answered it."""
    for record in calls:
        if tool and record.name != tool:
            continue
        if any(abs(value - held) <= max(1e-9, 0.005 * abs(held)) for held in record.numbers):
            return record
    return None
