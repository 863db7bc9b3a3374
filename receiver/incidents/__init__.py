"""Incidents from Alertmanager notifications: durable intake, lifecycle, analysis, post-mortems.

What the rest of the service may use is listed in `__all__`.
"""

from .lifecycle import Action, Decision, Policy, Reason, decide
from .metrics import IncidentMetrics
from .model import Delivery, Incident, IncidentSummary
from .naming import is_incident_id
from .postmortem import PostmortemWriter, UnsafePath
from .repository import IncidentRepository
from .stream import AlertStream, QueueDepth
from .worker import IncidentAnalysis, IncidentWorker, build_worker, run_worker

__all__ = [
    "Action",
    "AlertStream",
    "Decision",
    "Delivery",
    "Incident",
    "IncidentAnalysis",
    "IncidentMetrics",
    "IncidentRepository",
    "IncidentSummary",
    "IncidentWorker",
    "Policy",
    "PostmortemWriter",
    "QueueDepth",
    "Reason",
    "UnsafePath",
    "build_worker",
    "decide",
    "is_incident_id",
    "run_worker",
]
