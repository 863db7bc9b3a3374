"""Running an analysis against the fake Messages API, and reading what came back."""

from __future__ import annotations

import asyncio
import copy

from agents import AnalysisConfig, AnalysisRequest, LLMClient, analyze
from tests.support import fake_anthropic as fake
from tests.support.agents import AT, deploy_regression


def model_config(api, **overrides) -> AnalysisConfig:
    # Generous limits: a busy machine must not turn a test's ordinary calls into timeouts. The tests
    # about timeouts and the deadline make one call wait for as long as it takes (`fake.Held`).
    knobs = {"anthropic_api_key": "test-key", "anthropic_base_url": api.base_url, "llm_timeout_seconds": 30.0,
             "deadline_seconds": 60.0, **overrides}
    return AnalysisConfig(**knobs)


def time_out_route(llm: LLMClient, route: str, seconds: float) -> None:
    """Give the calls of one route, and only them, a timeout of `seconds`; the rest keep the client's."""
    short = copy.copy(llm)  # the same SDK client, slots and budget
    short.timeout_seconds = seconds
    others = llm.create

    async def create(**call):
        return await (short.create if fake.route_of(call) == route else others)(**call)

    llm.create = create


async def run(api, signals=None, *, request=None, metrics=None, timeouts=None, memory=None, **overrides):
    config = model_config(api, **overrides)
    llm = LLMClient.from_config(config)
    for specialist_route, seconds in (timeouts or {}).items():
        time_out_route(llm, specialist_route, seconds)
    try:
        return await analyze((signals or deploy_regression()).source(), request or AnalysisRequest(at=AT),
                             config=config, llm=llm, metrics=metrics, memory=memory)
    finally:
        await llm.close()


async def until(condition, seconds: float = 60.0) -> None:
    """Wait for `condition()` to hold; the limit is only there to end a broken test."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


def finding(report, name):
    return next(f for f in report.findings if f.specialist == name)


def last_user_content(body):
    """The last message's content as the loop wrote it, without the prompt-cache breakpoint the request adds."""
    return plain(body["messages"][-1]["content"])


def plain(content):
    """Content without `cache_control`; a lone text block as the string it was written as."""
    if isinstance(content, str):
        return content
    blocks = [{k: v for k, v in b.items() if k != "cache_control"} for b in content]
    if len(blocks) == 1 and blocks[0]["type"] == "text" and "cache_control" in content[0]:
        return blocks[0]["text"]
    return blocks