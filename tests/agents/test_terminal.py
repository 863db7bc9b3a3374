"""A report as a terminal shows it."""

from __future__ import annotations

from agents import AnalysisConfig, AnalysisRequest, Provenance, TokenUsage, analyze, format_report
from tests.support.agents import AT, deploy_regression, route


async def rules_report(signals=None):
    return await analyze((signals or deploy_regression()).source(), AnalysisRequest(at=AT), config=AnalysisConfig(),
                         now=lambda: AT)


async def test_the_verdict_comes_first_then_actions_then_numbers():
    text = format_report(await rules_report())
    lines = text.splitlines()

    assert lines[0] == "CRITICAL  api: P99 1.8 s and 12 % 5xx (sH server timeouts)"
    assert lines[1] == "Window: 10 min, 2024-05-14 11:50 to 12:00 UTC  |  backend: all  |  mode: rules"
    assert lines.index("Diagnosis") < lines.index("Recommendations") < lines.index("Findings")
    assert "  1. Roll back the latest deploy of api if the timeouts started with it; otherwise check api's slow" \
        in lines
    assert "  [CRITICAL] latency: api is slow: P99 1.8 s > 1.0 s." in lines
    assert "      - latency_p99_ms = 1800 ms (threshold 1000)  [backend=api, 10 min]" in lines
    assert "  [OK] traffic: Traffic normal: 600/min against a baseline of 600/min." in lines
    assert lines[-1] == "Analysed in 0.0 s; model tokens: 0 in, 0 out."


async def test_provenance_and_disagreements_are_shown():
    report = await rules_report()
    latency = report.findings[0].model_copy(update={
        "provenance": Provenance(mode="llm", model="claude-sonnet-4-6", tool_rounds=2),
        "disagreement": "The model rated this warning; the deterministic evaluation found critical.",
    })
    report = report.model_copy(update={
        "findings": [latency, *report.findings[1:]],
        "synthesis": Provenance(mode="rules", fallback_reason="model overloaded (529)"),
        "tokens": TokenUsage(input_tokens=1200, output_tokens=300),
    })

    text = format_report(report)

    assert "mode: rules, fell back: model overloaded (529)" in text.splitlines()[1]
    assert "      (mode: llm (claude-sonnet-4-6, 2 tool rounds))" in text
    assert "      Disagreement: The model rated this warning; the deterministic evaluation found critical." in text
    assert text.rstrip().endswith("model tokens: 1200 in, 300 out.")


async def test_control_characters_from_logs_cannot_reach_the_terminal():
    signals = deploy_regression()
    signals.slow_routes = [route("GET /\x1b[2J\x1b]0;pwned\x07", 3000, p95_ms=9000.0)]

    text = format_report(await rules_report(signals))

    assert "\x1b" not in text and "\x07" not in text
    assert "GET /\\x1b[2J\\x1b]0;pwned\\x07" in text
