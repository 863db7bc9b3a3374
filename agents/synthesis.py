"""The conclusion of an analysis: title, diagnosis and recommendations, by rules and then by the model."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .assessment import Assessment, Cause, worst_cause_first
from .llm import fallback_reason
from .loop import LoopProgress, SubmitTool, run_tool_loop
from .memory import past_fix_line
from .playbook import ALL_CLEAR, recommend
from .prompts import SYNTHESIS_SYSTEM, synthesis_prompt
from .report import Finding, Provenance, Severity, SimilarIncident
from .request import AlertContext, ResolvedScope
from .specialist import ModelPlan
from .synthesis_check import Measured, check_conclusion

_ORDER = {"latency": 0, "errors": 1, "saturation": 2, "traffic": 3}
_MAX_TITLE = 100


class SynthesisSubmission(BaseModel):
    """The conclusion, as the model submits it through `submit_synthesis` and as rules write it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=_MAX_TITLE, description="Affected backend or route, worst numbers.")
    diagnosis: str = Field(min_length=1, max_length=4000, description="A few sentences: the most likely cause.")
    recommendations: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        min_length=1, max_length=5, description="Concrete actions, most important first.")


SUBMIT_SYNTHESIS = SubmitTool(
    "submit_synthesis", "Submit the title, diagnosis and recommendations of the analysis.", SynthesisSubmission
)


def draft_synthesis(assessments: list[Assessment], scope: ResolvedScope) -> SynthesisSubmission:
    """The rules' conclusion: headline numbers, the leading cause and the playbook's actions for each cause."""
    bad = sorted((a for a in assessments if a.severity != Severity.ok),
                 key=lambda a: (-a.severity.rank, _ORDER[a.specialist]))
    causes = _distinct(worst_cause_first(c for a in bad for c in a.causes))
    if not bad:
        subject = scope.backend or "All backends"
        return SynthesisSubmission(
            title=f"{subject}: all golden signals within thresholds",
            diagnosis=f"Nothing out of bounds over the {scope.window_minutes} minutes to {scope.at:%Y-%m-%d %H:%M} "
                      "UTC. " + " ".join(a.summary for a in sorted(assessments, key=lambda a: _ORDER[a.specialist])),
            recommendations=[ALL_CLEAR],
        )
    top = causes[0] if causes else None
    subject = _subject(top, bad, scope)
    headlines = [a.headline for a in bad if a.headline]
    title = f"{subject}: {' and '.join(headlines)}"
    if top is not None and top.label.lower() not in title.lower():
        title += f" ({top.label})"
    diagnosis = " ".join([*(a.summary for a in bad), *_explain(causes, bad)])
    recommendations = list(dict.fromkeys(recommend(c) for c in causes))[:5] or [
        f"Investigate the {bad[0].specialist} signal of {subject}."
    ]
    return SynthesisSubmission(title=_clip(title), diagnosis=diagnosis, recommendations=recommendations)


def with_past_fix(draft: SynthesisSubmission, similar: list[SimilarIncident]) -> SynthesisSubmission:
    """The draft with, second, what fixed the closest past incident, quoted from its post-mortem (if written)."""
    line = next((past_fix_line(s) for s in similar if s.mitigation), None)
    if line is None or draft.recommendations == [ALL_CLEAR]:
        return draft
    actions = [*draft.recommendations[:1], line, *draft.recommendations[1:]][:5]
    return draft.model_copy(update={"recommendations": actions})


