"""The knobs of an analysis: golden-signal thresholds and the model's limits."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Where each golden signal turns warning or critical; the evaluators read only these."""

    latency_p95_ms: float = 500.0
    latency_p99_ms: float = 1000.0
    error_rate_5xx_pct: float = 5.0
    error_rate_5xx_critical_pct: float = 10.0
    error_rate_4xx_pct: float = 20.0
    memory_used_pct: float = 80.0
    memory_used_critical_pct: float = 95.0
    queued_requests_pct: float = 10.0
    min_requests_per_minute: float = 10.0
    traffic_spike_factor: float = 3.0
    traffic_recent_minutes: int = 3


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """USD per million tokens, as the Messages API bills them; the defaults are Claude Sonnet 4.6's.

    A 5-minute cache write costs 1.25 times the base input price, a cache read 0.1 times.
    """

    input_per_mtok: float = 3.0
    output_per_mtok: float = 15.0
    cache_write_factor: float = 1.25
    cache_read_factor: float = 0.1

    def cost_usd(self, usage) -> float:
        """The price of a `TokenUsage`."""
        base = (usage.input_tokens + usage.cache_creation_input_tokens * self.cache_write_factor
                + usage.cache_read_input_tokens * self.cache_read_factor) * self.input_per_mtok
        return (base + usage.output_tokens * self.output_per_mtok) / 1_000_000


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """Everything `analyze` and `LLMClient.from_config` need; built from the service settings."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    window_minutes: int = 10
    deadline_seconds: float = 60.0
    tool_timeout_seconds: float = 5.0
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    model: str = "claude-sonnet-4-6"
    max_tokens: int = 1024
    llm_timeout_seconds: float = 20.0
    max_tool_rounds: int = 4
    max_concurrency: int = 4
    max_analyses_per_hour: int = 30
    max_tokens_per_hour: int = 0  # every token of every call, cached or not; 0: no token budget
    synthesis_thinking: str = "off"  # "adaptive": the synthesis thinks before it concludes (models that support it)
    prompt_caching: bool = True  # cache the specialists' shared prefix (tools and system prompt) and each loop's turns
    prices: ModelPrices = field(default_factory=ModelPrices)
    public_url: str = ""  # the service's own address: the one link model text may hold beside the alerts' 
