"""Incidents from Alertmanager notifications: durable intake, lifecycle, analysis, post-mortems.

What the rest of the service may use is listed in `__all__`.
"""

from .analysis import IncidentAnalysis, incident_analysis
from .charts import ChartFile, IncidentCharts, chart_backend, golden_signal_charts, is_chart_file
from .consumer import IncidentWorker
from .lifecycle import Action, Decision, Policy, Reason, decide
from .metrics import IncidentMetrics
from .model import Delivery, Incident, IncidentSummary, TimelineEntry
from .naming import is_incident_id
from .notification import Notification
from .pipeline import NotificationPipeline
from .postmortem import PostmortemWriter, UnsafePath, format_duration, format_time, format_value
from .repository import IncidentRepository
from .stream import AlertStream, QueueDepth

__all__ = [
    "Action",
    "AlertStream",
    "ChartFile",
    "Decision",
    "Delivery",
    "Incident",
    "IncidentAnalysis",
    "IncidentCharts",
    "IncidentMetrics",
    "IncidentRepository",
    "IncidentSummary",
    "IncidentWorker",
    "Notification",
    "NotificationPipeline",
    "Policy",
    "PostmortemWriter",
    "QueueDepth",
    "Reason",
    "TimelineEntry",
    "UnsafePath",
    "chart_backend",
    "decide",
    "format_duration",
    "format_time",
    "format_value",
    "golden_signal_charts",
    "incident_analysis",
    "is_chart_file",
    "is_incident_id",
]
