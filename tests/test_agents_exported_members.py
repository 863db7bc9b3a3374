"""The agents package's public API, and the direction of its dependencies."""

from __future__ import annotations

import ast
from pathlib import Path

import agents

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


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_agents_never_import_the_receiver_and_only_the_async_client():
    for path in AGENTS_DIR.glob("*.py"):
        modules = imported_modules(path)
        assert not any(m == "receiver" or m.startswith("receiver.") for m in modules), path.name
        source = path.read_text()
        assert "anthropic.Anthropic(" not in source and "from anthropic import Anthropic" not in source, path.name
