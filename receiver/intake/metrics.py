"""What the intake counts about itself: batch sizes and syslog lines it had to drop."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class IntakeMetrics:
    batch_lines: Histogram
    syslog_dropped: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> "IntakeMetrics":
        return cls(
            batch_lines=Histogram(
                "incident_copilot_ingest_batch_lines", "Lines per ingested batch, by source.", ["source"],
                buckets=(1, 10, 100, 500, 1000, 5000, 10000, 50000, 100000), registry=registry,
            ),
            syslog_dropped=Counter(
                "incident_copilot_syslog_dropped_lines", "Syslog lines dropped because the service fell behind.",
                ["transport"], registry=registry,
            ),
        )
