"""`incident-copilot eval`: simulated incidents replayed through ingestion and analysis, then scored."""

from __future__ import annotations

import shutil

import pytest
from redis.asyncio import Redis

from agents import AnalysisConfig
from agents.evaluation import SCENARIOS, EvalRow, format_eval_table, run_eval
from receiver.embedded_redis import find_redis_server
from tests.support.redis_server import RedisServer

FAST = {"minutes": 12, "rps": 5.0}


async def test_each_expectation_of_a_scenario_is_a_row(fake_redis):
    rows = await run_eval(fake_redis, config=AnalysisConfig(), scenarios=["baseline", "outage"], **FAST)

    assert [(r.scenario, r.signal, r.expected, r.got, r.passed) for r in rows] == [
        ("baseline", "latency", "ok", "ok", True),
        ("baseline", "errors", "ok", "ok", True),
        ("baseline", "saturation", "ok", "ok", True),
        ("baseline", "traffic", "ok", "ok", True),
        ("baseline", "culprit", "none", "none", True),
        ("outage", "traffic", "critical", "critical", True),
        ("outage", "onset", "09:05", "09:05", True),
    ]
    assert {r.mode for r in rows} == {"rules"}


@pytest.mark.integration
async def test_every_scenario_passes_on_the_rules_alone(real_redis):
    scenarios = [name for name in SCENARIOS if name != "redis-saturation"]

    rows = await run_eval(real_redis, config=AnalysisConfig(), scenarios=scenarios)

    assert [r for r in rows if not r.passed] == []
    checked = {(r.scenario, r.signal) for r in rows}
    assert {("server-refusing", "errors"), ("two-alerts-one-backend", "title"), ("latency-creep", "onset"),
            ("quiet-broken-backend", "culprit"), ("backend-spike", "culprit")} <= checked


async def test_redis_saturation_is_skipped_without_a_dedicated_redis(fake_redis):
    rows = await run_eval(fake_redis, config=AnalysisConfig(), scenarios=["redis-saturation"], **FAST)

    assert rows == [EvalRow("redis-saturation", "saturation", "warning", "skipped", False,
                            note="needs a dedicated Redis with a small maxmemory")]


async def test_unknown_scenarios_are_refused(fake_redis):
    with pytest.raises(ValueError, match="unknown scenario 'meteor'"):
        await run_eval(fake_redis, config=AnalysisConfig(), scenarios=["meteor"])


def test_the_table_lines_up_and_counts():
    rows = [
        EvalRow("baseline", "latency", "ok", "ok", True, note="Latency within thresholds."),
        EvalRow("deploy-regression", "errors", ">= warning", "ok", False, note="does not name api"),
        EvalRow("redis-saturation", "saturation", "warning", "skipped", False),
    ]

    lines = format_eval_table(rows).splitlines()

    assert lines[0].split() == ["scenario", "signal", "expected", "got", "result", "mode", "note"]
    assert lines[2].index("ok") == lines[0].index("expected")
    assert " pass " in lines[2] and " FAIL " in lines[3] and " skip " in lines[4]
    assert lines[-1] == "1/3 passed, 1 skipped"


@pytest.mark.integration
async def test_redis_near_its_maxmemory_is_a_saturation_warning(tmp_path, fake_redis):
    server = RedisServer(find_redis_server(), tmp_path, "--maxmemory", "16mb", "--maxmemory-policy", "noeviction")
    server.start()
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        rows = await run_eval(fake_redis, config=AnalysisConfig(), saturation_redis=client,
                              scenarios=["redis-saturation"], **FAST)
        fillers = await client.keys("incident-copilot:eval:filler:*")
    finally:
        await client.aclose()
        server.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)

    assert [(r.got, r.passed) for r in rows] == [("warning", True)], rows
    assert "Redis memory at" in rows[0].note
    assert fillers == []
