"""The bounded tool-use loop: read-only lookups, then one structured answer through a submit tool."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from anthropic.types import ContentBlock
from pydantic import BaseModel, ValidationError

from .llm import LLMClient, ModelFailure
from .metrics import AnalysisMetrics
from .report import TokenUsage
from .tools import Toolbox, ToolError

T = TypeVar("T", bound=BaseModel)

# Room for an answer: no token of ASCII text is shorter than one character, so one token per character
# of the longest valid JSON holds any answer however it tokenises (English prose averages about four
# characters a token; output is billed as used, not as reserved), with room to reason before the call.
CHARS_PER_TOKEN = 1
REASONING_TOKENS = 1024
THINKING_TOKENS = 16_000  # room for adaptive thinking, which sets no budget of its own
# Why a turn's answer cannot be used, by stop_reason; each falls back to the rules.
_UNUSABLE = {
    "max_tokens": "model answer cut off at max_tokens",
    "refusal": "model declined to answer (refusal)",
    "model_context_window_exceeded": "model context window exceeded",
}
_FINISHED = ("end_turn", "tool_use", "stop_sequence")


@dataclass(frozen=True, slots=True)
class SubmitTool(Generic[T]):
    """The tool whose input is the answer: its schema is the pydantic model's, its input is validated."""

    name: str
    description: str
    model: type[T]

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.model.model_json_schema()}

    @property
    def max_tokens(self) -> int:
        """Enough output for the largest answer the schema accepts, and reasoning before it."""
        return math.ceil(largest_json_chars(self.model.model_json_schema()) / CHARS_PER_TOKEN) + REASONING_TOKENS


