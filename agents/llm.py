"""The one way analyses reach the model: `AsyncAnthropic` under a concurrency cap, a timeout and an hourly budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import anthropic
from anthropic.types import Message

from ingestion import RedisClient
from .budget import Budgets, LocalBudgets, RedisBudgets
from .config import AnalysisConfig
from .metrics import AnalysisMetrics
from .report import TokenUsage

log = logging.getLogger(__name__)


class ModelFailure(Exception):
    """A model step whose answer cannot be used; `reason` is recorded as the step's fallback reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


DEADLINE_REASON = "analysis deadline exceeded"


def fallback_reason(error: Exception) -> str:
    """Why a model step's answer was not used, for its Provenance."""
    if isinstance(error, ModelFailure):
        return error.reason
    if isinstance(error, TimeoutError):
        return DEADLINE_REASON
    # A defect in handling the answer must not cost the analysis: log it, fall back.
    log.exception("model step failed unexpectedly")
    return f"unexpected error in the model step ({type(error).__name__})"


class LLMClient:
    """Shared by all analyses of a process; with Redis, its budgets are shared by every worker on it too.

    The SDK's own retries are off (`max_retries=0`). Every step already has a deterministic
    result to fall back to, and an analysis runs under a deadline, so a failed call falls
    back at once instead of spending the deadline on backoff; the fallback is the retry policy.
    """

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        model: str,
        max_tokens: int,
        timeout_seconds: float,
        budgets: Budgets,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.timeout_seconds = timeout_seconds
        self._client = client
        self._budgets = budgets

    @classmethod
    def from_config(cls, config: AnalysisConfig, *, redis: RedisClient | None = None,
                    clock: Callable[[], float] | None = None) -> LLMClient | None:
        """A client for `config`, or None when no API key is configured (analyses then use rules only).

        With `redis`, the hourly, concurrency and token budgets are held there, for every worker.
        """
        if not config.anthropic_api_key:
            return None
        client = anthropic.AsyncAnthropic(
            api_key=config.anthropic_api_key,
            base_url=config.anthropic_base_url,
            max_retries=0,
            timeout=config.llm_timeout_seconds,
        )
        return cls(
            client,
            model=config.model,
            max_tokens=config.max_tokens,
            timeout_seconds=config.llm_timeout_seconds,
            budgets=budgets_for(config, redis=redis, clock=clock),
        )

    async def start_analysis(self) -> str | None:
        """Take one analysis from the budgets; the reason it runs on rules only, or None."""
        return await self._budgets.start_analysis()

    async def create(
        self,
        *,
        system: str | list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        tool_choice: dict[str, Any],
        metrics: AnalysisMetrics | None = None,
        max_tokens: int | None = None,
        thinking: dict[str, Any] | None = None,
    ) -> tuple[Message, TokenUsage]:
        """One Messages API call; any failure is raised as `ModelFailure` with a reason a reader understands."""
        async with self._budgets.slot():
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    message = await self._client.messages.create(
                        model=self.model,
                        max_tokens=max_tokens or self.max_tokens,
                        system=system,
                        messages=messages,
                        tools=tools,
                        tool_choice=tool_choice,
                        **({"thinking": thinking} if thinking else {}),
                    )
            except asyncio.CancelledError:
                _record(metrics, "cancelled")
                raise
            except (TimeoutError, anthropic.APITimeoutError):
                _record(metrics, "timeout")
                raise ModelFailure(f"model call timed out after {self.timeout_seconds:g} s") from None
            except anthropic.RateLimitError:
                _record(metrics, "rate_limited")
                raise ModelFailure("model rate limited (429)") from None
            except anthropic.OverloadedError:
                _record(metrics, "overloaded")
                raise ModelFailure("model overloaded (529)") from None
            except anthropic.InternalServerError as exc:
                _record(metrics, "server_error")
                raise ModelFailure(f"model server error ({exc.status_code})") from None
            except anthropic.APIStatusError as exc:
                _record(metrics, "api_error")
                raise ModelFailure(f"model API error ({exc.status_code})") from None
            except anthropic.APIConnectionError:
                _record(metrics, "connection_error")
                raise ModelFailure("model API unreachable") from None
            except anthropic.AnthropicError as exc:
                _record(metrics, "api_error")
                raise ModelFailure(f"model API error ({type(exc).__name__})") from None
        usage = message.usage
        tokens = TokenUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
            cache_read_input_tokens=usage.cache_read_input_tokens or 0,
        )
        _record(metrics, "ok", tokens)
        try:
            await self._budgets.spend(tokens)
        except Exception:  # the answer is paid for and good; a budget that missed a count is no reason to drop it
            log.warning("could not count the model tokens against the budget", exc_info=True)
        return message, tokens

    async def close(self) -> None:
        await self._client.close()


def budgets_for(config: AnalysisConfig, *, redis: RedisClient | None = None,
                clock: Callable[[], float] | None = None) -> Budgets:
    limits = {"analyses_per_hour": config.max_analyses_per_hour, "max_concurrency": config.max_concurrency,
              "tokens_per_hour": config.max_tokens_per_hour}
    if redis is not None:
        return RedisBudgets(redis, lease_seconds=config.llm_timeout_seconds * 2 + 10, clock=clock or time.time,
                            **limits)
    return LocalBudgets(clock=clock or time.monotonic, **limits)


def _record(metrics: AnalysisMetrics | None, outcome: str, tokens: TokenUsage | None = None) -> None:
    if metrics is not None:
        metrics.record_call(outcome, tokens)
