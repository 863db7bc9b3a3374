"""One specialist's step: the deterministic assessment, then, with a model, its reading of it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from .assessment import Assessment
from .config import AnalysisConfig
from .llm import LLMClient, fallback_reason
from .loop import LoopProgress, SubmitTool, run_tool_loop
from .metrics import AnalysisMetrics
from .prompts import specialist_prompt, specialist_system
from .report import Evidence, Finding, Provenance, Severity
from .request import AlertContext, ResolvedScope
from .signals import SignalSource
from .specialist_spec import SpecialistSpec
from .tools import Toolbox

_MAX_EVIDENCE = 12


class FindingSubmission(BaseModel):
    """What a specialist's model submits through `submit_finding`."""

    model_config = ConfigDict(extra="forbid")

    severity: Severity = Field(description="ok, warning or critical, by the thresholds in the instructions.")
    summary: str = Field(min_length=1, max_length=300, description="One sentence: what is wrong, where, how much.")
    details: str = Field(min_length=1, max_length=4000, description="The breakdown: backend, route, codes, states.")
    evidence: list[Evidence] = Field(default_factory=list, max_length=10,
                                     description="Numbers beyond the evaluation's.")


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


def merge_answer(
    assessment: Assessment, answer: FindingSubmission, provenance: Provenance
) -> Finding:
    """The model's finding, never less severe than the evaluator's; a disagreement is written down."""
    rules, said = assessment.severity, answer.severity
    severity = Severity.worst([rules, said])
    summary, details, disagreement = answer.summary, answer.details, None
    if said.rank < rules.rank:
        disagreement = (f"The model rated this {said.value}; the deterministic evaluation found {rules.value} "
                        f"({assessment.summary}), so {rules.value} stands.")
        summary, details = assessment.summary, f"{assessment.details} Model's reading: {answer.summary}"
    elif said.rank > rules.rank:
        disagreement = f"The model rated this {said.value} where the deterministic evaluation found {rules.value}."
    known = {(e.metric, e.scope) for e in assessment.evidence}
    extra = [e for e in answer.evidence if (e.metric, e.scope) not in known]
    return Finding(
        specialist=assessment.specialist,
        severity=severity,
        summary=summary,
        details=details,
        evidence=[*assessment.evidence, *extra][:_MAX_EVIDENCE],
        provenance=provenance,
        disagreement=disagreement,
    )


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
    toolbox = Toolbox(plan.source, spec.tools, window_minutes=scope.window_minutes, at=scope.at,
                      backend=scope.backend, timeout_seconds=plan.config.tool_timeout_seconds)
    try:
        async with asyncio.timeout_at(plan.deadline):
            result = await run_tool_loop(
                plan.llm,
                system=specialist_system(spec, plan.config.thresholds),
                prompt=specialist_prompt(assessment, scope, alerts),
                submit=SUBMIT_FINDING,
                toolbox=toolbox,
                max_tool_rounds=plan.config.max_tool_rounds,
                metrics=plan.metrics,
                progress=progress,
            )
    except Exception as exc:  # every failure of the model step falls back to the rules
        reason = fallback_reason(exc)
    else:
        provenance = Provenance(mode="llm", model=plan.llm.model, tokens=result.tokens, tool_rounds=result.tool_rounds,
                                duration_ms=_ms_since(started))
        return merge_answer(assessment, result.answer, provenance)
    return rules_finding(assessment, reason, model=plan.llm.model, progress=progress, duration_ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)

