"""The ingestion package's public API, and that it imports nothing else of this project."""

from __future__ import annotations

from pathlib import Path

import ingestion
from tests.imports import imported_modules

INGESTION_DIR = Path(ingestion.__file__).parent
OURS = {"agents", "receiver", "tests", "bench"}


def test_exported_members():
    assert sorted(ingestion.__all__) == [
        "Batch", "BucketReader", "IngestCounts", "Limits", "LineError", "LogEntry", "LogRecord", "METRIC_NAMES",
        "METRIC_VIEWS", "MetricView", "MetricsQueries", "MetricsStore", "RejectedLine", "TimeBounds",
        "add_entries", "add_ndjson_lines", "add_text_lines", "collect_metrics", "normalise_path",
        "parse_httplog_line", "render_metrics",
    ]
    for name in ingestion.__all__:
        assert hasattr(ingestion, name), name


def test_ingestion_imports_nothing_else_of_the_project():
    for path in INGESTION_DIR.glob("*.py"):
        roots = {module.split(".")[0] for module in imported_modules(path)}
        assert not roots & OURS, f"{path.name} imports {roots & OURS}"
