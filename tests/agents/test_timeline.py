"""The specialists are told when the signals changed and which window to compare with, and how to look it up."""

from __future__ import annotations

from datetime import timedelta

from agents import AnalysisRequest, LLMClient, analyze
from agents.tools import READ_TOOLS
from ingestion import MetricsQueries
from tests.agents.test_scenarios import MINUTES, START, redis_with
from tests.support import fake_anthropic as fake
from tests.support.model_runs import model_config


async def test_the_prompt_carries_the_onset_minute_and_the_baseline_window(api):
    at = START + timedelta(minutes=MINUTES)
    redis = await redis_with("deploy-regression")
    config = model_config(api)
    llm = LLMClient.from_config(config)
    try:
        report = await analyze(MetricsQueries(redis, now=at.timestamp), AnalysisRequest(at=at), config=config,
                               llm=llm, now=lambda: at)
    finally:
        await llm.close()
        await redis.aclose()

    timeline = fake.quoted(api.sent("latency")[0], "timeline")
    assert timeline["onset"]["minute"] == "2026-03-02T09:04:00+00:00" == report.onset.at.isoformat()
    assert timeline["onset"]["scope"] == "backend=api"
    assert timeline["baseline_window"]["end"] == timeline["onset"]["minute"]
    assert timeline["baseline_window"]["start"] == report.baseline_start.isoformat()
    assert any(change.startswith("5xx on api at 09:04") for change in timeline["changes"])


def test_each_tool_says_what_it_returns_and_when_to_use_it():
    for tool in READ_TOOLS.values():
        what, _, when = tool.description.partition(". ")
        assert what and when.startswith("Use it"), tool.name
    assert "baseline window's end" in READ_TOOLS["backends"].description
