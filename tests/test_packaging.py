"""What `pip install .` ships: every package of the service, or the installed command fails on an import."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_of_the_service_is_in_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts)
             for top in ("ingestion", "agents", "receiver") for init in (ROOT / top).rglob("__init__.py")}
    assert found - listed == set()
