"""The incident report: what an analysis returns and a post-mortem is rendered from."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .links import defang

Specialist = Literal["latency", "errors", "saturation", "traffic"]
Mode = Literal["llm", "rules"]
Source = Literal["evaluation", "tool"]
_NAME_LIMIT = 200
_QUOTE_LIMIT = 500  # characters of text quoted from a past post-mortem  # characters of a backend, route or server name in a fingerprint


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


class Fingerprint(BaseModel):
    """What an incident looked like, in the terms another one can be compared by."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    backend: str | None = Field(None, max_length=_NAME_LIMIT, description="The culprit backend, if one stands out.")
    signals: dict[str, Severity] = Field(default_factory=dict, description="Each golden signal out of bounds.")
    causes: list[str] = Field(default_factory=list, description='Cause kinds, worst first: "connection_refused".')
    status_codes: list[str] = Field(default_factory=list, description="Error status codes, most first.")
    termination_states: list[str] = Field(default_factory=list, description='Abnormal states, most first: "SC".')
    routes: list[str] = Field(default_factory=list, description='Failing or slow routes: "POST /api/pay".')
    servers: list[str] = Field(default_factory=list, description="Servers of the backend that fail.")
    hour: int | None = Field(None, ge=0, le=23, description="Hour of day (UTC) the incident began.")


class SimilarIncident(BaseModel):
    """A past incident recalled for this one: what it was, how alike, and what the team did then."""

    model_config = ConfigDict(frozen=True)

    incident_id: str | None = Field(None, description="The past incident, when the service analysed it.")
    file: str | None = Field(None, description="Its post-mortem in POSTMORTEM_DIR, if there is one.")
    title: str
    date: str | None = Field(None, description="When it happened (YYYY-MM-DD), as its record or file says.")
    score: float = Field(description="Similarity, 0 to 1; only those above the relevance floor are shown.")
    why: list[str] = Field(default_factory=list, description='Why it matches: "same backend payments", ...')
    mitigation: str | None = Field(None, description="How it was mitigated, quoted from its post-mortem; "
                                                     "only when the team wrote it.")
    root_cause: str | None = Field(None, description="Its root cause, quoted from its post-mortem.")

    @field_validator("title", "mitigation", "root_cause")
    @classmethod
    def _quoted(cls, text: str | None) -> str | None:
        # Archive text is anyone's: shown as a quotation, never as a link to follow, and short.
        return None if text is None else defang(text)[:_QUOTE_LIMIT]

    @property
    def source(self) -> str:
        """What a quotation from it names: its file, else its incident id."""
        return self.file or self.incident_id or self.title


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
    fingerprint: Fingerprint | None = Field(None, description="What this incident looked like, to compare others by.")
    similar: list[SimilarIncident] = Field(
        default_factory=list, description="Past incidents like this one, best first, above the relevance floor; "
                                          "empty when none is similar.")