def largest_json_chars(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> int:
    """The length of the longest JSON value `schema` accepts; raises `ValueError` for an unbounded one."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        return largest_json_chars(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        return max(largest_json_chars(option, defs) for option in schema["anyOf"])
    if "enum" in schema:
        return max(len(str(v)) + 2 for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if "maxLength" not in schema:
            raise ValueError("a string without maxLength has no largest answer")
        return 2 + schema["maxLength"]
    if kind in ("number", "integer"):
        return 24
    if kind in ("boolean", "null"):
        return 5
    if kind == "array":
        if "maxItems" not in schema:
            raise ValueError("an array without maxItems has no largest answer")
        return 2 + schema["maxItems"] * (largest_json_chars(schema["items"], defs) + 2)  # ", " between items
    if kind == "object":
        # '"name": value, ' for each property
        return 2 + sum(len(name) + 6 + largest_json_chars(prop, defs) for name, prop in schema["properties"].items())
    raise ValueError(f"no largest answer for schema type {kind!r}")


@dataclass(slots=True)
class LoopProgress:
    """What a loop has spent so far, readable even when it was cut short by a failure or the deadline."""

    tokens: TokenUsage = field(default_factory=TokenUsage)
    tool_rounds: int = 0


@dataclass(frozen=True, slots=True)
class LoopResult(Generic[T]):
    answer: T
    tokens: TokenUsage
    tool_rounds: int


async def run_tool_loop(
    llm: LLMClient,
    *,
    system: str,
    prompt: str,
    submit: SubmitTool[T],
    toolbox: Toolbox | None = None,
    max_tool_rounds: int = 0,
    metrics: AnalysisMetrics | None = None,
    progress: LoopProgress | None = None,
    cache: bool = False,
    thinking: dict[str, Any] | None = None,
) -> LoopResult[T]:
    """Run until the model submits a valid answer; raises `ModelFailure` when it cannot within its bounds.

    At most `max_tool_rounds` turns of lookups; after that the submit tool is forced. Without
    lookups the model may reason in text first; an answer without the submit call is nudged
    once, with the call forced. An invalid answer is sent back once for repair. A turn cut off
    at max_tokens, refused or beyond the context window ends the loop: nothing of it is run.
    With `cache`, the tools and system prompt are one cached prefix, and each turn caches the
    conversation so far for the next. With `thinking` (e.g. `{"type": "adaptive"}`), the model
    thinks first; a forced tool choice is not allowed with thinking, so its nudge only asks.
    """
    tools = [*(toolbox.specs() if toolbox else []), submit.spec()]
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    spent = progress if progress is not None else LoopProgress()
    max_tokens = max(llm.max_tokens, submit.max_tokens) + (THINKING_TOKENS if thinking else 0)
    repaired = nudged = False
    paused = 0
    for _turn in range(max_tool_rounds + 3):  # lookups, the answer, one repair, one nudge
        forced = nudged or (toolbox is not None and spent.tool_rounds >= max_tool_rounds)
        choice = {"type": "tool", "name": submit.name} if forced and not thinking else {"type": "auto"}
        message, used = await llm.create(
            system=_cached_system(system) if cache else system,
            messages=_cached_turns(messages) if cache else messages,
            tools=tools, tool_choice=choice, metrics=metrics, max_tokens=max_tokens, thinking=thinking,
        )
        spent.tokens += used
        stop = message.stop_reason
        if stop in _UNUSABLE:
            raise ModelFailure(_UNUSABLE[stop])
        if stop == "pause_turn" and message.content and paused < 2:
            # A long server-side turn paused: sending it back as it is lets the model continue it.
            paused += 1
            messages.append({"role": "assistant", "content": [_as_param(block) for block in message.content]})
            continue
        if stop not in _FINISHED:
            raise ModelFailure(f"model stopped for a reason this loop does not handle ({stop})")
        if not message.content:
            raise ModelFailure("model returned an empty answer")
        messages.append({"role": "assistant", "content": [_as_param(block) for block in message.content]})
        calls = [block for block in message.content if block.type == "tool_use"]
        if not calls:
            if nudged:
                raise ModelFailure(f"model ended without calling {submit.name}")
            nudged = True
            messages.append({"role": "user", "content": f"Call {submit.name} now with your conclusion."})
            continue

        lookups = [c for c in calls if c.name != submit.name]
        if lookups and spent.tool_rounds >= max_tool_rounds and not any(c.name == submit.name for c in calls):
            raise ModelFailure(f"tool loop exhausted after {spent.tool_rounds} tool rounds")
        looked_up = await asyncio.gather(*(_look_up(toolbox, c) for c in lookups))
        answered = {c.id: result for c, result in zip(lookups, looked_up)}
        results: list[dict[str, Any]] = []
        answer: T | None = None
        for call in calls:
            if call.name != submit.name:
                results.append(answered[call.id])
                continue
            try:
                answer = submit.model.model_validate(call.input)
            except ValidationError as exc:
                if repaired:
                    raise ModelFailure(f"invalid {submit.name} input after one repair: {_errors(exc)}") from None
                repaired = True
                results.append(_result(call.id, f"Invalid input, correct it and call {submit.name} again: "
                                                f"{_errors(exc)}", error=True))
            else:
                results.append(_result(call.id, "Accepted."))
        if answer is not None:
            return LoopResult(answer, spent.tokens, spent.tool_rounds)
        if lookups:
            spent.tool_rounds += 1
        # Every tool_use of the turn is answered in this one message, in the order it was asked.
        messages.append({"role": "user", "content": results})
    raise ModelFailure(f"tool loop exhausted after {spent.tool_rounds} tool rounds")


_CACHE_POINT = {"type": "ephemeral"}


def _cached_system(system: str) -> list[dict[str, Any]]:
    # The breakpoint after the system prompt caches tools and system together (tools come first).
    return [{"type": "text", "text": system, "cache_control": _CACHE_POINT}]


def _cached_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with one breakpoint, on its last block: the next turn reads all before it."""
    *before, last = messages
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else [dict(b) for b in content]
    blocks[-1] = {**blocks[-1], "cache_control": _CACHE_POINT}
    return [*before, {**last, "content": blocks}]


async def _look_up(toolbox: Toolbox | None, call) -> dict[str, Any]:
    if toolbox is None:
        return _result(call.id, f"unknown tool {call.name!r}", error=True)
    try:
        return _result(call.id, await toolbox.call(call.name, call.input))
    except ToolError as exc:
        return _result(call.id, str(exc), error=True)


def _result(tool_use_id: str, content: str, *, error: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if error:
        block["is_error"] = True
    return block


def _as_param(block: ContentBlock) -> dict[str, Any]:
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return block.model_dump(mode="json", exclude_none=True)


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()[:10])
