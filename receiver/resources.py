"""The package's files: where the templates and rule files are, and the one way a file is replaced.

Inside the package when installed, beside it in a checkout.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

_HERE = Path(__file__).resolve().parent


def resource_dir(name: Literal["templates", "alert_rules", "tests/fixtures/recall"]) -> Path:
    packaged = _HERE / name  # a built wheel maps the top-level folder here
    if packaged.is_dir():
        return packaged
    return _HERE.parent / name


def replace_file(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers (Prometheus reloading its rules,
    someone opening a post-mortem) see the old file or the new one, never half of one.

    No fsync: every file written this way is rendered again from its source of truth on the next change.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
