"""The model budgets hold for any number of workers on one Redis."""

from __future__ import annotations

import asyncio

from agents import AnalysisRequest, LLMClient, analyze
from agents.budget import RedisBudgets
from agents.report import TokenUsage
from tests.support.agents import AT, deploy_regression
from tests.support.model_runs import model_config, until


def workers(api, redis, n: int, **overrides) -> list[LLMClient]:
    """`n` workers' clients, as each process would make its own, on one Redis."""
    config = model_config(api, **overrides)
    return [LLMClient.from_config(config, redis=redis) for _ in range(n)]


async def analyse(llm: LLMClient, api, **overrides):
    return await analyze(deploy_regression().source(), AnalysisRequest(at=AT), config=model_config(api, **overrides),
                         llm=llm)


async def test_the_hourly_analysis_cap_is_shared_by_all_workers(api, fake_redis):
    first, second, third = workers(api, fake_redis, 3, max_analyses_per_hour=2)
    try:
        reports = [await analyse(llm, api, max_analyses_per_hour=2) for llm in (first, second, third)]
    finally:
        for llm in (first, second, third):
            await llm.close()

    assert [r.synthesis.mode for r in reports] == ["llm", "llm", "rules"]
    assert reports[2].synthesis.fallback_reason == "hourly model budget exhausted"


async def test_calls_in_flight_are_capped_across_workers(api, fake_redis):
    clients = workers(api, fake_redis, 3, max_concurrency=2)
    api.hold()
    try:
        analyses = [asyncio.create_task(analyse(llm, api, max_concurrency=2)) for llm in clients]
        await until(lambda: api.in_flight >= 2)
        await asyncio.sleep(0.2)  # room for calls beyond the cap to arrive, were there any
        assert api.in_flight == 2
        api.release()
        await asyncio.gather(*analyses)
    finally:
        for llm in clients:
            await llm.close()

    assert api.max_in_flight == 2
    assert await fake_redis.zcard("llm:slots") == 0  # every slot given back


async def test_the_token_budget_is_shared_and_stops_the_model_for_the_hour(api, fake_redis):
    first, second = workers(api, fake_redis, 2, max_tokens_per_hour=500)
    try:
        spent = await analyse(first, api, max_tokens_per_hour=500)
        after = await analyse(second, api, max_tokens_per_hour=500)
    finally:
        await first.close()
        await second.close()

    assert spent.synthesis.mode == "llm"
    assert after.synthesis.fallback_reason == "hourly model token budget exhausted"
    assert all(f.provenance.fallback_reason == "hourly model token budget exhausted" for f in after.findings)


async def test_a_slot_held_by_a_dead_worker_is_given_back_when_its_lease_ends(fake_redis):
    clock = [1000.0]
    budgets = RedisBudgets(fake_redis, analyses_per_hour=10, max_concurrency=1, lease_seconds=30,
                           poll_seconds=0.01, clock=lambda: clock[0])
    dead = budgets.slot()
    await dead.__aenter__()  # a worker that took a slot and died: never released

    waiting = asyncio.create_task(budgets.slot().__aenter__())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    clock[0] += 31
    await asyncio.wait_for(waiting, 5)


async def test_the_hour_slides_and_tokens_count_per_hour(fake_redis):
    clock = [7200.0]
    budgets = RedisBudgets(fake_redis, analyses_per_hour=1, max_concurrency=1, tokens_per_hour=100,
                           clock=lambda: clock[0])

    assert await budgets.start_analysis() is None
    assert await budgets.start_analysis() == "hourly model budget exhausted"
    await budgets.spend(TokenUsage(input_tokens=60, cache_read_input_tokens=30, output_tokens=10))
    clock[0] += 3600
    assert await budgets.start_analysis() is None
