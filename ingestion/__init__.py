"""Ingestion: HAProxy logs in, windowed golden signals out. Imports nothing else of this project."""

from .batch import Batch, LineError, TimeBounds, add_entries, add_ndjson_lines, add_text_lines
from .catalog import METRIC_VIEWS, MetricView
from .entries import LogEntry
from .exposition import METRIC_NAMES, collect as collect_metrics, render as render_metrics
from .httplog import parse_httplog_line
from .paths import normalise_path
from .queries import MetricsQueries
from .reading import BucketReader
from .records import LogRecord, RejectedLine
from .store import IngestCounts, Limits, MetricsStore

__all__ = [
    "METRIC_NAMES",
    "METRIC_VIEWS",
    "Batch",
    "BucketReader",
    "IngestCounts",
    "LineError",
    "Limits",
    "LogEntry",
    "LogRecord",
    "MetricView",
    "MetricsQueries",
    "MetricsStore",
    "RejectedLine",
    "TimeBounds",
    "add_entries",
    "add_ndjson_lines",
    "add_text_lines",
    "collect_metrics",
    "normalise_path",
    "parse_httplog_line",
    "render_metrics",
]
