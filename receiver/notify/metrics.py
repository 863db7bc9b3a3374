"""Prometheus metrics of deliveries, per receiver and integration, on a registry the caller owns."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class NotifyMetrics:
    sent: Counter
    failed: Counter
    retried: Counter
    latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> "NotifyMetrics":
        labels = ["receiver", "integration"]
        return cls(
            sent=Counter("incident_copilot_notifications_sent", "Incident events delivered.", labels,
                         registry=registry),
            failed=Counter("incident_copilot_notifications_failed",
                           "Incident events given up: refused, or still failing after the give-up time.", labels,
                           registry=registry),
            retried=Counter("incident_copilot_notifications_retried",
                            "Delivery attempts that failed and were tried again.", labels, registry=registry),
            latency=Histogram(
                "incident_copilot_notification_latency_seconds",
                "From the alert notification an event answers (webhook in) to its delivery (message out).",
                labels, buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900), registry=registry,
            ),
        )
