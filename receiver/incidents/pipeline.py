"""One stored notification, start to finish: split → dedup → analyse → render → record.

The HTTP edge has already validated and persisted the notification. Here it is split by what
its alerts concern (one part per backend, service or job), each part's lifecycle decision is
saved atomically on its own incident, the analysis runs, the post-mortem is rendered, and the
stream entry is acknowledged only once every part is saved, so every stage can run twice
without doing anything twice. The check after a resolution is scheduled, not run here: the
worker runs it when it is due (`recheck`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from agents import AnalysisRequest, Report, SignalsUnavailable

from ..ordering import KeyedOrder
from ..retry import REDIS_UNAVAILABLE, retrying
from . import correlation, lifecycle
from .analysis import Analyse, IncidentAnalysis
from .lifecycle import Action, Decision, Policy, Reason
from .metrics import IncidentMetrics
from .model import Delivery, Incident
from .postmortem import PostmortemWriter
from .repository import IncidentRepository
from .stream import AlertStream

log = logging.getLogger(__name__)

# Failures a later attempt can get past: the entry is left pending and retried, never recorded as final.
TRANSIENT = REDIS_UNAVAILABLE
# An analysis that could not read the metrics is tried again (up to `max_deliveries`), not recorded as failed.
ANALYSIS_RETRIES = (*TRANSIENT, SignalsUnavailable)
INDEX_LIMIT = 1000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class Applied:
    """A notification part's lifecycle decision and its incident before and after it (None: unchanged)."""

    part: Delivery
    decision: Decision
    before: Incident | None
    after: Incident | None

    @property
    def touches_incident(self) -> bool:
        """Written now, or written by an earlier attempt whose work may be unfinished."""
        return self.after is not None or self.decision.reason is Reason.ALREADY_APPLIED


