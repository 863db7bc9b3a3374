"""The analysis workflow: read the signals, evaluate, four specialists at once, then one synthesis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone

from .alert_floor import hold_to_alerts
from .assessment import Assessment
from .comparison import compare_with_baseline
from .config import AnalysisConfig
from .grounding import numbers_in
from .errors import ERRORS
from .latency import LATENCY
from .llm import LLMClient
from .fingerprint import fingerprint_of
from .memory import IncidentMemory, RecallProbe, query_terms
from .metrics import AnalysisMetrics
from .onset import SignalChange
from .report import Fingerprint, Finding, OnsetSummary, Report, Severity, SimilarIncident, TokenUsage
from .request import AlertContext, AnalysisRequest, ResolvedScope, resolve_scope
from .saturation import SATURATION
from .signals import SignalSnapshot, SignalSource, SignalsUnavailable, collect_signals, locate_onset
from .specialist import ModelPlan, rules_finding, run_specialist
from .specialist_spec import SpecialistSpec
from .synthesis import SynthesisSubmission, culprit, draft_synthesis, run_synthesis, with_past_fix
from .links import urls_in
from .synthesis_check import Measured
from .tools import SIMILAR_INCIDENTS, PastIncidents
from .traffic import TRAFFIC

log = logging.getLogger(__name__)

# Recall reads a local archive in milliseconds; past this it is skipped rather than delay the analysis.
RECALL_TIMEOUT_SECONDS = 2.0

SPECIALISTS: tuple[SpecialistSpec, ...] = (LATENCY, ERRORS, SATURATION, TRAFFIC)
SHARED_TOOLS: tuple[str, ...] = tuple(dict.fromkeys(name for spec in SPECIALISTS for name in spec.tools))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


async def analyze(
    source: SignalSource,
    request: AnalysisRequest,
    *,
    config: AnalysisConfig,
    llm: LLMClient | None = None,
    metrics: AnalysisMetrics | None = None,
    now: Callable[[], datetime] = utc_now,
    memory: IncidentMemory | None = None,
) -> Report:
    """Analyse the golden signals of a window and return the report.

    Without `llm` (or beyond the hourly budget) every step is deterministic. With it, each
    specialist and the synthesis try the model and fall back to their deterministic result on
    any failure. Raises `SignalsUnavailable` only when the metrics themselves cannot be read.
    With `memory`, the past incidents most like this one are recalled once, shown to the
    specialists (a tool) and the synthesis, and listed in the report.
    """
    started = time.perf_counter()
    deadline = asyncio.get_running_loop().time() + config.deadline_seconds
    scope = resolve_scope(request, default_window=config.window_minutes, now=now())
    try:
        async with asyncio.timeout_at(deadline):
            onset = await locate_onset(source, scope, config.thresholds)
            scope = onset.scope
            snapshot = await collect_signals(source, scope, onset)
    except (SignalsUnavailable, TimeoutError) as exc:
        if metrics is not None:
            metrics.record_analysis("rules", "error")
        if isinstance(exc, TimeoutError):
            raise SignalsUnavailable("the metrics were not read before the analysis deadline") from exc
        raise
    assessments = [
        hold_to_alerts(compare_with_baseline(spec.evaluate(snapshot, config.thresholds), snapshot),
                       request.alerts, scope.backend)
        for spec in SPECIALISTS
    ]

    fingerprint = fingerprint_of(assessments, snapshot, culprit(assessments, scope))
    probe = recall_probe(fingerprint, assessments, request)
    similar = await recall(memory, probe)

    plan: ModelPlan | None = None
    skipped: str | None = None
    urls = trusted_urls(request.alerts, config.public_url)
    if llm is not None:
        if (skipped := await llm.start_analysis()) is None:
            # Keep part of the deadline for the synthesis, so slow specialists cannot starve it.
            reserve = min(config.llm_timeout_seconds, config.deadline_seconds / 4)
            past = PastIncidents(memory, probe) if memory is not None else None
            plan = ModelPlan(llm, source, config, deadline - reserve, metrics, urls,
                             SHARED_TOOLS + ((SIMILAR_INCIDENTS,) if past else ()), timeline(snapshot), past)

    if plan is None:
        findings = [rules_finding(a, skipped) for a in assessments]
    else:
        findings = list(await asyncio.gather(
            *(run_specialist(spec, a, scope, request.alerts, plan) for spec, a in zip(SPECIALISTS, assessments))
        ))
    draft = with_past_fix(draft_synthesis(assessments, scope), similar)
    conclusion, synthesis = await run_synthesis(
        findings, draft, scope, request.alerts, plan and replace(plan, deadline=deadline),
        measured=measured(snapshot, assessments, findings, draft, scope, config, urls, similar),
        skipped_reason=skipped, similar=similar,
    )

    steps = [*(f.provenance for f in findings), synthesis]
    tokens = sum((p.tokens for p in steps), TokenUsage())
    report = Report(
        timestamp=now(),
        overall_severity=Severity.worst(f.severity for f in findings),
        title=conclusion.title,
        diagnosis=conclusion.diagnosis,
        recommendations=conclusion.recommendations,
        findings=findings,
        window_minutes=scope.window_minutes,
        window_start=scope.start,
        window_end=scope.at,
        backend=scope.backend,
        culprit=culprit(assessments, scope),
        onset=onset_summary(snapshot),
        baseline_start=snapshot.baseline.start if snapshot.baseline else None,
        baseline_end=snapshot.baseline.end if snapshot.baseline else None,
        synthesis=synthesis,
        tokens=tokens,
        cost_usd=round(config.prices.cost_usd(tokens), 6),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        fingerprint=fingerprint,
        similar=similar,
    )
    if metrics is not None:
        mode = "llm" if any(p.mode == "llm" for p in steps) else "rules"
        outcome = "fallback" if any(p.fallback_reason for p in steps) else "ok"
        metrics.record_analysis(mode, outcome)
    return report


def recall_probe(fingerprint: Fingerprint, assessments: list[Assessment], request: AnalysisRequest) -> RecallProbe:
    """What recall is asked: this fingerprint, the words of what was found, and never this incident itself."""
    found = [text for a in assessments if a.severity != Severity.ok
             for text in (a.summary, *(c.label for c in a.causes))]
    return RecallProbe(fingerprint=fingerprint, terms=query_terms(fingerprint, found),
                       exclude=list(request.exclude_similar))


async def recall(memory: IncidentMemory | None, probe: RecallProbe) -> list[SimilarIncident]:
    """The similar past incidents; none when nothing is wrong, or (with a warning) when the archive fails."""
    if memory is None or not probe.fingerprint.signals:
        return []
    try:
        async with asyncio.timeout(RECALL_TIMEOUT_SECONDS):
            return list(await memory.recall(probe))
    except Exception as exc:  # an analysis without its memory beats none at all
        log.warning("similar incidents not recalled: %s", type(exc).__name__ if isinstance(exc, TimeoutError) else exc)
        return []


def timeline(snapshot: SignalSnapshot) -> dict:
    """What the specialists are told of time: the onset minute, the changes, and the baseline window to compare."""
    found: dict = {}
    if snapshot.onset is not None:
        first = snapshot.onset
        found["onset"] = {"minute": first.minute.isoformat(), "signal": first.signal,
                          "scope": f"backend={first.backend}" if first.backend else "all", "rule": first.rule}
        found["changes"] = [_change_line(c) for c in snapshot.changes[:10]]
    if snapshot.baseline is not None:
        found["baseline_window"] = {"start": snapshot.baseline.start.isoformat(),
                                    "end": snapshot.baseline.end.isoformat(),
                                    "window_minutes": snapshot.baseline.window_minutes}
    return found


def trusted_urls(alerts: list[AlertContext], public_url: str) -> frozenset[str]:
    """The addresses a report may link to: those the alerts carry (runbooks, graphs) and the service's own."""
    values = [v for a in alerts for v in (*a.annotations.values(), *a.labels.values())]
    return frozenset(urls_in([*values, public_url]))