async def run_synthesis(
    findings: list[Finding],
    draft: SynthesisSubmission,
    scope: ResolvedScope,
    alerts: list[AlertContext],
    plan: ModelPlan | None,
    *,
    measured: Measured | None = None,
    skipped_reason: str | None = None,
    similar: list[SimilarIncident] = (),
) -> tuple[SynthesisSubmission, Provenance]:
    """One model step that may rewrite the draft; any failure, or an answer the checks reject, keeps the draft.

    The answer must agree with `measured` (see `agents.synthesis_check`); a recommendation that
    does not is dropped, and the provenance lists what was dropped or why all of it was rejected.
    """
    if plan is None:
        return draft, Provenance(mode="rules", fallback_reason=skipped_reason)
    started = time.perf_counter()
    progress = LoopProgress()
    try:
        async with asyncio.timeout_at(plan.deadline):
            result = await run_tool_loop(
                plan.llm,
                system=SYNTHESIS_SYSTEM,
                prompt=synthesis_prompt(
                    [f.model_dump(mode="json", exclude={"provenance"}, exclude_none=True) for f in findings],
                    draft.model_dump(mode="json"), scope, alerts,
                    [s.model_dump(mode="json", exclude_none=True) for s in similar],
                ),
                submit=SUBMIT_SYNTHESIS,
                metrics=plan.metrics,
                progress=progress,
                thinking={"type": "adaptive"} if plan.config.synthesis_thinking == "adaptive" else None,
            )
    except Exception as exc:  # every failure of the model step falls back to the rules
        reason = fallback_reason(exc)
    else:
        answer = result.answer
        checked = check_conclusion(answer.title, answer.diagnosis, answer.recommendations,
                                   playbook=draft.recommendations, measured=measured) if measured else None
        if checked is None or checked.rejected is None:
            if checked is not None:
                answer = answer.model_copy(update={"recommendations": list(checked.recommendations)})
            return answer, Provenance(mode="llm", model=plan.llm.model, tokens=result.tokens,
                                      duration_ms=_ms_since(started),
                                      dropped_claims=list(checked.dropped) if checked else [])
        return draft, Provenance(
            mode="rules", fallback_reason=f"model conclusion rejected: {checked.rejected}", model=plan.llm.model,
            tokens=result.tokens, duration_ms=_ms_since(started),
            dropped_claims=[f"title {answer.title[:200]!r}", f"diagnosis {answer.diagnosis[:300]!r}",
                            *checked.dropped])
    return draft, Provenance(mode="rules", fallback_reason=reason, model=plan.llm.model, tokens=progress.tokens,
                             duration_ms=_ms_since(started))


def _distinct(causes: tuple[Cause, ...]) -> list[Cause]:
    seen: set[tuple] = set()
    out = []
    for cause in causes:
        key = (cause.kind, cause.backend, cause.route)
        if key not in seen:
            seen.add(key)
            out.append(cause)
    return out


def culprit(assessments: list[Assessment], scope: ResolvedScope) -> str | None:
    """The backend the measured figures point at: the worst cause's, else the worst signal's; None when all is well."""
    bad = sorted((a for a in assessments if a.severity != Severity.ok),
                 key=lambda a: (-a.severity.rank, _ORDER[a.specialist]))
    if not bad:
        return None
    causes = worst_cause_first(c for a in bad for c in a.causes if c.kind != "alert_firing")
    named = [c.backend for c in causes if c.backend] + [a.backend for a in bad if a.backend]
    return named[0] if named else scope.backend


def _subject(top: Cause | None, bad: list[Assessment], scope: ResolvedScope) -> str:
    if top is not None and top.backend:
        return top.backend
    named = next((a.backend for a in bad if a.backend), None)
    if named:
        return named
    if top is not None and top.route:
        return top.route
    return scope.backend or "all backends"


def _explain(causes: list[Cause], bad: list[Assessment]) -> list[str]:
    if not causes:
        return []
    top = causes[0]
    signals = sorted({a.specialist for a in bad if any(c.kind == top.kind and c.backend == top.backend
                                                       for c in a.causes)}, key=_ORDER.get)
    where = f" on {top.backend}" if top.backend else ""
    where += f" ({top.route})" if top.route else ""
    sentences = []
    if len(signals) > 1:
        sentences.append(f"The {' and the '.join(signals)} signals share one cause: {top.label}{where}.")
    elif not any(top.label.lower() in a.summary.lower() for a in bad):
        sentences.append(f"Most likely cause: {top.label}{where}.")
    others = [c for c in causes[1:] if c.severity != Severity.ok][:2]
    if others:
        sentences.append("Also seen: " + "; ".join(
            f"{c.label}" + (f" on {c.backend}" if c.backend else "") for c in others) + ".")
    return sentences


def _clip(title: str) -> str:
    return title if len(title) <= _MAX_TITLE else title[: _MAX_TITLE - 1] + "\u2026"


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
