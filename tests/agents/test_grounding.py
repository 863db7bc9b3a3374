"""Every number a report shows has a source: the evaluation, or a tool call the service answered."""

from __future__ import annotations

import pytest

from agents import format_report
from agents.grounding import ToolCallRecord, call_holding, numbers_in, unsourced_figures
from receiver.incidents.postmortem import impact
from tests.support import fake_anthropic as fake
from tests.support.model_runs import finding, run


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("api: P99 1.8 s and 12 % 5xx (sH server timeouts)", []),  # 1800 ms as seconds, 12.0 %
        ("api returns 0.2 % 5xx", ["0.2 %"]),
        ("HTTP/1.1 504 on 2 servers since 16:41", []),  # a status code held, a small count, a time of day
        ("P95 above 950 ms", ["950 ms"]),
        ("12,000 requests failed", ["12,000 requests"]),
    ],
)
def test_figures_in_prose_are_matched_to_held_numbers(text, missing):
    known = numbers_in({"p99_ms": 1800.0, "error_rate_5xx_pct": 12.04, "codes": {"504": 520}})

    assert unsourced_figures(text, known) == missing


def test_a_cited_value_must_be_in_the_named_tools_result():
    calls = [ToolCallRecord("backends", (("window_minutes", "5"),), frozenset({320.0, 12.0})),
             ToolCallRecord("paths", (), frozenset({950.0}))]

    assert call_holding(320.0, "backends", calls).describe() == "backends(window_minutes=5)"
    assert call_holding(950.0, "backends", calls) is None
    assert call_holding(0.2, None, calls) is None


async def test_invented_evidence_is_dropped_and_the_impact_uses_measured_figures(api):
    api.script("latency", fake.submit_finding(
        "critical", "api times out.", "sH on api.",
        evidence=[{"metric": "error_rate_5xx_pct", "value": 0.2, "unit": "%", "window_minutes": 10,
                   "scope": "backend=api", "tool": "backends"}]))

    report = await run(api)

    latency = finding(report, "latency")
    assert all(e.source == "evaluation" for e in latency.evidence)
    assert not any(e.metric == "error_rate_5xx_pct" for e in latency.evidence)
    assert latency.provenance.dropped_claims == [
        "evidence error_rate_5xx_pct = 0.2 % (backend=api): in no result of backends"]
    shown = impact(report, slo_target_pct=99.9)
    assert (shown.error_rate_pct, shown.failed_requests) == (10.02, 601)  # the site's measured 5xx
    assert shown.burn_rate == pytest.approx(100.2)


async def test_evidence_from_a_tool_result_names_the_call(api):
    api.script("latency", fake.tool_use("backends", {"window_minutes": 5}), fake.submit_finding(
        "critical", "api times out; web stays at 320 ms.", "sH on api.",
        evidence=[{"metric": "latency_p99_ms", "value": 320.0, "unit": "ms", "window_minutes": 5,
                   "scope": "backend=web", "tool": "backends"}]))

    report = await run(api)

    latency = finding(report, "latency")
    cited = latency.evidence[-1]
    assert (cited.metric, cited.value, cited.source) == ("latency_p99_ms", 320.0, "tool")
    assert cited.tool_call.startswith("backends(window_minutes=5, at=2024-05-14T12:00Z")
    assert latency.summary == "api times out; web stays at 320 ms."
    assert latency.provenance.dropped_claims == []


async def test_a_summary_with_a_number_from_nowhere_is_replaced_by_the_evaluators(api):
    api.script("errors", fake.submit_finding("critical", "api returns 0.2 % 5xx, nothing serious.", "Fine."))

    report = await run(api)

    errors = finding(report, "errors")
    assert errors.summary == "api returns 12 % 5xx."
    assert errors.details == "Fine."
    assert errors.provenance.dropped_claims == [
        "summary 'api returns 0.2 % 5xx, nothing serious.': 0.2 % in no tool result or evaluation"]


async def test_the_terminal_report_names_the_call_behind_a_number(api):
    api.script("latency", fake.tool_use("backends", {"window_minutes": 5}), fake.submit_finding(
        "critical", "api times out.", "sH on api.",
        evidence=[{"metric": "latency_p99_ms", "value": 320.0, "unit": "ms", "window_minutes": 5,
                   "scope": "backend=web", "tool": "backends"}]))

    text = format_report(await run(api))

    assert "latency_p99_ms = 320 ms  [backend=web, 5 min, from backends(window_minutes=5, at=" in text
