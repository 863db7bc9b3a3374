"""The incidents package's public API, and what it may depend on."""

from __future__ import annotations

from pathlib import Path

from receiver import incidents
from tests.support.imports import imported_modules

INCIDENTS_DIR = Path(incidents.__file__).parent


def test_incidents_know_nothing_of_http_and_use_only_the_public_analysis_api() -> None:
    for path in INCIDENTS_DIR.glob("*.py"):
        modules = imported_modules(path)
        assert not any(m == "aiohttp" or m.startswith("aiohttp.") for m in modules), path.name
        assert not any(m.startswith("agents.") for m in modules), path.name
