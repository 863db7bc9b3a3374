"""One specialist's step: the deterministic assessment, then, with a model, its reading of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from pydantic import BaseModel, ConfigDict, Field

from .assessment import Assessment
from .config import AnalysisConfig, Thresholds
from .grounding import ToolCallRecord, call_holding, is_held, numbers_in, unsourced_figures
from .links import foreign_urls
from .llm import LLMClient, fallback_reason
from .loop import LoopProgress, SubmitTool, run_tool_loop
from .metrics import AnalysisMetrics
from .prompts import specialist_prompt, specialist_system
from .report import Evidence, Finding, Provenance, Severity
from .request import AlertContext, ResolvedScope
from .signals import SignalSource
from .specialist_spec import SpecialistSpec
from .tools import PastIncidents, Toolbox

_MAX_EVIDENCE = 12


class CitedEvidence(BaseModel):
    """A number the model read in one of its tool results, and the tool it read it in."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1, max_length=100, description='What was measured, e.g. "latency_p99_ms".')
    value: float = Field(description="The value exactly as the tool result gave it.")
    unit: str = Field("", max_length=20)
    window_minutes: int = Field(ge=1, le=360, description="The window of the tool call it comes from.")
    scope: str | None = Field(None, max_length=200, description='"backend=api", "route=GET /x", "server=api/a1".')
    tool: str = Field(min_length=1, max_length=50, description="The tool whose result holds the value.")


class FindingSubmission(BaseModel):
    """What a specialist's model submits through `submit_finding`."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field(description="ok, warning or critical, by the thresholds in the instructions.")
    summary: str = Field(min_length=1, max_length=300, description="One sentence: what is wrong, where, how much.")
    details: str = Field(min_length=1, max_length=4000, description="The breakdown: backend, route, codes, states.")
    evidence: list[CitedEvidence] = Field(
        default_factory=list, max_length=10,
        description="Numbers you read in your tool results that the evaluation does not show, each with its tool. "
                    "A value no result of that tool holds is dropped.")


SUBMIT_FINDING = SubmitTool(
    "submit_finding", "Submit your finding for this signal. Call once, at the end.", FindingSubmission
)


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """What a specialist needs to consult the model; None of it exists in rules mode."""

    llm: LLMClient
    source: SignalSource
    config: AnalysisConfig
    deadline: float  # event-loop time by which the step must be done
    metrics: AnalysisMetrics | None = None
    urls: frozenset[str] = frozenset()  # the addresses model text may hold: the alerts', the service's
    tools: tuple[str, ...] = ()  # every specialist's tools: one tool set, so the four share a cached prefix
    timeline: dict | None = None  # the onset minute, the changes and the baseline window, for the prompt
    past: PastIncidents | None = None  # the `similar_incidents` tool, when there is an archive


def rules_finding(
    assessment: Assessment,
    reason: str | None = None,
    *,
    model: str | None = None,
    progress: LoopProgress | None = None,
    duration_ms: float = 0.0,
) -> Finding:
    """The deterministic result as a finding; `reason` says why the model's answer is not used."""
    spent = progress or LoopProgress()
    return Finding(
        specialist=assessment.specialist,
        severity=assessment.severity,
        summary=assessment.summary,
        details=assessment.details,
        evidence=list(assessment.evidence),
        provenance=Provenance(mode="rules", fallback_reason=reason, model=model, tokens=spent.tokens,
                              duration_ms=round(duration_ms, 1), tool_rounds=spent.tool_rounds),
    )


def known_numbers(assessment: Assessment, thresholds: Thresholds, scope: ResolvedScope,
                  timeline: dict | None = None) -> set[float]:
    """The numbers a model may state without a tool call: the evaluation's, the thresholds, the windows."""
    return numbers_in([assessment.to_context(), asdict(thresholds), scope.window_minutes, timeline or {}])


