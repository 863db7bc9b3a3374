"""The incident report: what an analysis returns and a post-mortem is rendered from."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from .links import defang

Specialist = Literal["latency", "errors", "saturation", "traffic"]
Mode = Literal["llm", "rules"]
Source = Literal["evaluation", "tool"]


class Severity(str, Enum):
    ok = "ok"
    warning = "warning"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def worst(cls, severities) -> "Severity":
        return max(severities, key=lambda s: s.rank, default=cls.ok)


_RANK = {Severity.ok: 0, Severity.warning: 1, Severity.critical: 2}


class Evidence(BaseModel):
    """One number behind a finding, with what it was compared to."""

    metric: str = Field(description='What was measured, e.g. "latency_p99_ms" or "error_rate_5xx_pct".')
    value: float | None
    threshold: float | None = None
    unit: str = ""
    window_minutes: int
    scope: str | None = Field(None, description='Where: "backend=api", "route=POST /api/checkout", or null for all.')
    baseline: float | None = Field(
        None, description="The same measure before the onset (after a resolution: before the incident).")
    source: Source = Field("evaluation", description="Where the value comes from: the rules' evaluation of the "
                                                     "window, or a tool call the model ran and the service answered.")
    tool_call: str | None = Field(None, description='With source "tool": the call, with its arguments, whose '
                                                    'result holds the value, e.g. "backends(window_minutes=5)".')


class TokenUsage(BaseModel):
    """Tokens as the Messages API bills them: fresh input, cache writes and cache reads apart, and output."""

    input_tokens: int = Field(0, description="Input billed at the base rate (not written to nor read from the cache).")
    output_tokens: int = 0
    cache_creation_input_tokens: int = Field(0, description="Input written to the prompt cache (1.25x base).")
    cache_read_input_tokens: int = Field(0, description="Input read from the prompt cache (0.1x base).")

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


class Provenance(BaseModel):
    """How a step was produced, so a reader knows how far to trust it."""

    mode: Mode
    fallback_reason: str | None = Field(None, description="Why the model's answer was not used, if it was tried.")
    model: str | None = None
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    duration_ms: float = 0.0
    tool_rounds: int = 0
    dropped_claims: list[str] = Field(
        default_factory=list,
        description="What the model stated that was not used: numbers no tool result or evaluation holds, "
                    "text the checks rejected, each with why.")

    @field_validator("dropped_claims")
    @classmethod
    def _inert(cls, claims: list[str]) -> list[str]:
        # Quoted model text is shown, never followed: its addresses must not render as links.
        return [defang(claim) for claim in claims]


class Finding(BaseModel):
    specialist: Specialist
    severity: Severity
    summary: str
    details: str
    evidence: list[Evidence] = Field(default_factory=list)
    provenance: Provenance
    disagreement: str | None = Field(
        None, description="Set when the model and the deterministic evaluator did not agree."
    )


class OnsetSummary(BaseModel):
    """When the signals changed, as found in the per-minute data."""

    at: datetime = Field(description="Start of the first bad minute; the analysed window starts here.")
    signal: Specialist
    scope: str = Field(description='"backend=api", or "all" for the whole site.')
    rule: str = Field(description="How the minute was found, in words.")
    changes: list[str] = Field(default_factory=list,
                               description='Every signal that changed, first first: "5xx on api at 16:41".')


class Report(BaseModel):
    timestamp: datetime
    overall_severity: Severity
    title: str
    diagnosis: str
    recommendations: list[str] = Field(description="Most important first; 1 to 5.")
    findings: list[Finding]
    window_minutes: int
    window_start: datetime
    window_end: datetime
    backend: str | None = None
    culprit: str | None = Field(None, description="The backend the measured figures point at, if one stands out.")
    onset: OnsetSummary | None = None
    baseline_start: datetime | None = Field(None, description="The minutes the figures are compared with.")
    baseline_end: datetime | None = None
    synthesis: Provenance
    tokens: TokenUsage = Field(description="All model tokens of this analysis.")
    cost_usd: float = Field(0.0, description="What those tokens cost at the configured prices.")
    duration_ms: float