class NotificationPipeline:
    """The stages one notification goes through; safe to run twice for the same entry."""

    def __init__(
        self,
        stream: AlertStream,
        incidents: IncidentRepository,
        analysis: IncidentAnalysis,
        *,
        postmortems: PostmortemWriter | None = None,
        metrics: IncidentMetrics | None = None,
        concurrency: int = 2,
        keep_result_seconds: float = 60.0,
        retry_seconds: tuple[float, float] = (0.5, 10.0),
        policy: Policy = lifecycle.DEFAULT_POLICY,
        now: Callable[[], datetime] = utc_now,
        on_change: Callable[[Incident], Awaitable[None]] | None = None,
    ) -> None:
        self.stream = stream
        self.incidents = incidents
        self.analysis = analysis
        self.postmortems = postmortems
        self.metrics = metrics
        self.keep_result_seconds = keep_result_seconds
        self.retry_seconds = retry_seconds
        self.policy = policy
        self._now = now
        # Told of the incident as the notification left it, before the entry is acknowledged: what it
        # does (enqueue an announcement) is done again if the entry is, so it must be idempotent.
        self.on_change = on_change
        self._analyses = asyncio.Semaphore(concurrency)
        # The notifications of one correlation key are applied in the order this worker took them.
        self._in_order = KeyedOrder()

    async def handle(self, delivery: Delivery) -> Incident | None:
        """split → dedup → analyse → render → record, for one stored notification; safe to run twice.

        Answers the incident of its first part.
        """
        parts = correlation.split(delivery)
        outcomes = await asyncio.gather(*(self._handle_part(key, part) for key, part in parts),
                                        return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:  # the entry stays pending; the parts that were saved are not applied again
            raise failed[0]
        done = [o for o in outcomes if not isinstance(o, BaseException)]
        await self._record(delivery, [applied for applied, _ in done])
        return done[0][1]

    async def _handle_part(self, key: str, part: Delivery) -> tuple[Applied, Incident | None]:
        applied = await self._dedup(key, part)
        incident = applied.after or applied.before
        if incident is not None and applied.touches_incident:
            if lifecycle.owed_analysis(incident, part.entry_id):
                await self._render(incident)  # the draft exists while the analysis runs
            incident = await self._analyse(incident, part.entry_id)
            await self._render(incident)
            await self._changed(incident)
        return applied, incident

    async def _dedup(self, key: str, part: Delivery) -> Applied:
        decisions: list[Decision] = []

        def change(current: Incident | None) -> Incident | None:
            decisions.append(lifecycle.decide(current, part, policy=self.policy))
            return lifecycle.apply(current, part, decisions[-1], now=self._now(), policy=self.policy)

        async with self._in_order(key):
            before, after = await self.incidents.change_latest(key, change, group_key=part.notification.group_key)
        return Applied(part, decisions[-1], before, after)

    async def _analyse(self, incident: Incident, entry_id: str) -> Incident:
        due = lifecycle.owed_analysis(incident, entry_id)
        if due is None:
            return incident
        report, error = await self._run("analysis", self.analysis.analyse, lifecycle.analysis_request(incident, due))
        if report is not None:
            return await self._keep_result(
                incident.id, lambda c: lifecycle.attach_report(c, due, report, now=self._now()))
        return await self.incidents.change(
            incident.id, lambda c: lifecycle.record_analysis_failure(c, due, error or "unknown error", now=self._now()))

    async def recheck(self, incident_id: str) -> Incident | None:
        """Run the check after an incident's resolution, which this worker claimed; render the result.

        A check that could not read the metrics is left scheduled and tried again once the claim
        lapses, until `policy.recheck_give_up` past its time.
        """
        incident = await self.incidents.get(incident_id)
        due = incident.recheck_due if incident is not None else None
        if incident is None or due is None:
            await self.incidents.forget_recheck(incident_id)
            return incident
        check = self.analysis.recheck or self.analysis.analyse
        try:
            report, error = await self._run("recheck", check, lifecycle.recheck_request(incident, due))
        except SignalsUnavailable as exc:
            if self._now() - due.at < self.policy.recheck_give_up:
                raise
            report, error = None, f"gave up, the signals stayed unreadable: {exc}"[:500]
        if report is not None:
            incident = await self._keep_result(
                incident.id, lambda c: lifecycle.attach_recheck(c, due, report, now=self._now()))
        else:
            incident = await self.incidents.change(
                incident.id,
                lambda c: lifecycle.record_recheck_failure(c, due, error or "unknown error", now=self._now()))
        await self._render(incident)
        await self._changed(incident)
        log.info("check after resolution done", extra={"incident": incident.id, "at": due.at.isoformat()})
        return incident

    async def _keep_result(self, incident_id: str, change: Callable[[Incident], Incident]) -> Incident:
        """Store a finished analysis, waiting out a short Redis outage rather than analysing again.

        Retried for as long as no other worker may reclaim the notification; after that the
        error stands, and whoever reclaims it runs the analysis again.
        """
        first, cap = self.retry_seconds
        keep = retrying(TRANSIENT, what="storing the analysis (redis)", first=first, cap=cap,
                        within=self.keep_result_seconds)
        return await keep(self.incidents.change, incident_id, change)

    async def _run(self, kind: str, analyse: Analyse, request: AnalysisRequest) -> tuple[Report | None, str | None]:
        """One analysis under the concurrency limit; a failure is returned, a transient one raised."""
        async with self._analyses:
            if self.metrics is not None:
                self.metrics.analyses_running.inc()
            started = time.perf_counter()
            try:
                report = await analyse(request)
            except ANALYSIS_RETRIES:
                self._count_analysis(kind, "none", "retry", started)
                raise
            except Exception as exc:  # the analysis' own failure: recorded on the incident, not retried
                log.warning("%s failed", kind, exc_info=True)
                self._count_analysis(kind, "none", "failed", started)
                return None, f"{type(exc).__name__}: {exc}"[:500]
            finally:
                if self.metrics is not None:
                    self.metrics.analyses_running.dec()
        self._count_analysis(kind, report.synthesis.mode, "ok", started)
        return report, None

    def _count_analysis(self, kind: str, mode: str, outcome: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.analyses.labels(kind, mode, outcome).inc()
            self.metrics.analysis_seconds.labels(kind).observe(time.perf_counter() - started)

    async def _render(self, incident: Incident) -> None:
        if self.postmortems is None:
            return
        await self.postmortems.write(incident)
        await self.postmortems.write_index(lambda: self.incidents.summaries(limit=INDEX_LIMIT))

    async def _changed(self, incident: Incident) -> None:
        if self.on_change is not None:
            await self.on_change(incident)

    async def _record(self, delivery: Delivery, parts: list[Applied]) -> None:
        await self.stream.ack(delivery.entry_id)
        for applied in parts:
            decision, before, after = applied.decision, applied.before, applied.after
            incident = after or before
            log.info("notification processed", extra={
                "entry": applied.part.entry_id, "action": decision.action.value, "reason": decision.reason.value,
                "incident": incident.id if incident else None,
            })
            if self.metrics is None:
                continue
            self.metrics.decisions.labels(decision.action.value, decision.reason.value).inc()
            if after is not None and decision.action is Action.OPEN:
                self.metrics.opened.inc()
            if after is not None and after.status == "resolved" and (
                    before is None or before.id != after.id or before.status != "resolved"):
                self.metrics.resolved.inc()

    async def abandon(self, delivery: Delivery, reason: str) -> None:
        """Record on the incidents that a notification owed work was given up."""
        for key, part in correlation.split(delivery):
            current = await self.incidents.latest_for(key)
            if current is not None and lifecycle.owed_analysis(current, part.entry_id):
                text = f"Processing of a notification {reason}."
                incident = await self.incidents.change(
                    current.id, lambda c, part=part, text=text: lifecycle.abandon(c, part.entry_id, text,
                                                                                    now=self._now()))
                await self._render(incident)
                await self._changed(incident)
