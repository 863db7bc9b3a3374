"""Bounded context and prompt caching: what each call sends, and what an analysis costs."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from agents import AlertContext, AnalysisMetrics, AnalysisRequest
from agents.config import ModelPrices
from agents.prompts import MAX_ALERT_ITEMS, MAX_ALERT_TEXT, MAX_ALERTS
from agents.tools import MAX_ROWS
from tests.support import fake_anthropic as fake
from tests.support.agents import AT, backend_row, deploy_regression
from tests.support.model_runs import last_user_content, run

SPECIALISTS = ("latency", "errors", "saturation", "traffic")


async def test_untrusted_alert_text_is_cut_to_stated_lengths(api):
    alerts = [AlertContext(alertname=f"A{i}", labels={f"l{j}": "v" * 5000 for j in range(40)},
                           annotations={"summary": "s" * 20_000}) for i in range(30)]

    await run(api, request=AnalysisRequest(at=AT, alerts=alerts))

    shown = fake.quoted(api.sent("latency")[0], "alerts")
    assert len(shown) == MAX_ALERTS + 1 and shown[-1] == {"alerts_left_out": 30 - MAX_ALERTS}
    first = shown[0]
    assert first["alertname"] == "A0"
    assert first["labels"]["l0"] == "v" * MAX_ALERT_TEXT + f"… ({5000 - MAX_ALERT_TEXT} more characters)"
    assert len(first["labels"]) == MAX_ALERT_ITEMS and first["labels_left_out"] == 40 - MAX_ALERT_ITEMS
    assert first["annotations"]["summary"].endswith(f"({20_000 - MAX_ALERT_TEXT} more characters)")
    assert len(fake.first_prompt(api.sent("latency")[0])) < 60_000


async def looked_up(api, route: str, tool: str) -> dict:
    """What `tool` answered one specialist over a deploy regression with 22 backends."""
    signals = deploy_regression()
    signals.backends += [backend_row(f"svc{i:02d}", 100 + i) for i in range(20)]
    api.script(route, fake.tool_use(tool), fake.submit_finding("critical"))

    await run(api, signals)

    result = last_user_content(api.sent(route)[1])[0]["content"]
    return json.loads(result.removeprefix("<metrics>\n").removesuffix("\n</metrics>"))


async def test_a_tool_result_lists_its_top_rows_and_how_many_were_left_out(api):
    view = await looked_up(api, "latency", "backends")

    assert len(view["backends"]) == MAX_ROWS
    assert view["backends_left_out"] == 22 - MAX_ROWS
    assert view["backends"][0]["backend"] == "api"


async def test_the_specialists_share_one_cached_prefix(api):
    await run(api)

    firsts = [api.sent(name)[0] for name in SPECIALISTS]
    assert len({json.dumps([b["tools"], b["system"]]) for b in firsts}) == 1  # one prefix for all four
    assert firsts[0]["system"][-1]["cache_control"] == {"type": "ephemeral"}
    second = api.sent("latency")[1]
    marked = [b for m in second["messages"] for b in (m["content"] if isinstance(m["content"], list) else [])
              if "cache_control" in b]
    assert marked == [second["messages"][-1]["content"][-1]]  # one breakpoint on the conversation, at its end


async def analysis_cost(api, *, caching: bool):
    registry = CollectorRegistry()
    report = await run(api, prompt_caching=caching, metrics=AnalysisMetrics(registry))
    return report, registry


async def test_cache_tokens_are_counted_apart_and_caching_lowers_the_cost(aiohttp_server):
    costs = {}
    for caching in (False, True):
        # The four specialists' first calls overlap, as they do in production: each writes the prefix.
        api = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=fake.expert, accounting=True,
                                                                    latency=0.05))
        cold, registry = await analysis_cost(api, caching=caching)
        warm, _ = await analysis_cost(api, caching=caching)  # the next analysis within the cache's 5 minutes
        costs[caching] = (cold, warm)
        sample = registry.get_sample_value
        assert sample("incident_copilot_llm_tokens_total", {"kind": "cache_read"}) == (
            cold.tokens.cache_read_input_tokens)
        assert sample("incident_copilot_llm_tokens_total", {"kind": "cache_write"}) == (
            cold.tokens.cache_creation_input_tokens)
        assert sample("incident_copilot_llm_tokens_total", {"kind": "input"}) == cold.tokens.input_tokens

    (plain_cold, plain_warm), (cached_cold, cached_warm) = costs[False], costs[True]
    assert plain_cold.tokens.cache_read_input_tokens == plain_cold.tokens.cache_creation_input_tokens == 0
    assert plain_warm.tokens.cache_read_input_tokens == 0
    assert cached_cold.tokens.cache_read_input_tokens > 0 and cached_cold.tokens.cache_creation_input_tokens > 0
    prices = ModelPrices()
    assert cached_cold.cost_usd == round(prices.cost_usd(cached_cold.tokens), 6)
    assert cached_cold.cost_usd < plain_cold.cost_usd
    assert cached_warm.cost_usd < cached_cold.cost_usd
    for name, report in (("no caching", plain_cold), ("caching, cold", cached_cold),
                         ("caching, warm", cached_warm)):
        t = report.tokens
        print(f"{name}: ${report.cost_usd:.4f} (input {t.input_tokens}, cache write {t.cache_creation_input_tokens},"
              f" cache read {t.cache_read_input_tokens}, output {t.output_tokens})")


async def test_a_breakdown_by_backend_keeps_its_busiest_backends(api):
    view = await looked_up(api, "errors", "termination_states")

    assert len(view["by_backend"]) == MAX_ROWS and view["by_backend_left_out"] == 22 - MAX_ROWS
    assert list(view["by_backend"])[:2] == ["api", "web"]  # the busiest first
