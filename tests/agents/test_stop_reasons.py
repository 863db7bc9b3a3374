"""The loop by the documentation: every stop_reason, room for the largest answer, reasoning before submitting."""

from __future__ import annotations

import json

import pytest

from agents.loop import CHARS_PER_TOKEN, REASONING_TOKENS, THINKING_TOKENS
from agents.specialist import SUBMIT_FINDING, FindingSubmission
from agents.synthesis import SUBMIT_SYNTHESIS, SynthesisSubmission
from tests.support import fake_anthropic as fake
from tests.support.model_runs import finding, last_user_content, plain, run


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (fake.submit_finding("ok", stop_reason="max_tokens"), "model answer cut off at max_tokens"),
        (fake.tool_use("backends", stop_reason="max_tokens"), "model answer cut off at max_tokens"),
        (fake.message(fake.text("I can't help with that."), stop_reason="refusal"),
         "model declined to answer (refusal)"),
        (fake.submit_finding("ok", stop_reason="model_context_window_exceeded"), "model context window exceeded"),
        (fake.submit_finding("ok", stop_reason="compaction"),
         "model stopped for a reason this loop does not handle (compaction)"),
    ],
)
async def test_an_unusable_turn_is_neither_run_nor_kept(api, reply, reason):
    api.script("latency", reply)

    report = await run(api)

    latency = finding(report, "latency")
    assert latency.provenance.mode == "rules"
    assert latency.provenance.fallback_reason == reason
    assert latency.severity.value == "critical"
    assert latency.provenance.tool_rounds == 0  # the cut-off lookup was not run
    assert len(api.sent("latency")) == 1  # nothing follows a refused or cut-off turn


async def test_a_paused_turn_is_sent_back_to_continue(api):
    paused = fake.message(fake.text("Looking at the backends first."), stop_reason="pause_turn")
    api.script("errors", paused, fake.submit_finding("critical", "api fails."))

    report = await run(api)

    assert finding(report, "errors").summary == "api fails."
    second = api.sent("errors")[1]
    assert second["messages"][-1]["role"] == "assistant"
    assert plain(second["messages"][-1]["content"]) == "Looking at the backends first."


def largest(model, **lengths) -> str:
    """The JSON of the longest answer `model` validates."""
    return json.dumps(model.model_validate(lengths).model_dump(mode="json"))


def test_max_tokens_holds_the_largest_valid_answer():
    evidence = {"metric": "m" * 100, "value": -1.2345678901234567e-300, "unit": "u" * 20, "window_minutes": 360,
                "scope": "s" * 200, "tool": "t" * 50}
    finding_json = largest(FindingSubmission, severity="critical", summary="x" * 300, details="x" * 4000,
                           evidence=[evidence] * 10)
    synthesis_json = largest(SynthesisSubmission, title="x" * 100, diagnosis="x" * 4000,
                             recommendations=["x" * 500] * 5)

    for submit, answer in ((SUBMIT_FINDING, finding_json), (SUBMIT_SYNTHESIS, synthesis_json)):
        assert submit.max_tokens - REASONING_TOKENS >= len(answer) / CHARS_PER_TOKEN


async def test_each_call_asks_for_room_for_its_largest_answer(api):
    await run(api, max_tokens=1024)

    assert {body["max_tokens"] for body in api.sent("latency")} == {SUBMIT_FINDING.max_tokens}
    assert {body["max_tokens"] for body in api.sent("synthesis")} == {SUBMIT_SYNTHESIS.max_tokens}


async def test_the_synthesis_may_reason_before_it_submits(api):
    api.script("synthesis", fake.message(fake.text("Latency and errors share sH timeouts on api."),
                                         fake.call("submit_synthesis", {
                                             "title": "api: sH server timeouts", "diagnosis": "api times out.",
                                             "recommendations": ["Roll back api."]})))

    report = await run(api)

    assert report.synthesis.mode == "llm"
    assert report.title == "api: sH server timeouts"
    assert api.sent("synthesis")[0]["tool_choice"] == {"type": "auto"}


async def test_a_synthesis_that_only_reasons_is_asked_once_for_its_answer(api):
    api.script("synthesis", fake.message(fake.text("Thinking it over: api times out.")),
               fake.submit_synthesis("api: sH server timeouts", "api times out.", ["Roll back api."]))

    report = await run(api)

    assert report.title == "api: sH server timeouts"
    first, second = api.sent("synthesis")
    assert last_user_content(second) == "Call submit_synthesis now with your conclusion."
    assert second["tool_choice"] == {"type": "tool", "name": "submit_synthesis"}


async def test_with_adaptive_thinking_the_synthesis_thinks_and_is_never_forced(api):
    thought = {"type": "thinking", "thinking": "Latency and errors share one cause.", "signature": "sig-1"}
    api.script("synthesis", fake.message(thought, fake.text("Not yet.")),
               fake.message(thought, fake.call("submit_synthesis", {
                   "title": "api: sH server timeouts", "diagnosis": "api times out.",
                   "recommendations": ["Roll back api."]})))

    report = await run(api, synthesis_thinking="adaptive")

    assert report.title == "api: sH server timeouts"
    first, second = api.sent("synthesis")
    assert first["thinking"] == {"type": "adaptive"}
    assert [b["tool_choice"] for b in (first, second)] == [{"type": "auto"}, {"type": "auto"}]
    assert second["messages"][1]["content"][0] == thought  # thinking goes back as it came
    assert first["max_tokens"] == SUBMIT_SYNTHESIS.max_tokens + THINKING_TOKENS
    assert "thinking" not in api.sent("latency")[0]
