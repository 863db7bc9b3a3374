"""Delivery of incidents to Slack, Microsoft Teams and signed webhooks, through a durable outbox.

What the rest of the service may use is listed in `__all__`.
"""

from .config import ConfigError, NotifyConfig, Target, load_config
from .dispatch import DeliveryPipeline, Dispatcher, RetryStage
from .event import IncidentEvent, IncidentSnapshot, Link, next_event
from .metrics import NotifyMetrics
from .outbox import Outbox
from .webhook import SIGNATURE_HEADER, signature

__all__ = [
    "SIGNATURE_HEADER",
    "ConfigError",
    "DeliveryPipeline",
    "Dispatcher",
    "IncidentEvent",
    "IncidentSnapshot",
    "Link",
    "NotifyConfig",
    "NotifyMetrics",
    "Outbox",
    "RetryStage",
    "Target",
    "load_config",
    "next_event",
    "signature",
]
