"""The `anthropic` SDK the project requires has every name the agents use."""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
import typing
from importlib.metadata import version
from pathlib import Path

import anthropic
from anthropic.types import StopReason, Usage

from agents.loop import _FINISHED, _UNUSABLE

ROOT = Path(__file__).resolve().parents[2]
# The first release with each name or value the agents rely on (the SDK's CHANGELOG and git history).
FIRST_RELEASE = {
    "anthropic.OverloadedError": (0, 47),
    'stop_reason "refusal"': (0, 50),
    'stop_reason "model_context_window_exceeded"': (0, 69),
}


def required_minimum() -> tuple[int, ...]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if re.match(r"anthropic\b", d))
    return tuple(int(p) for p in re.search(r">=\s*([\d.]+)", spec).group(1).split("."))


def used_names() -> set[str]:
    """Every `anthropic.X` attribute and `from anthropic... import X` name in the agents' source."""
    names = set()
    for path in (ROOT / "agents").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "anthropic":
                names.add(f"anthropic.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("anthropic"):
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_every_name_the_agents_use_exists_in_the_sdk():
    names = used_names()

    assert "anthropic.OverloadedError" in names and "anthropic.AsyncAnthropic" in names
    for name in sorted(names):
        module, _, attr = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), name


def test_the_stop_reasons_and_usage_fields_the_loop_reads_are_the_sdks():
    assert set(_UNUSABLE) | set(_FINISHED) | {"pause_turn"} <= set(typing.get_args(StopReason))
    assert {"cache_creation_input_tokens", "cache_read_input_tokens"} <= set(Usage.model_fields)


def test_the_required_minimum_has_them_and_the_installed_sdk_meets_it():
    minimum = required_minimum()

    assert minimum >= max(FIRST_RELEASE.values())
    installed = tuple(int(p) for p in re.findall(r"\d+", version("anthropic"))[:2])
    assert installed >= minimum[:2]
    assert anthropic.__version__ == version("anthropic")
