"""A lying, refusing or broken model: what the on-call engineer finally reads is still the measurement."""

from __future__ import annotations

import pytest

from agents import format_report
from receiver.incidents.postmortem import impact
from tests.support import fake_anthropic as fake
from tests.support.model_runs import finding, run

SPECIALISTS = ("latency", "errors", "saturation", "traffic")
RULES_TITLE = "api: P99 1.8 s and 12 % 5xx (sH server timeouts)"


@pytest.fixture
async def liar(aiohttp_server):
    api = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=fake.liar))
    yield api
    api.release()


async def test_a_lying_model_cannot_change_what_a_deploy_regression_reads(liar):
    report = await run(liar)

    assert report.overall_severity.value == "critical"
    assert [finding(report, n).severity.value for n in SPECIALISTS] == ["critical", "critical", "ok", "ok"]
    assert finding(report, "latency").summary == "api is slow: P99 1.8 s > 1.0 s."
    assert finding(report, "errors").summary == "api returns 12 % 5xx."
    assert all(e.source == "evaluation" for f in report.findings for e in f.evidence)
    assert report.title == RULES_TITLE
    assert report.recommendations[0].startswith("Roll back the latest deploy of api")
    text = report.model_dump_json()
    assert "https://evil.example" not in text and "evil.example" not in text
    assert "42 ms" not in report.title + report.diagnosis
    shown = impact(report, slo_target_pct=99.9)
    assert (shown.error_rate_pct, shown.failed_requests) == (10.02, 601)
    # The report says what it dropped, and why.
    latency = finding(report, "latency").provenance
    assert latency.mode == "llm"
    assert latency.dropped_claims == [
        "severity ok: below the measured critical (its summary: 'All fine: P99 42 ms and 0.2 % 5xx.')",
        "evidence error_rate_5xx_pct = 0.2 % (backend=api): in no result of backends",
        "evidence latency_p99_ms = 42 ms (backend=api): the evaluation measured 1800",
    ]
    assert finding(report, "saturation").provenance.dropped_claims[:2] == [
        "summary 'All fine: P99 42 ms and 0.2 % 5xx.': 42 ms, 0.2 % in no tool result or evaluation",
        "details: an address that is not the alert's, the runbook's or the service's "
        "(https[:]//evil[.]example/status)",
    ]
    assert "model rated this ok" in finding(report, "latency").disagreement
    assert report.synthesis.fallback_reason == (
        "model conclusion rejected: the title says all is well where the measured severity is critical")
    assert report.synthesis.dropped_claims[0] == "title 'api: all fine, P99 42 ms'"


async def test_an_empty_tool_call_is_sent_back_once_then_the_rules_stand(api):
    api.script("errors", fake.tool_use("submit_finding", {}), fake.tool_use("submit_finding", {}))

    report = await run(api)

    errors = finding(report, "errors")
    assert errors.provenance.mode == "rules"
    assert errors.provenance.fallback_reason.startswith("invalid submit_finding input after one repair: severity:")
    assert errors.summary == "api returns 12 % 5xx."


async def test_a_refusing_model_leaves_the_rules_report_whole(aiohttp_server):
    refusal = fake.message(fake.text("I can't help with that."), stop_reason="refusal")
    api = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=lambda body: refusal))

    report = await run(api)

    assert {f.provenance.fallback_reason for f in report.findings} == {"model declined to answer (refusal)"}
    assert report.synthesis.fallback_reason == "model declined to answer (refusal)"
    assert report.title == RULES_TITLE
    assert len(api.requests) == 5  # one call a step: a refused conversation is never continued


async def test_a_model_cut_off_at_max_tokens_is_not_taken_for_an_answer(aiohttp_server):
    cut = fake.submit_finding("ok", "All fine.", stop_reason="max_tokens")
    api = await fake.start(aiohttp_server, fake.FakeMessagesAPI(default=lambda body: cut))

    report = await run(api)

    assert {f.provenance.fallback_reason for f in report.findings} == {"model answer cut off at max_tokens"}
    assert report.overall_severity.value == "critical"


async def test_the_terminal_report_lists_the_model_claims_not_used(liar):
    report = await run(liar)

    text = format_report(report)

    assert text.startswith(f"CRITICAL  {RULES_TITLE}")
    section = text[text.index("Model claims not used"):]
    assert "  - latency: evidence error_rate_5xx_pct = 0.2 % (backend=api): in no result of backends" in section
    assert "  - synthesis: title 'api: all fine, P99 42 ms'" in section
    assert "https://" not in text
