"""The ingestion package's public API, and that it imports nothing else of this project."""

from __future__ import annotations

import sys
from pathlib import Path

import ingestion
from tests.support.imports import imported_modules, names_imported_from, sources, submodule_imports

INGESTION_DIR = Path(ingestion.__file__).parent
OURS = {"agents", "receiver", "tests", "bench"}


def test_exported_members():
    """Each name once, and each made by an ingestion module rather than passed on from elsewhere."""
    assert len(set(ingestion.__all__)) == len(ingestion.__all__)
    submodules = [vars(module) for name, module in sys.modules.items() if name.startswith("ingestion.")]
    for name in ingestion.__all__:
        value = getattr(ingestion, name)
        home = getattr(value, "__module__", None)
        if home is None:  # a constant: bound in one of the modules
            assert any(value is bound for names in submodules for bound in names.values()), name
        else:
            assert home.startswith("ingestion."), name


def test_what_other_packages_import_from_ingestion_is_exported():
    used = names_imported_from("ingestion", sources(*OURS))
    assert used - set(ingestion.__all__) == set()
    assert {"MetricsQueries", "METRIC_VIEWS", "generate_lines", "StreamFramer"} <= used


def test_agents_and_the_receiver_import_only_the_package():
    assert submodule_imports("ingestion", sources("agents", "receiver", "bench")) == {}


def test_ingestion_imports_nothing_else_of_the_project():
    for path in INGESTION_DIR.glob("*.py"):
        roots = {module.split(".")[0] for module in imported_modules(path)}
        assert not roots & OURS, f"{path.name} imports {roots & OURS}"
