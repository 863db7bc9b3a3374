"""How long an analysis takes when every model call takes `--latency` seconds.

The four specialists run at once, so an analysis should take about the slowest specialist
plus the synthesis, not the sum of all steps. A fake Messages API over HTTP answers like a
well-behaved model (one lookup, then the finding), so the real SDK and HTTP stack run.

    .venv/bin/python bench/bench_analysis.py [--latency 0.5] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the test doubles under tests/

from agents import AnalysisConfig, AnalysisRequest, LLMClient, analyze  # noqa: E402
from tests.support.agents import AT, deploy_regression  # noqa: E402
from tests.support.fake_anthropic import FakeMessagesAPI, expert  # noqa: E402


async def one_run(config: AnalysisConfig) -> tuple[float, float, float, int]:
    """(measured s, sequential-sum s, slowest specialist + synthesis s, model calls)."""
    llm = LLMClient.from_config(config)
    try:
        started = time.perf_counter()
        report = await analyze(deploy_regression().source(), AnalysisRequest(at=AT), config=config, llm=llm)
        measured = time.perf_counter() - started
    finally:
        await llm.close()
    assert report.synthesis.mode == "llm" and all(f.provenance.mode == "llm" for f in report.findings)
    steps = [f.provenance.duration_ms / 1000 for f in report.findings]
    synthesis = report.synthesis.duration_ms / 1000
    calls = sum(f.provenance.tool_rounds + 1 for f in report.findings) + 1
    return measured, sum(steps) + synthesis, max(steps) + synthesis, calls


async def main(latency: float, runs: int) -> None:
    api = FakeMessagesAPI(latency=latency, default=expert)
    async with TestServer(api.app()) as server:
        config = AnalysisConfig(anthropic_api_key="bench", anthropic_base_url=str(server.make_url("")).rstrip("/"),
                                llm_timeout_seconds=30, deadline_seconds=120)
        started = time.perf_counter()
        await analyze(deploy_regression().source(), AnalysisRequest(at=AT), config=AnalysisConfig())
        rules_ms = (time.perf_counter() - started) * 1000
        results = [await one_run(config) for _ in range(runs)]

    measured = statistics.median(r[0] for r in results)
    sequential = statistics.median(r[1] for r in results)
    critical_path = statistics.median(r[2] for r in results)
    calls = results[0][3]
    print(f"model latency per call:            {latency:.2f} s  ({calls} calls per analysis, {runs} runs)")
    print(f"rules only (no model):             {rules_ms:.1f} ms")
    print(f"sequential-sum estimate:           {sequential:.2f} s  (all specialists one after another + synthesis)")
    print(f"slowest specialist + synthesis:    {critical_path:.2f} s")
    print(f"measured (median):                 {measured:.2f} s")
    print(f"ratio measured / sequential:       {measured / sequential:.2f}")
    print(f"speed-up:                          {sequential / measured:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="seconds each model call takes")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.latency, args.runs))
