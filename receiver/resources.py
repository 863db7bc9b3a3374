"""Where the templates and rule files are: inside the package when installed, beside it in a checkout."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

_HERE = Path(__file__).resolve().parent


def resource_dir(name: Literal["templates", "alert_rules"]) -> Path:
    packaged = _HERE / name  # a built wheel maps the top-level folder here
    if packaged.is_dir():
        return packaged
    return _HERE.parent / name
