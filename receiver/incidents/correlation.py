"""Which incident an alert concerns, whatever Alertmanager's grouping: its backend, else its service, else its job.

A notification whose alerts concern several of them (a route grouped by alert name only) is split
into one part per key, each applied to its own incident. A part has an id of its own, derived from
the stream entry and the key, so every part is applied exactly once however often the entry is.
"""

from __future__ import annotations

import hashlib

from .model import Delivery
from .notification import Alert, Notification

# Labels that name what an alert concerns, most specific first.
CORRELATION_LABELS = ("backend", "service", "job")
# The key of alerts that name none of them (a node exporter's, say): they share one incident.
UNSCOPED = "*"


def correlation_key(alert: Alert) -> str:
    """`backend=api`, `service=checkout`, `job=node`, or `*` for an alert naming none of them."""
    for name in CORRELATION_LABELS:
        value = alert.labels.get(name, "").strip()
        if value:
            return f"{name}={value}"
    return UNSCOPED


def part_id(entry_id: str, key: str) -> str:
    """The id one part of a split notification is applied under: `<entry>#<key hash>`."""
    return f"{entry_id}#{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def split(delivery: Delivery) -> list[tuple[str, Delivery]]:
    """The notification as one (key, delivery) per correlation key, in the order the keys first appear.

    A notification that concerns one key is left whole, under its stream entry's own id.
    """
    n = delivery.notification
    by_key: dict[str, list[Alert]] = {}
    for alert in n.alerts:
        by_key.setdefault(correlation_key(alert), []).append(alert)
    if len(by_key) == 1:
        [key] = by_key
        return [(key, delivery)]
    return [(key, Delivery(entry_id=part_id(delivery.entry_id, key), received_at=delivery.received_at,
                           notification=_part(n, alerts)))
            for key, alerts in by_key.items()]


def _part(n: Notification, alerts: list[Alert]) -> Notification:
    """The notification as if Alertmanager had sent these alerts alone: its status and common labels theirs."""
    return n.model_copy(update={
        "alerts": alerts,
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "common_labels": _common([a.labels for a in alerts]),
        "common_annotations": _common([a.annotations for a in alerts]),
    })


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def key_label(key: str) -> str:
    """How a key reads in a sentence: "backend api", "service checkout", "no backend, service or job"."""
    if key == UNSCOPED:
        return "no backend, service or job"
    name, _, value = key.partition("=")
    return f"{name} {value}"
