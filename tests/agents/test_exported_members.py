"""The agents package's public API, and the direction of its dependencies."""

from __future__ import annotations

from pathlib import Path

import agents
from tests.support.imports import imported_modules

AGENTS_DIR = Path(agents.__file__).parent


def test_exported_members():
    assert sorted(agents.__all__) == [
        "AlertContext", "AnalysisConfig", "AnalysisMetrics", "AnalysisRequest", "EVAL_SCENARIOS", "EvalRow",
        "Evidence", "Finding", "LLMClient", "Provenance", "Report", "Severity", "SignalSource", "SignalsUnavailable",
        "Thresholds", "TokenUsage", "analyze", "format_eval_table", "format_report", "run_eval",
    ]
    assert agents.EVAL_SCENARIOS[-1] == "redis-saturation"
    for name in set(agents.__all__) - {"EVAL_SCENARIOS"}:
        assert getattr(agents, name).__module__.startswith("agents."), name


def test_agents_never_import_the_receiver_and_only_the_async_client():
    for path in AGENTS_DIR.glob("*.py"):
        modules = imported_modules(path)
        assert not any(m == "receiver" or m.startswith("receiver.") for m in modules), path.name
        source = path.read_text()
        assert "anthropic.Anthropic(" not in source and "from anthropic import Anthropic" not in source, path.name
