"""Prometheus metrics of the alert intake and the incident worker, on a registry the caller owns."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .stream import QueueDepth


@dataclass(frozen=True)
class IncidentMetrics:
    notifications: Counter
    decisions: Counter
    opened: Counter
    resolved: Counter
    analyses: Counter
    analysis_seconds: Histogram
    analyses_running: Gauge
    queue_waiting: Gauge
    queue_pending: Gauge
    dead_lettered: Counter
    oversize: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> "IncidentMetrics":
        metrics = cls(
            notifications=Counter(
                "incident_copilot_alert_notifications", "Alertmanager notifications accepted, by status.",
                ["status"], registry=registry,
            ),
            decisions=Counter(
                "incident_copilot_incident_decisions",
                "What notifications did to incidents, by action and reason (duplicates included).",
                ["action", "reason"], registry=registry,
            ),
            opened=Counter("incident_copilot_incidents_opened", "Incidents opened.", registry=registry),
            resolved=Counter("incident_copilot_incidents_resolved", "Incidents resolved.", registry=registry),
            analyses=Counter(
                "incident_copilot_incident_analyses",
                "Analyses of incidents by kind (analysis, recheck), report mode (llm, rules) and outcome.",
                ["kind", "mode", "outcome"], registry=registry,
            ),
            analysis_seconds=Histogram(
                "incident_copilot_incident_analysis_duration_seconds", "Duration of incident analyses, by kind.",
                ["kind"], buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120), registry=registry,
            ),
            analyses_running=Gauge(
                "incident_copilot_incident_analyses_running",
                "Analyses running in this process (worker processes: in all of them).",
                registry=registry, multiprocess_mode="livesum",
            ),
            queue_waiting=Gauge(
                "incident_copilot_alert_queue_depth",
                "Stored notifications no worker has taken yet.", registry=registry,
                multiprocess_mode="livemostrecent",  # one queue, whichever worker looked last
            ),
            queue_pending=Gauge(
                "incident_copilot_alert_jobs_pending",
                "Notifications taken by a worker and not yet acknowledged.", registry=registry,
                multiprocess_mode="livemostrecent",
            ),
            dead_lettered=Counter(
                "incident_copilot_alert_jobs_dead_lettered",
                "Notifications set aside after failing too often or being unreadable.", registry=registry,
            ),
            oversize=Counter(
                "incident_copilot_alert_notifications_oversize",
                "Notifications over a limit: truncated (stored with their first alerts) or refused (413).",
                ["outcome"], registry=registry,
            ),
        )
        for status in ("firing", "resolved"):
            metrics.notifications.labels(status)
        for outcome in ("truncated", "refused"):
            metrics.oversize.labels(outcome)
        return metrics

    def queue(self, depth: QueueDepth) -> None:
        self.queue_waiting.set(depth.waiting)
        self.queue_pending.set(depth.pending)
