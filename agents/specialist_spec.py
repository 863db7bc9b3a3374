"""What defines a specialist: its signal, what it tells the model, its tools and its evaluator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .assessment import Assessment
from .config import Thresholds
from .report import Specialist
from .signals import SignalSnapshot


@dataclass(frozen=True, slots=True)
class SpecialistSpec:
    name: Specialist
    focus: str  # the paragraph of the system prompt that is this specialist's own
    tools: tuple[str, ...]  # names of read-only tools (see `agents.tools`) it may call
    evaluate: Callable[[SignalSnapshot, Thresholds], Assessment]