def merge_answer(
    assessment: Assessment,
    answer: FindingSubmission,
    provenance: Provenance,
    *,
    known: set[float] = frozenset(),
    calls: Iterable[ToolCallRecord] = (),
    urls: frozenset[str] = frozenset(),
) -> Finding:
    """The model's reading of the evaluation: the severity stays the measured one, and only sourced numbers stay.

    A disagreement on severity is written down. A summary or details stating a number that neither
    the evaluation nor one of the model's tool results holds is replaced by the evaluator's, and
    model evidence no named tool result holds is dropped; both are listed in the provenance.
    """
    calls = list(calls)
    held = set(known).union(*(c.numbers for c in calls))
    rules, said = assessment.severity, answer.severity
    summary, details, disagreement = answer.summary, answer.details, None
    dropped: list[str] = []
    if said.rank < rules.rank:
        disagreement = (f"The model rated this {said.value}; the deterministic evaluation found {rules.value} "
                        f"({assessment.summary}), so {rules.value} stands.")
        summary, details = assessment.summary, assessment.details
        dropped.append(f"severity {said.value}: below the measured {rules.value} (its summary: "
                       f"{answer.summary[:300]!r})")
    elif said.rank > rules.rank:
        disagreement = (f"The model rated this {said.value} where the deterministic evaluation found {rules.value}; "
                        f"the measured {rules.value} stands.")
    if reason := _unsourced(summary, held, urls):
        dropped.append(f"summary {summary[:300]!r}: {reason}")
        summary = assessment.summary
    if reason := _unsourced(details, held, urls):
        dropped.append(f"details: {reason}")
        details = assessment.details
    measured = {(e.metric, e.scope): e.value for e in assessment.evidence}
    extra: list[Evidence] = []
    for cited in answer.evidence:
        if (cited.metric, cited.scope) in measured:
            value = measured[(cited.metric, cited.scope)]
            if value is not None and not is_held(cited.value, {value}):
                dropped.append(f"evidence {_cited(cited)}: the evaluation measured {value:g}")
            continue
        record = call_holding(cited.value, cited.tool, calls)
        if record is None:
            dropped.append(f"evidence {_cited(cited)}: in no result of {cited.tool}")
            continue
        extra.append(Evidence(metric=cited.metric, value=cited.value, unit=cited.unit,
                              window_minutes=cited.window_minutes, scope=cited.scope,
                              source="tool", tool_call=record.describe()))
    return Finding(
        specialist=assessment.specialist,
        severity=rules,
        summary=summary,
        details=details,
        evidence=[*assessment.evidence, *extra][:_MAX_EVIDENCE],
        provenance=Provenance.model_validate({**provenance.model_dump(), "dropped_claims": dropped}),
        disagreement=disagreement,
    )


def _cited(cited: CitedEvidence) -> str:
    return f"{cited.metric} = {cited.value:g}{cited.unit and ' ' + cited.unit}{f' ({cited.scope})' if cited.scope else ''}"


def _unsourced(text: str, held: set[float], urls: frozenset[str]) -> str | None:
    if missing := unsourced_figures(text, held):
        return f"{', '.join(missing)} in no tool result or evaluation"
    if foreign := foreign_urls(text, urls):
        return f"an address that is not the alert's, the runbook's or the service's ({foreign[0]})"
    return None


async def run_specialist(
    spec: SpecialistSpec,
    assessment: Assessment,
    scope: ResolvedScope,
    alerts: list[AlertContext],
    plan: ModelPlan | None,
) -> Finding:
    """Never raises for the model's sake: any failure returns the deterministic finding with its reason."""
    if plan is None:
        return rules_finding(assessment)
    started = time.perf_counter()
    progress = LoopProgress()
    toolbox = Toolbox(plan.source, plan.tools or spec.tools, window_minutes=scope.window_minutes, at=scope.at,
                      backend=scope.backend, timeout_seconds=plan.config.tool_timeout_seconds, past=plan.past)
    try:
        async with asyncio.timeout_at(plan.deadline):
            result = await run_tool_loop(
                plan.llm,
                system=specialist_system(plan.config.thresholds),
                prompt=specialist_prompt(spec, assessment, scope, alerts, plan.timeline),
                submit=SUBMIT_FINDING,
                toolbox=toolbox,
                max_tool_rounds=plan.config.max_tool_rounds,
                metrics=plan.metrics,
                progress=progress,
                cache=plan.config.prompt_caching,
            )
    except Exception as exc:  # every failure of the model step falls back to the rules
        reason = fallback_reason(exc)
    else:
        provenance = Provenance(mode="llm", model=plan.llm.model, tokens=result.tokens, tool_rounds=result.tool_rounds,
                                duration_ms=_ms_since(started))
        return merge_answer(assessment, result.answer, provenance,
                            known=known_numbers(assessment, plan.config.thresholds, scope, plan.timeline),
                            calls=toolbox.calls,
                            urls=plan.urls)
    return rules_finding(assessment, reason, model=plan.llm.model, progress=progress, duration_ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)

