"""The agents package's public API, and the direction of its dependencies."""

from __future__ import annotations

from pathlib import Path

import agents
from tests.support.imports import imported_modules, names_imported_from, sources, submodule_imports

AGENTS_DIR = Path(agents.__file__).parent


def test_exported_members():
    assert len(set(agents.__all__)) == len(agents.__all__)
    assert agents.EVAL_SCENARIOS[-1] == "redis-saturation"
    for name in set(agents.__all__) - {"EVAL_SCENARIOS"}:
        assert getattr(agents, name).__module__.startswith("agents."), name


def test_what_other_packages_import_from_agents_is_exported():
    used = names_imported_from("agents", sources("receiver", "bench", "tests"))
    assert used - set(agents.__all__) == set()
    assert {"analyze", "Report", "AnalysisRequest"} <= used


def test_the_receiver_and_the_benchmarks_import_only_the_package():
    assert submodule_imports("agents", sources("receiver", "bench")) == {}


def test_agents_never_import_the_receiver_and_only_the_async_client():
    for path in AGENTS_DIR.glob("*.py"):
        modules = imported_modules(path)
        assert not any(m == "receiver" or m.startswith("receiver.") for m in modules), path.name
        source = path.read_text()
        assert "anthropic.Anthropic(" not in source and "from anthropic import Anthropic" not in source, path.name