def measured(snapshot: SignalSnapshot, assessments: list[Assessment], findings: list[Finding],
             draft: SynthesisSubmission, scope: ResolvedScope, config: AnalysisConfig,
             urls: frozenset[str], similar: list[SimilarIncident] = ()) -> Measured:
    """What a model's conclusion is checked against: the measured severity, backends, routes and numbers."""
    bad = [a for a in assessments if a.severity != Severity.ok]
    affected = {a.backend for a in bad} | {c.backend for a in bad for c in a.causes}
    affected.add(culprit(assessments, scope))
    routes = {p.route for p in (*snapshot.paths.top_by_errors, *snapshot.paths.top_by_latency)}
    routes |= {c.route for a in bad for c in a.causes if c.route}
    data = [[f.model_dump(mode="json", exclude={"provenance"}) for f in findings], draft.model_dump(mode="json"),
            [a.to_context() for a in assessments], asdict(config.thresholds), scope.window_minutes]
    return Measured(
        severity=Severity.worst(f.severity for f in findings),
        backends=frozenset(b.backend for b in snapshot.backends.backends) | frozenset(affected - {None}),
        affected=frozenset(affected - {None}), routes=frozenset(routes), numbers=numbers_in(data), urls=urls,
        past=tuple(similar),
    )


def onset_summary(snapshot: SignalSnapshot) -> OnsetSummary | None:
    """The onset as the report states it, with every other signal that changed in view."""
    first = snapshot.onset
    if first is None:
        return None
    return OnsetSummary(
        at=first.minute, signal=first.signal, scope=f"backend={first.backend}" if first.backend else "all",
        rule=first.rule, changes=[_change_line(c) for c in snapshot.changes[:10]],
    )


def _change_line(change: SignalChange) -> str:
    return f"{change.label} at {change.minute:%H:%M}"
