"""The read-only tools a specialist's model may call: views of the metrics as compact JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .quoting import quote_untrusted
from .signals import SignalSource


class ToolError(Exception):
    """A tool call that cannot be answered; its message goes back to the model as `is_error`."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime | None = Field(None, description="End of the window, ISO 8601 UTC; default: the analysed moment.")


class WindowArgs(_Args):
    window_minutes: int | None = Field(None, ge=1, le=360, description="Minutes before `at`; default: the analysis's.")
    backend: str | None = Field(None, max_length=200, description="One backend; default: the analysed scope.")


class AllBackendsArgs(_Args):
    window_minutes: int | None = Field(None, ge=1, le=360, description="Minutes before `at`; default: the analysis's.")


class PathsArgs(WindowArgs):
    limit: int = Field(10, ge=1, le=25, description="Routes per list.")


class RpsArgs(_Args):
    minutes: int = Field(30, ge=5, le=360, description="How many minutes of requests per minute, ending at `at`.")
    backend: str | None = Field(None, max_length=200, description="One backend; default: the analysed scope.")


@dataclass(frozen=True, slots=True)
class ReadTool:
    name: str
    description: str
    args: type[_Args]
    query: Callable[[SignalSource, dict[str, Any]], Awaitable[BaseModel]]


def _window(name: str) -> Callable[[SignalSource, dict[str, Any]], Awaitable[BaseModel]]:
    return lambda source, kw: getattr(source, name)(window=kw["window_minutes"], at=kw["at"], backend=kw["backend"])


READ_TOOLS: dict[str, ReadTool] = {
    tool.name: tool
    for tool in (
        ReadTool("overview", "Request count, 4xx/5xx counts and rates, requests per minute.", WindowArgs,
                 _window("overview")),
        ReadTool("status_codes", "Requests by HTTP status code.", WindowArgs, _window("status_codes")),
        ReadTool("response_times", "P50/P95/P99 response time (Ta) in milliseconds.", WindowArgs,
                 _window("response_times")),
        ReadTool("backends", "Per backend: requests, error rates, percentiles, status codes, termination states, "
                 "queued requests and mean queue (Tw), connect (Tc) and response (Tr) times.", AllBackendsArgs,
                 lambda source, kw: source.backends(window=kw["window_minutes"], at=kw["at"])),
        ReadTool("frontends", "Per frontend: requests and error rates.", AllBackendsArgs,
                 lambda source, kw: source.frontends(window=kw["window_minutes"], at=kw["at"])),
        ReadTool("paths", "Routes (method + normalised path) with most errors and slowest.", PathsArgs,
                 lambda source, kw: source.paths(window=kw["window_minutes"], at=kw["at"], backend=kw["backend"],
                                                 limit=kw["limit"])),
        ReadTool("termination_states", "HAProxy termination states (first two characters), overall and per backend.",
                 WindowArgs, _window("termination_states")),
        ReadTool("rps", "Requests per minute, oldest first, zero-filled.", RpsArgs,
                 lambda source, kw: source.rps(minutes=kw["minutes"], at=kw["at"], backend=kw["backend"])),
        ReadTool("saturation", "Redis memory and connections; HAProxy queueing, connection counts and retries.",
                 WindowArgs, _window("saturation")),
    )
}


class Toolbox:
    """The tools one specialist may call, with the analysis's window and scope as defaults."""

    def __init__(
        self,
        source: SignalSource,
        names: tuple[str, ...],
        *,
        window_minutes: int,
        at: datetime,
        backend: str | None,
        timeout_seconds: float,
    ) -> None:
        self._source = source
        self._tools = [READ_TOOLS[name] for name in names]
        self._defaults = {"window_minutes": window_minutes, "at": at, "backend": backend}
        self._timeout = timeout_seconds

    def specs(self) -> list[dict[str, Any]]:
        """Tool definitions for the Messages API."""
        return [
            {"name": t.name, "description": t.description + " Read-only.", "input_schema": t.args.model_json_schema()}
            for t in self._tools
        ]

    async def call(self, name: str, arguments: object) -> str:
        """Run one tool; the answer is delimited JSON. Raises `ToolError` with a message for the model."""
        tool = next((t for t in self._tools if t.name == name), None)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(t.name for t in self._tools)}")
        try:
            args = tool.args.model_validate(arguments if isinstance(arguments, dict) else {})
        except ValidationError as exc:
            raise ToolError(f"invalid arguments: {_errors(exc)}") from None
        kw = {**self._defaults, **args.model_dump(exclude_none=True)}
        if kw["at"].tzinfo is None:
            kw["at"] = kw["at"].replace(tzinfo=timezone.utc)
        try:
            async with asyncio.timeout(self._timeout):
                view = await tool.query(self._source, kw)
        except TimeoutError:
            raise ToolError(f"{name} timed out after {self._timeout:g} s") from None
        except Exception as exc:  # a failed query is the model's to know about, not the analysis's to die of
            raise ToolError(f"{name} failed: {type(exc).__name__}") from exc
        return quote_untrusted("metrics", view.model_dump(mode="json", exclude_none=True))


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())
