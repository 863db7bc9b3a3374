"""The ingestion package's public API, and that it imports nothing else of this project."""

from __future__ import annotations

import ast
from pathlib import Path

import ingestion

INGESTION_DIR = Path(ingestion.__file__).parent
OURS = {"agents", "receiver", "tests", "bench"}


def test_exported_members():
    assert sorted(ingestion.__all__) == [
        "Batch", "BucketReader", "IngestCounts", "Limits", "LineError", "LogEntry", "LogRecord", "METRIC_NAMES",
        "MetricsQueries", "MetricsStore", "RejectedLine", "TimeBounds", "add_entries", "add_ndjson_lines",
        "add_text_lines", "collect_metrics", "normalise_path", "parse_httplog_line", "render_metrics",
    ]
    for name in ingestion.__all__:
        assert hasattr(ingestion, name), name


def test_ingestion_imports_nothing_else_of_the_project():
    for path in INGESTION_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert not roots & OURS, f"{path.name} imports {roots & OURS}"
