"""The decisions of delivery, each alone: what is announced when, enqueued once, retried how, given up when."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from redis.asyncio import Redis

from receiver.notify import DeliveryPipeline, Dispatcher, IncidentEvent, Outbox, RetryStage, next_event
from receiver.notify.config import parse_config
from receiver.notify.event import Announced
from receiver.notify.notifier import DeliveryError, judge_status, retry_after
from tests.support.incidents import T0

from .test_messages import event

CONFIG = parse_config("""\
global: {give_up_after: 60s}
route: {receiver: r}
receivers:
  - name: r
    webhook_configs:
      - url: http://hook.example/a
""")


def snapshot(**changes):
    return event().incident.model_copy(update=changes)


OPENED = Announced(kind="opened", material=snapshot().material(), sequence=1)


@pytest.mark.parametrize(("changes", "last", "expected"), [
    ({"diagnosed_at": None}, None, None),  # the first analysis has not finished: wait
    ({"diagnosed_at": None, "analysis_error": "boom"}, None, "opened"),  # failed: announce without it
    ({}, None, "opened"),
    ({}, OPENED, None),  # nothing new
    ({"analysis_pending": True, "title": "other"}, OPENED, None),  # a re-analysis runs: wait for it
    ({"title": "Latency on backend api"}, OPENED, "updated"),
    ({"severity": "warning"}, OPENED, "updated"),
    ({"culprit": "web: latency"}, OPENED, "updated"),
    ({"diagnosis": "Other words, same finding."}, OPENED, None),  # not material
    ({"status": "resolved", "recheck_pending": True}, OPENED, None),  # the check after is due: wait
    ({"status": "resolved"}, OPENED, "resolved"),
    ({"status": "resolved"}, None, "resolved"),  # first heard of resolved
    ({"status": "resolved"}, Announced(kind="resolved", material="x", sequence=2), None),
    ({"title": "re-opened"}, Announced(kind="resolved", material="x", sequence=2), "opened"),  # a flap re-opened it
])
def test_what_is_announced_when(changes, last, expected) -> None:
    assert next_event(snapshot(**changes), last) == expected


async def test_an_event_is_enqueued_once_however_often_it_is_offered(fake_redis: Redis) -> None:
    outbox = Outbox(fake_redis)
    results = await asyncio.gather(*(outbox.offer(snapshot(), now=T0) for _ in range(10)))
    assert [r.key for r in results if r] == ["inc-20260314-0123abcd:1:opened"]
    assert await fake_redis.xlen("{ic:notify}:outbox") == 1
    changed = await outbox.offer(snapshot(title="Latency on backend api"), now=T0)
    resolved = await outbox.offer(snapshot(status="resolved"), now=T0)
    assert (changed.key, resolved.key) == ("inc-20260314-0123abcd:2:updated", "inc-20260314-0123abcd:3:resolved")
    assert await outbox.offer(snapshot(status="resolved"), now=T0) is None


class Script:
    """A notifier answering from a list, then delivered; it records the attempts."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.attempts = 0

    async def notify(self, ctx, event):
        self.attempts += 1
        return self.answers.pop(0) if self.answers else (False, None)


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def pipeline(redis: Redis, notifier: Script, clock: Clock, given_up: list) -> DeliveryPipeline:
    async def record(event, target, reason):
        given_up.append((target.id, reason))

    stage = DeliveryPipeline(CONFIG, Outbox(redis), on_given_up=record, retry=RetryStage(first=1, cap=8, rand=lambda: 0),
                             now=lambda: clock.now, sleep=clock.sleep)
    stage._notifiers["r/webhook/0"] = notifier  # the pipeline decides; the notifier is scripted
    return stage


def the_event() -> IncidentEvent:
    return event().model_copy(update={"enqueued_at": T0})


async def test_retries_back_off_and_honour_retry_after(fake_redis: Redis) -> None:
    clock, given_up = Clock(), []
    notifier = Script((True, DeliveryError("HTTP 503")), (True, DeliveryError("HTTP 429", retry_after=5)),
                      (True, DeliveryError("connection failed")))
    outcomes = await pipeline(fake_redis, notifier, clock, given_up).deliver(the_event(), session=None)
    assert outcomes == {"r/webhook/0": "sent"} and notifier.attempts == 4
    assert clock.slept == [1, 5, 4]  # 1, then Retry-After's 5 over the backoff's 2, then 4
    assert given_up == []


async def test_a_refusal_is_given_up_at_once(fake_redis: Redis) -> None:
    clock, given_up = Clock(), []
    notifier = Script((False, DeliveryError("HTTP 404: no_service")))
    outcomes = await pipeline(fake_redis, notifier, clock, given_up).deliver(the_event(), session=None)
    assert outcomes == {"r/webhook/0": "given up: refused: HTTP 404: no_service"} and clock.slept == []
    assert given_up == [("r/webhook/0", "refused: HTTP 404: no_service")]


async def test_a_delivery_failing_past_the_give_up_time_is_given_up(fake_redis: Redis) -> None:
    clock, given_up = Clock(), []
    notifier = Script(*[(True, DeliveryError("HTTP 500"))] * 100)
    await pipeline(fake_redis, notifier, clock, given_up).deliver(the_event(), session=None)
    assert sum(clock.slept) == 55 and notifier.attempts == 10  # 1+2+4+8×6 s; one more wait would pass 60
    assert given_up == [("r/webhook/0", "still failing after 10 attempts (1 min allowed): HTTP 500")]


async def test_a_target_that_has_the_event_is_not_sent_it_again(fake_redis: Redis) -> None:
    clock, given_up = Clock(), []
    notifier = Script()
    stage = pipeline(fake_redis, notifier, clock, given_up)
    await stage.deliver(the_event(), session=None)
    await stage.deliver(the_event(), session=None)  # redelivered after a crash, say
    assert notifier.attempts == 1


@pytest.mark.parametrize(("status", "headers", "retry", "wait"), [
    (200, {}, False, None), (202, {}, False, None), (204, {}, False, None),
    (400, {}, False, None), (401, {}, False, None), (404, {}, False, None), (410, {}, False, None),
    (429, {"Retry-After": "30"}, True, 30.0), (500, {}, True, None), (503, {"Retry-After": "2"}, True, 2.0),
])
def test_http_answers_are_judged_as_alertmanager_does(status, headers, retry, wait) -> None:
    again, err = judge_status(status, headers)
    assert again == retry and (err is None) == (status < 300)
    if err is not None:
        assert err.retry_after == wait


def test_retry_after_reads_an_http_date() -> None:
    later = datetime.now().astimezone() + timedelta(seconds=120)
    assert 100 < retry_after({"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S %z")}) <= 120
    assert retry_after({"Retry-After": "soon"}) is None


class _SwallowingOutbox:
    """An outbox whose blocking read answers a cancellation with an empty read, as a client library may."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()

    async def ensure_group(self) -> None:
        return None

    async def reclaim(self, consumer, *, min_idle_ms, count, cursor):
        return "0-0", []

    async def read(self, consumer, *, count, block_ms):
        self.reading.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return []
        return []

    async def keep(self, consumer, entries) -> None:
        return None


async def test_the_delivery_loop_stops_when_its_read_swallows_the_cancellation():
    config = parse_config("route: {receiver: nobody}\nreceivers: [{name: nobody}]\n")
    outbox = _SwallowingOutbox()
    dispatcher = Dispatcher(config, outbox, block_seconds=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(dispatcher.run())
    await outbox.reading.wait()

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=30)
