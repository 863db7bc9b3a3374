"""The incident worker against a real Redis: consumer group, reclaim, idempotency, storms."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from receiver.resources import resource_dir
from receiver.incidents import (
    AlertStream,
    IncidentAnalysis,
    IncidentMetrics,
    IncidentRepository,
    IncidentWorker,
    PostmortemWriter,
)
from agents import SignalsUnavailable
from receiver.incidents import lifecycle
from receiver.incidents.notification import Notification

from tests.support.incidents import (
    PATIENCE,
    T0,
    FakeAnalysis,
    delivery,
    eventually,
    group_payload,
    grouped,
    ok_report,
    payload,
    rule_alert,
)

pytestmark = pytest.mark.integration

# A worker refreshes the entries it works on every third of `claim_min_idle`. At 1 s that is far beyond the
# delays of a busy machine, so only an entry whose worker stopped or failed it is reclaimed; with less, a
# late refresh lets a worker reclaim its own entry in progress, and that counts as one more delivery.
RECLAIM_IDLE = 1.0


class Clock:
    def __init__(self, start: datetime) -> None:
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> datetime:
        self.value += timedelta(**delta)
        return self.value


@dataclass
class Parts:
    redis: Redis
    stream: AlertStream
    incidents: IncidentRepository
    writer: PostmortemWriter
    metrics: IncidentMetrics
    registry: CollectorRegistry
    directory: Path

    def worker(self, analyse, *, recheck=None, **options) -> IncidentWorker:
        options.setdefault("block_seconds", 0.05)
        options.setdefault("housekeeping_seconds", 0.2)
        return IncidentWorker(self.stream, self.incidents, IncidentAnalysis(analyse=analyse, recheck=recheck),
                              postmortems=self.writer, metrics=self.metrics, **options)

    async def add(self, name_or_body, received_at: datetime) -> str:
        body = payload(name_or_body) if isinstance(name_or_body, str) else name_or_body
        return await self.stream.add(Notification.model_validate(body), received_at=received_at)

    def postmortems(self) -> list[Path]:
        return sorted(p for p in self.directory.glob("*.md") if p.name != "README.md")

    async def only_incident(self):
        summaries = await self.incidents.summaries(limit=10)
        assert len(summaries) == 1, summaries
        return await self.incidents.get(summaries[0].id)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def parts(real_redis: Redis, tmp_path: Path) -> Parts:
    registry = CollectorRegistry()
    directory = tmp_path / "post-mortems"
    return Parts(real_redis, AlertStream(real_redis), IncidentRepository(real_redis),
                 PostmortemWriter(directory, templates=resource_dir("templates"), slo_target_pct=99.9), IncidentMetrics.create(registry), registry,
                 directory)


@contextlib.asynccontextmanager
async def running(*workers: IncidentWorker):
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def settled(parts: Parts) -> bool:
    """Everything stored was taken and acknowledged."""
    depth = await parts.stream.depth()
    return depth.waiting == 0 and depth.pending == 0


async def test_first_firing_opens_an_incident_analysed_with_its_alerts(parts: Parts) -> None:
    analyse = FakeAnalysis()
    await parts.add("backend-5xx-firing", T0)
    async with running(parts.worker(analyse)):
        incident = await eventually(lambda: _with_report(parts))
        await eventually(lambda: settled(parts))

    assert incident.status == "open"
    assert incident.title == "Backend api: 5xx rate above 10%"
    [request] = analyse.requests
    assert request.backend == "api"
    assert [a.alertname for a in request.alerts] == ["Backend5xxRateHigh"]
    assert request.at == T0
    assert request.at - timedelta(minutes=request.window_minutes) < incident.onset_at  # the onset is in view
    [path] = parts.postmortems()
    text = path.read_text()
    assert incident.id in text and "Backend api answers 5xx" in text
    assert incident.id in (parts.directory / "README.md").read_text()
    assert parts.sample("incident_copilot_incidents_opened_total") == 1
    assert parts.sample("incident_copilot_incident_analyses_total", kind="analysis", mode="rules", outcome="ok") == 1


async def _with_report(parts: Parts):
    summaries = await parts.incidents.summaries(limit=1)
    if not summaries:
        return None
    incident = await parts.incidents.get(summaries[0].id)
    return incident if incident.report is not None else None


async def test_duplicate_and_retried_deliveries_make_one_incident(parts: Parts) -> None:
    analyse = FakeAnalysis()
    # Both Alertmanagers of an HA pair, then a retry of the first after a lost answer.
    for seconds in (0, 15, 70):
        await parts.add("backend-5xx-firing", T0 + timedelta(seconds=seconds))
    async with running(parts.worker(analyse, concurrency=3)):
        await eventually(lambda: _with_report(parts))
        await eventually(lambda: settled(parts))

    incident = await parts.only_incident()
    assert len(analyse.requests) == 1
    assert [e.kind for e in incident.timeline].count("notified") == 1
    assert not any(e.kind == "repeat" for e in incident.timeline)
    assert len(parts.postmortems()) == 1
    assert parts.sample("incident_copilot_incident_decisions_total", action="ignore",
                        reason="duplicate_delivery") == 2


async def test_the_same_entry_processed_twice_changes_nothing(parts: Parts) -> None:
    """A worker that died after saving but before acknowledging: the entry is processed again."""
    analyse = FakeAnalysis()
    worker = parts.worker(analyse)
    await parts.stream.ensure_group()
    entry = await parts.add("backend-5xx-firing", T0)
    [taken] = await parts.stream.read("w", count=1, block_ms=100)
    first = await worker.handle(taken)
    again = await worker.handle(delivery("backend-5xx-firing", entry, T0))

    assert again == first
    assert len(analyse.requests) == 1
    assert (await parts.only_incident()).timeline == first.timeline


async def test_a_split_notification_processed_twice_applies_each_part_once(parts: Parts) -> None:
    """A notification naming two backends, taken again by a worker after its first one died unacknowledged."""
    analyse = FakeAnalysis()
    worker = parts.worker(analyse)
    await parts.stream.ensure_group()
    body = grouped([rule_alert("Backend5xxRateHigh", "api"), rule_alert("Backend5xxRateHigh", "web")],
                   by=("alertname",))
    entry = await parts.add(body, T0)
    [taken] = await parts.stream.read("w", count=1, block_ms=100)
    await worker.handle(taken)
    await worker.handle(delivery(body, entry, T0))

    summaries = await parts.incidents.summaries()
    assert len(summaries) == 2 and sorted(r.backend for r in analyse.requests) == ["api", "web"]
    for summary in summaries:
        incident = await parts.incidents.get(summary.id)
        assert len(incident.applied) == 1 and incident.applied[0].startswith(f"{entry}#")


async def test_a_repeat_only_adds_to_the_timeline(parts: Parts) -> None:
    analyse = FakeAnalysis()
    async with running(parts.worker(analyse)):
        await parts.add("backend-5xx-firing", T0)
        await eventually(lambda: _with_report(parts))
        for hours in (4, 8):  # Alertmanager's repeat_interval
            await parts.add("backend-5xx-firing", T0 + timedelta(hours=hours))
        await eventually(lambda: settled(parts))

    incident = await parts.only_incident()
    assert len(analyse.requests) == 1
    [repeat] = [e for e in incident.timeline if e.kind == "repeat"]
    assert repeat.count == 2 and repeat.last_at == T0 + timedelta(hours=8)


async def test_a_new_alert_joining_the_group_updates_the_same_incident(parts: Parts) -> None:
    analyse = FakeAnalysis()
    async with running(parts.worker(analyse)):
        await parts.add("backend-5xx-firing", T0)
        await eventually(lambda: _with_report(parts))
        await parts.add("backend-5xx-joined", T0 + timedelta(minutes=2))
        await eventually(lambda: settled(parts))

    incident = await parts.only_incident()
    assert len(analyse.requests) == 2
    assert len(analyse.requests[1].alerts) == 2
    assert incident.report_revision == 2
    assert {a.severity for a in incident.alerts} == {"critical", "warning"}
    assert len(parts.postmortems()) == 1


async def test_a_worse_severity_re_sent_by_both_peers_is_recorded_once(parts: Parts) -> None:
    warning = payload("backend-5xx-firing")
    warning["alerts"][0]["labels"]["severity"] = "warning"
    analyse = FakeAnalysis()
    async with running(parts.worker(analyse)):
        await parts.add(warning, T0)
        await eventually(lambda: _with_report(parts))
        # Both Alertmanagers of an HA pair send the same fingerprint, now critical, within seconds.
        for seconds in (60, 63):
            await parts.add("backend-5xx-firing", T0 + timedelta(seconds=seconds))
        await eventually(lambda: settled(parts))

    incident = await parts.only_incident()
    assert [e.text for e in incident.timeline if e.kind == "alert_changed"] == [
        "Backend5xxRateHigh on api: severity warning → critical"]
    assert incident.alerts[0].severity == "critical" and incident.report_revision == 2
    assert [r.alerts[0].severity for r in analyse.requests] == ["warning", "critical"]
    assert "severity warning → critical" in parts.postmortems()[0].read_text()
    assert parts.sample("incident_copilot_incident_decisions_total", action="update",
                        reason="alert_severity_raised") == 1
    assert parts.sample("incident_copilot_incident_decisions_total", action="ignore",
                        reason="duplicate_delivery") == 1


async def test_resolution_closes_the_incident_after_a_rules_check(parts: Parts) -> None:
    clock = Clock(T0 + timedelta(seconds=40))
    analyse, recheck = FakeAnalysis(), FakeAnalysis(ok_report())
    async with running(parts.worker(analyse, recheck=recheck, now=clock)):
        await fire_and_resolve(parts, clock)
        waiting = await parts.only_incident()
        assert waiting.status == "resolved" and waiting.recheck is None and recheck.requests == []
        clock.advance(minutes=5)  # 10:09, past the end (10:03:15.5) and the five minutes after it
        incident = await eventually(lambda: _rechecked(parts))
        await eventually(lambda: _postmortem_says(parts, "found the signals back to normal"))

    assert incident.status == "resolved"
    assert incident.time_to_detect == timedelta(seconds=29.9)  # onset 09:41:30.1, notified 09:42:00
    assert incident.time_to_diagnose == timedelta(seconds=40)
    assert incident.time_to_resolve == timedelta(minutes=21, seconds=45.4)  # the last alert ended 10:03:15.5
    assert incident.recheck is not None and incident.recheck.normal and incident.recheck_due is None
    [check] = recheck.requests
    assert check.backend == "api" and check.alerts == [] and check.window_minutes == 5
    assert check.at == incident.ended_at + timedelta(minutes=5) and check.baseline_before == incident.onset_at
    assert len(analyse.requests) == 1
    assert parts.sample("incident_copilot_incidents_resolved_total") == 1


async def test_resolved_before_the_analysis_finished(parts: Parts) -> None:
    analyse, recheck = FakeAnalysis(), FakeAnalysis(ok_report())
    analyse.hold()
    async with running(parts.worker(analyse, recheck=recheck, concurrency=2)):
        await parts.add("backend-5xx-firing", T0)
        await asyncio.wait_for(analyse.started.wait(), PATIENCE)
        await parts.add("backend-5xx-resolved", T0 + timedelta(minutes=22))
        resolved = await eventually(lambda: _rechecked(parts))
        assert resolved.report is None and resolved.status == "resolved"
        analyse.release()
        await eventually(lambda: settled(parts))

    incident = await parts.only_incident()
    assert incident.status == "resolved" and incident.report is not None
    assert incident.diagnosed_at is not None and incident.ended_at is not None
    assert incident.analysis_due is None and incident.recheck_due is None
    text = parts.postmortems()[0].read_text()
    assert "Backend api answers 5xx" in text and "Status:** Resolved" in text
    assert "(analysis in progress)" not in text


async def fire_and_resolve(parts: Parts, clock: Clock) -> None:
    """The api 5xx alert fires, is analysed, and resolves 22 minutes later (by `clock` too)."""
    await parts.add("backend-5xx-firing", T0)
    await eventually(lambda: _with_report(parts))
    clock.advance(minutes=22)
    await parts.add("backend-5xx-resolved", T0 + timedelta(minutes=22))
    await eventually(lambda: settled(parts))


async def _postmortem_says(parts: Parts, words: str) -> bool:
    return any(words in path.read_text() for path in parts.postmortems())


async def _rechecked(parts: Parts):
    summaries = await parts.incidents.summaries(limit=1)
    if not summaries:
        return None
    incident = await parts.incidents.get(summaries[0].id)
    return incident if incident.recheck is not None else None


async def test_a_worker_killed_mid_analysis_is_finished_by_another(parts: Parts) -> None:
    stuck = FakeAnalysis()
    stuck.hold()
    first = parts.worker(stuck, consumer="first", claim_min_idle=0.3)
    task = asyncio.create_task(first.run())
    await parts.add("backend-5xx-firing", T0)
    await asyncio.wait_for(stuck.started.wait(), PATIENCE)
    task.cancel()  # the process dies with the analysis in flight
    await asyncio.gather(task, return_exceptions=True)
    assert (await parts.stream.depth()).pending == 1

    finisher = FakeAnalysis()
    async with running(parts.worker(finisher, consumer="second", claim_min_idle=0.3)):
        incident = await eventually(lambda: _with_report(parts))
        await eventually(lambda: settled(parts))

    assert len(finisher.requests) == 1
    assert incident.id == (await parts.only_incident()).id
    assert len(parts.postmortems()) == 1
    assert [e.kind for e in incident.timeline].count("notified") == 1


async def test_a_busy_worker_keeps_its_jobs_from_being_reclaimed(parts: Parts) -> None:
    slow, other = FakeAnalysis(), FakeAnalysis()
    slow.hold()
    peer = parts.worker(other, consumer="other", claim_min_idle=RECLAIM_IDLE)
    looked = watch_reclaims(peer)
    clock = asyncio.get_running_loop().time
    async with running(parts.worker(slow, consumer="slow", claim_min_idle=RECLAIM_IDLE)):
        await parts.add("backend-5xx-firing", T0)
        await asyncio.wait_for(slow.started.wait(), PATIENCE)
        began = clock()

        async def looked_after_twice_the_idle_time() -> bool:
            return bool(looked) and looked[-1] > began + 2 * RECLAIM_IDLE

        async with running(peer):
            # Unrefreshed, the entry would be idle long enough for the peer to take it by now.
            await eventually(looked_after_twice_the_idle_time)
            slow.release()
            await eventually(lambda: _with_report(parts))
            await eventually(lambda: settled(parts))

    assert len(slow.requests) == 1 and other.requests == []


def watch_reclaims(worker: IncidentWorker) -> list[float]:
    """The loop times at which `worker` starts looking for entries to reclaim, as it goes."""
    looked: list[float] = []
    worker.stream = AlertStream(worker.stream.redis)  # its own, so that only its passes are seen
    reclaim = worker.stream.reclaim

    async def watched(*args, **kwargs):
        looked.append(asyncio.get_running_loop().time())
        return await reclaim(*args, **kwargs)

    worker.stream.reclaim = watched  # type: ignore[method-assign]
    return looked


async def test_a_storm_is_queued_and_analysed_at_most_k_at_once(parts: Parts) -> None:
    analyse = FakeAnalysis(delay=0.01)
    analyse.hold()  # until the worker has as many analyses running as it may
    for index in range(200):
        await parts.add(group_payload(index), T0 + timedelta(milliseconds=index))
    async with running(parts.worker(analyse, concurrency=3)):
        await asyncio.wait_for(_wait_running(analyse, 3), PATIENCE)
        analyse.release()
        await eventually(lambda: _count_with_reports(parts, 200))
        await eventually(lambda: settled(parts))

    assert len(analyse.requests) == 200
    assert analyse.most_at_once == 3
    assert len(parts.postmortems()) == 200
    assert await parts.incidents.count() == 200


async def _count_with_reports(parts: Parts, expected: int) -> bool:
    summaries = await parts.incidents.summaries(limit=expected + 1)
    return len(summaries) == expected and all(s.diagnosed_at is not None for s in summaries)


async def test_two_workers_share_a_storm_without_doing_anything_twice(parts: Parts) -> None:
    one, two = FakeAnalysis(delay=0.01), FakeAnalysis(delay=0.01)
    for analyse in (one, two):
        analyse.hold()  # until both have work in hand: neither can take the whole storm
    for index in range(60):
        await parts.add(group_payload(index), T0)
        await parts.add(group_payload(index), T0 + timedelta(seconds=10))  # the HA peer's copy
    async with running(parts.worker(one, consumer="one"), parts.worker(two, consumer="two")):
        for analyse in (one, two):
            await asyncio.wait_for(analyse.started.wait(), PATIENCE)
        for analyse in (one, two):
            analyse.release()
        await eventually(lambda: _count_with_reports(parts, 60))
        await eventually(lambda: settled(parts))

    assert len(one.requests) + len(two.requests) == 60
    assert one.requests and two.requests


async def test_a_failed_analysis_is_recorded_and_not_retried(parts: Parts) -> None:
    broken = FakeAnalysis(fail=RuntimeError("model answered nonsense"))
    async with running(parts.worker(broken, claim_min_idle=0.1)):
        await parts.add("backend-5xx-firing", T0)
        await eventually(lambda: settled(parts))
        await asyncio.sleep(0.3)

    incident = await parts.only_incident()
    assert incident.report is None and incident.analysis_due is None
    assert incident.analysis_error == "RuntimeError: model answered nonsense"
    assert len(broken.requests) == 1
    assert "The analysis failed (RuntimeError: model answered nonsense)" in parts.postmortems()[0].read_text()


async def test_an_analysis_that_could_not_read_the_metrics_is_tried_again(parts: Parts) -> None:
    flaky = FakeAnalysis(fail=SignalsUnavailable("redis did not answer"))
    async with running(parts.worker(flaky, claim_min_idle=0.1)):
        await parts.add("backend-5xx-firing", T0)
        await asyncio.wait_for(flaky.started.wait(), PATIENCE)
        flaky.fail = None  # the metrics are readable again
        incident = await eventually(lambda: _with_report(parts))
        await eventually(lambda: settled(parts))

    assert len(flaky.requests) == 2 and incident.analysis_error is None
    assert parts.sample("incident_copilot_incident_analyses_total", kind="analysis", mode="none",
                        outcome="retry") == 1


async def test_an_analysis_that_never_can_is_given_up_with_the_reason(parts: Parts) -> None:
    down = FakeAnalysis(fail=SignalsUnavailable("redis did not answer"))
    async with running(parts.worker(down, claim_min_idle=RECLAIM_IDLE, max_deliveries=2)):
        await parts.add("backend-5xx-firing", T0)
        await eventually(lambda: settled(parts))

    incident = await parts.only_incident()
    assert len(down.requests) == 2
    assert incident.analysis_due is None
    assert incident.analysis_error == "Processing of a notification gave up after 2 failed attempts."
    assert "gave up after 2 failed attempts" in parts.postmortems()[0].read_text()


async def test_an_unreadable_entry_is_set_aside(parts: Parts) -> None:
    await parts.redis.xadd(parts.stream.key, {"notification": "{not json", "received_at": "now"})
    async with running(parts.worker(FakeAnalysis())):
        await eventually(lambda: settled(parts))

    [(_, fields)] = await parts.redis.xrange(parts.stream.dead_letters)
    assert fields["notification"] == "{not json" and fields["reason"].startswith("unreadable")
    assert parts.sample("incident_copilot_alert_jobs_dead_lettered_total") == 1


async def test_an_entry_that_fails_every_time_is_set_aside_after_its_attempts(parts: Parts) -> None:
    worker = parts.worker(FakeAnalysis(), claim_min_idle=RECLAIM_IDLE, max_deliveries=2)

    async def broken(*args, **kwargs):
        raise RuntimeError("bug")

    worker.pipeline.incidents.change_latest = broken  # type: ignore[method-assign]
    async with running(worker):
        entry = await parts.add("backend-5xx-firing", T0)
        await eventually(lambda: settled(parts))

    [(_, fields)] = await parts.redis.xrange(parts.stream.dead_letters)
    assert fields["entry"] == entry and "gave up after 2 failed attempts" in fields["reason"]


async def test_acknowledged_entries_are_trimmed_and_pending_ones_kept(parts: Parts) -> None:
    analyse = FakeAnalysis()
    # A job that fails on a busy machine is taken again after RECLAIM_IDLE, as in production after
    # a minute: what this test checks is that only acknowledged entries are trimmed.
    async with running(parts.worker(analyse, concurrency=4, claim_min_idle=RECLAIM_IDLE)):
        for index in range(30):
            await parts.add(group_payload(index), T0)
        await eventually(lambda: _count_with_reports(parts, 30))
        analyse.hold()
        held = await parts.add(group_payload(99), T0)
        await asyncio.wait_for(_wait_running(analyse), PATIENCE)
        await eventually(lambda: _only_entry_left(parts))
        assert [entry_id for entry_id, _ in await parts.redis.xrange(parts.stream.key)] == [held]
        analyse.release()
        await eventually(lambda: settled(parts))
    assert parts.sample("incident_copilot_alert_queue_depth") == 0


async def _wait_running(analyse: FakeAnalysis, count: int = 1) -> None:
    while analyse.running < count:
        await asyncio.sleep(0.01)


class _NotYet(tuple):
    """A falsy answer to `eventually` that still shows, if it stays, what was left."""

    def __bool__(self) -> bool:
        return False


async def _only_entry_left(parts: Parts) -> bool | _NotYet:
    """True once the stream holds one entry; else the first entries left and those pending."""
    if await parts.redis.xlen(parts.stream.key) == 1:
        return True
    left = [entry_id for entry_id, _ in await parts.redis.xrange(parts.stream.key, count=5)]
    return _NotYet((left, await parts.redis.xpending_range(parts.stream.key, parts.stream.group, "-", "+", 5)))


async def test_notifications_stored_before_any_worker_existed_are_processed(parts: Parts) -> None:
    await parts.add("firing", datetime.now(timezone.utc))  # no consumer group yet
    async with running(parts.worker(FakeAnalysis())):
        await eventually(lambda: _with_report(parts))


async def test_a_check_scheduled_before_a_restart_is_run_by_the_next_worker(parts: Parts) -> None:
    clock = Clock(T0 + timedelta(seconds=40))
    async with running(parts.worker(FakeAnalysis(), recheck=FakeAnalysis(ok_report()), now=clock)):
        await fire_and_resolve(parts, clock)
    # The worker stopped before the check was due (10:08:15.5); nothing of it is left in memory.
    pending = await parts.only_incident()
    assert pending.status == "resolved" and pending.recheck is None and pending.recheck_due is not None
    assert await parts.incidents.rechecks_due(pending.recheck_due.at) == [pending.id]

    clock.advance(minutes=30)  # a new worker, long after the check was due
    recheck = FakeAnalysis(ok_report())
    async with running(parts.worker(FakeAnalysis(), recheck=recheck, consumer="next", now=clock)):
        incident = await eventually(lambda: _rechecked(parts))
        await eventually(lambda: _postmortem_says(parts, "found the signals back to normal"))

    [check] = recheck.requests
    assert check.at == pending.recheck_due.at == incident.ended_at + timedelta(minutes=5)
    assert incident.recheck.checked_at == clock() and incident.recheck_due is None
    assert await parts.incidents.rechecks_due(clock()) == []


async def test_a_due_check_is_run_by_one_of_two_workers(parts: Parts) -> None:
    one, two = FakeAnalysis(ok_report()), FakeAnalysis(ok_report())
    await parts.add("backend-5xx-firing", T0)
    await parts.add("backend-5xx-resolved", T0 + timedelta(minutes=22))  # its check is long overdue
    async with running(parts.worker(FakeAnalysis(), recheck=one, consumer="one"),
                       parts.worker(FakeAnalysis(), recheck=two, consumer="two")):
        await eventually(lambda: _rechecked(parts))
        await eventually(lambda: settled(parts))
        await asyncio.sleep(0.3)  # time for a second run, were the claim not exclusive

    assert len(one.requests) + len(two.requests) == 1


async def test_a_worker_that_died_holding_a_check_leaves_it_to_another(parts: Parts) -> None:
    stuck = FakeAnalysis(ok_report())
    stuck.hold()
    await parts.add("backend-5xx-firing", T0)
    await parts.add("backend-5xx-resolved", T0 + timedelta(minutes=22))
    first = asyncio.create_task(parts.worker(FakeAnalysis(), recheck=stuck, consumer="first",
                                             claim_min_idle=0.3).run())
    await asyncio.wait_for(stuck.started.wait(), PATIENCE)
    first.cancel()  # dies with the check in flight
    await asyncio.gather(first, return_exceptions=True)

    finisher = FakeAnalysis(ok_report())
    async with running(parts.worker(FakeAnalysis(), recheck=finisher, consumer="second", claim_min_idle=0.3)):
        incident = await eventually(lambda: _rechecked(parts))
    assert len(finisher.requests) == 1 and incident.recheck_due is None


async def test_an_incident_left_open_by_the_version_before_correlation_is_resolved_by_its_group(
        parts: Parts) -> None:
    older = delivery("backend-5xx-firing", "1-0", T0)
    opened = lifecycle.apply(None, older, lifecycle.decide(None, older), now=T0)
    record = opened.model_dump(mode="json", exclude={"correlation_key"})
    for alert in record["alerts"]:
        del alert["group_key"], alert["group_labels"], alert["receiver"]
    group = hashlib.sha256(older.notification.group_key.encode()).hexdigest()[:40]
    await parts.redis.set(f"{{ic:incidents}}:incident:{opened.id}", json.dumps(record))
    await parts.redis.set(f"{{ic:incidents}}:incident-group:{group}", opened.id)

    async with running(parts.worker(FakeAnalysis(), recheck=FakeAnalysis(ok_report()))):
        await parts.add("backend-5xx-resolved", T0 + timedelta(minutes=22))
        await eventually(lambda: settled(parts))

    incident = await parts.incidents.get(opened.id)
    assert incident.status == "resolved" and await parts.incidents.summaries() == [incident.summary()]
    assert (await parts.incidents.latest_for("backend=api")).id == opened.id


async def test_a_check_that_cannot_read_the_signals_is_retried_then_given_up(parts: Parts) -> None:
    clock = Clock(T0 + timedelta(seconds=40))
    down = FakeAnalysis(fail=SignalsUnavailable("redis did not answer"))
    async with running(parts.worker(FakeAnalysis(), recheck=down, now=clock, claim_min_idle=0.3)):
        await fire_and_resolve(parts, clock)
        clock.advance(minutes=10)  # due
        await eventually(lambda: _analyses_made(down, 1))
        clock.advance(seconds=1)  # past the claim of the worker that tried: it is taken again
        await eventually(lambda: _analyses_made(down, 2))
        assert (await parts.only_incident()).recheck_due is not None
        clock.advance(hours=2)  # long past its time: recorded as failed, not tried for ever
        incident = await eventually(lambda: _without_recheck_due(parts))

    assert incident.recheck is None
    assert incident.timeline[-1].kind == "recheck_failed" and "gave up" in incident.timeline[-1].text


async def _analyses_made(analyse: FakeAnalysis, count: int) -> bool:
    return len(analyse.requests) >= count


async def _without_recheck_due(parts: Parts):
    incident = await parts.only_incident()
    return incident if incident.recheck_due is None else None
