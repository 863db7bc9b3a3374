"""Past incidents in a model analysis: shown as quoted data, looked up with a tool, cited only as archived."""

from __future__ import annotations

import json

from agents import AnalysisConfig, AnalysisRequest, RecallProbe, SimilarIncident, analyze
from tests.support import fake_anthropic as fake
from tests.support.agents import AT, deploy_regression
from tests.support.model_runs import plain, run

LAST_TIME = SimilarIncident(
    incident_id="inc-20261002-aaaabbbb", file="2026-10-02-api-timeouts-aaaabbbb.md", title="api: sH timeouts",
    date="2026-10-02", score=0.82, why=["same backend api", "same termination state sH"],
    mitigation="Rolled back api to release 7.2 from https://deploy.example/rollback; the 504s stopped.")


class Memory:
    """An archive holding one past incident like the deploy regression; it records what it was asked."""

    def __init__(self, found: list[SimilarIncident] = (LAST_TIME,)) -> None:
        self.found = list(found)
        self.probes: list[RecallProbe] = []

    async def recall(self, probe: RecallProbe) -> list[SimilarIncident]:
        self.probes.append(probe)
        return [s for s in self.found if s.incident_id not in probe.exclude]


async def test_the_rules_recall_once_and_quote_the_past_fix_second() -> None:
    memory = Memory()
    report = await analyze(deploy_regression().source(), AnalysisRequest(at=AT, exclude_similar=["inc-x"]),
                           config=AnalysisConfig(), memory=memory)

    [probe] = memory.probes
    assert probe.fingerprint.backend == "api" and "sH" in probe.fingerprint.termination_states
    assert probe.exclude == ["inc-x"] and probe.terms[0] == "api"
    assert report.fingerprint == probe.fingerprint and report.similar == [LAST_TIME]
    assert report.recommendations[1].startswith("Last time (2026-10-02, 2026-10-02-api-timeouts-aaaabbbb.md)")
    assert "https[:]//deploy[.]example/rollback" in report.recommendations[1]  # quoted, never a link


async def test_a_model_citing_the_archived_fix_keeps_it_and_an_invented_last_time_is_dropped(api) -> None:
    cited = "Last time (2026-10-02) this was fixed when the team rolled back api to release 7.2."
    invented = "Last time (2026-09-14) this was fixed by restarting the api database."
    api.script("synthesis", fake.submit_synthesis(
        "api: sH server timeouts, P99 1.8 s", "api times out after its deploy.",
        ["Roll back the latest deploy of api.", cited, invented]))

    report = await run(api, memory=Memory())

    assert report.synthesis.mode == "llm"
    assert report.recommendations == ["Roll back the latest deploy of api.", cited]
    assert report.synthesis.dropped_claims == [
        f"recommendation {invented!r}: cites a past incident or fix that the archive does not hold"]
    prompt = plain(api.sent("synthesis")[0]["messages"][0]["content"])
    block = prompt.split("<similar_incidents>\n", 1)[1].split("\n</similar_incidents>", 1)[0]
    assert json.loads(block)[0]["mitigation"].startswith("Rolled back api to release 7.2")


async def test_without_a_past_incident_any_last_time_is_dropped(api) -> None:
    claim = "Last time (2026-10-02) this was fixed by rolling back api to release 7.2."
    api.script("synthesis", fake.submit_synthesis(
        "api: sH server timeouts, P99 1.8 s", "api times out after its deploy.",
        ["Roll back the latest deploy of api.", claim]))

    report = await run(api, memory=Memory(found=[]))

    assert report.similar == [] and report.recommendations == ["Roll back the latest deploy of api."]


async def test_a_specialist_may_look_up_similar_incidents_as_quoted_data(api) -> None:
    memory = Memory()
    api.script("errors", fake.tool_use("similar_incidents", {"terms": ["rollback"], "limit": 2}),
               fake.submit_finding("critical", "api returns 12 % 5xx, as on 2026-10-02."))

    report = await run(api, memory=memory)

    offered = [t["name"] for t in api.sent("errors")[0]["tools"]]
    assert "similar_incidents" in offered
    answer = api.sent("errors")[1]["messages"][-1]["content"][0]
    text = answer["content"] if isinstance(answer["content"], str) else answer["content"][0]["text"]
    assert text.startswith("<archive>") and "Rolled back api to release 7.2" in text
    assert "rollback" in memory.probes[-1].terms and memory.probes[-1].limit == 2
    assert report.similar == [LAST_TIME]
