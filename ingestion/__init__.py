"""Ingestion: HAProxy logs in, windowed golden signals out. Imports nothing else of this project.

What other packages may use is listed in `__all__`; everything else is internal.
"""

from .batch import (
    Batch,
    LineError,
    TimeBounds,
    add_entries,
    add_ndjson_lines,
    add_text_lines,
)
from .catalog import METRIC_VIEWS, MetricView
from .client import RedisClient, is_cluster
from .entries import LogEntry
from .exposition import METRIC_NAMES
from .exposition import collect as collect_metrics
from .exposition import render as render_metrics
from .httplog import parse_httplog_line
from .keys import tagged_metric_name
from .paths import normalise_path
from .queries import MetricsQueries
from .reading import BucketReader
from .records import LogRecord, RejectedLine
from .simulate import SCENARIOS, LiveTraffic, generate_lines, scenario_timeline
from .store import IngestCounts, Limits, MetricsStore
from .syslog_framing import StreamFramer, message_lines
from .views import (
    Backends,
    BackendSeries,
    BackendStats,
    Frontends,
    FrontendStats,
    HaproxySaturation,
    Health,
    Overview,
    Paths,
    PathStats,
    RedisSaturation,
    ResponseTimes,
    Rps,
    RpsPoint,
    SampleRequest,
    Samples,
    Saturation,
    Series,
    SeriesPoint,
    Servers,
    ServerStats,
    StatusCodes,
    TerminationStates,
)

__all__ = [
    "METRIC_NAMES",
    "METRIC_VIEWS",
    "SCENARIOS",
    "BackendSeries",
    "BackendStats",
    "Backends",
    "Batch",
    "BucketReader",
    "FrontendStats",
    "Frontends",
    "HaproxySaturation",
    "Health",
    "IngestCounts",
    "LineError",
    "Limits",
    "LiveTraffic",
    "LogEntry",
    "LogRecord",
    "MetricView",
    "MetricsQueries",
    "MetricsStore",
    "Overview",
    "PathStats",
    "Paths",
    "RedisClient",
    "RedisSaturation",
    "RejectedLine",
    "ResponseTimes",
    "Rps",
    "RpsPoint",
    "SampleRequest",
    "Samples",
    "Saturation",
    "Series",
    "SeriesPoint",
    "ServerStats",
    "Servers",
    "StatusCodes",
    "StreamFramer",
    "TerminationStates",
    "TimeBounds",
    "add_entries",
    "add_ndjson_lines",
    "add_text_lines",
    "collect_metrics",
    "generate_lines",
    "is_cluster",
    "message_lines",
    "normalise_path",
    "parse_httplog_line",
    "render_metrics",
    "scenario_timeline",
    "tagged_metric_name",
]
