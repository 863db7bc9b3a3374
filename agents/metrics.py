"""Prometheus counters of analyses and model use, on a registry the caller owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from .report import TokenUsage


class AnalysisMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            "incident_copilot_llm_tokens", "Model tokens used by analyses: fresh input, output, cache writes and cache reads.", ["kind"], registry=registry
        )
        self.analyses = Counter(
            "incident_copilot_analyses",
            "Analyses run, by the mode that produced the report and whether any step fell back.",
            ["mode", "outcome"],
            registry=registry,
        )
        self.llm_calls = Counter(
            "incident_copilot_llm_calls", "Messages API calls by outcome.", ["outcome"], registry=registry
        )
        for kind in ("input", "output", "cache_write", "cache_read"):
            self.tokens.labels(kind=kind)

    def record_call(self, outcome: str, usage: TokenUsage | None = None) -> None:
        self.llm_calls.labels(outcome=outcome).inc()
        if usage is not None:
            self.tokens.labels(kind="input").inc(usage.input_tokens)
            self.tokens.labels(kind="output").inc(usage.output_tokens)
            self.tokens.labels(kind="cache_write").inc(usage.cache_creation_input_tokens)
            self.tokens.labels(kind="cache_read").inc(usage.cache_read_input_tokens)

    def record_analysis(self, mode: str, outcome: str) -> None:
        self.analyses.labels(mode=mode, outcome=outcome).inc()
