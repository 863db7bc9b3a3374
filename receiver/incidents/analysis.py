"""How incidents are analysed: the full analysis when alerts fire or join, rules only after resolution."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agents import (
    AnalysisConfig,
    AnalysisMetrics,
    AnalysisRequest,
    IncidentMemory,
    LLMClient,
    Report,
    SignalSource,
    analyze,
)

Analyse = Callable[[AnalysisRequest], Awaitable[Report]]


@dataclass(frozen=True)
class IncidentAnalysis:
    """How incidents are analysed: `analyse` when alerts fire or join, `recheck` (rules only) after resolution.

    Without `recheck`, the check after a resolution calls `analyse` too.
    """

    analyse: Analyse
    recheck: Analyse | None = None


def incident_analysis(queries: SignalSource, config: AnalysisConfig, llm: LLMClient | None,
                      metrics: AnalysisMetrics | None, memory: IncidentMemory | None = None) -> IncidentAnalysis:
    """The analysis the incident worker runs: with the model (if any) and the memory of past incidents (if
    any) when alerts fire, rules only after."""

    async def analyse(request: AnalysisRequest) -> Report:
        return await analyze(queries, request, config=config, llm=llm, metrics=metrics, memory=memory)

    async def recheck(request: AnalysisRequest) -> Report:
        return await analyze(queries, request, config=config, llm=None, metrics=metrics)

    return IncidentAnalysis(analyse=analyse, recheck=recheck)
