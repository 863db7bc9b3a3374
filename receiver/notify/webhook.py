"""Any HTTP endpoint: a versioned JSON document of the event, signed with HMAC-SHA256.

Headers: `X-Incident-Copilot-Signature: t=<unix seconds>,v1=<hex>` where v1 is
HMAC-SHA256(secret, "<t>." + body) — a receiver recomputes it and refuses a `t` too old, so
a captured request cannot be replayed later; `Idempotency-Key` is the same for every
attempt of one event to one receiver, so it can drop a repeat. docs/notifications.md has
the five lines that verify it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import orjson

from .config import WebhookConfig
from .event import IncidentEvent
from .notifier import TRANSPORT_ERRORS, NotifyContext, Outcome, judge_status, transport_failure
from .text import clip, safe_url

VERSION = "1"
SIGNATURE_HEADER = "X-Incident-Copilot-Signature"
MAX_TEXT = 10_000
MAX_FINDINGS = 10


def document(event: IncidentEvent) -> dict[str, Any]:
    s = event.incident
    return {
        "version": VERSION,
        "event": event.kind,
        "key": event.key,
        "sequence": event.sequence,
        "incident": {
            "id": s.incident_id, "status": s.status, "severity": s.severity,
            "assessed_severity": s.assessed_severity, "title": clip(s.title, 500),
            "diagnosis": clip(s.diagnosis, MAX_TEXT), "culprit": s.culprit,
            "recommendations": [clip(r, 1000) for r in s.recommendations[:5]],
            "analysis_error": s.analysis_error, "mode": s.mode,
            "findings": [{
                "specialist": f.specialist, "severity": f.severity.value, "summary": clip(f.summary, 1000),
                "evidence": [e.model_dump(mode="json") for e in f.evidence[:20]],
            } for f in s.findings[:MAX_FINDINGS]],
            "recheck": s.recheck,
            "alertnames": s.alertnames[:50],
            "labels": dict(list(s.labels.items())[:50]),
            "onset_at": s.onset_at.isoformat(), "notified_at": s.notified_at.isoformat(),
            "diagnosed_at": s.diagnosed_at.isoformat() if s.diagnosed_at else None,
            "ended_at": s.ended_at.isoformat() if s.ended_at else None,
            "links": {link.label.lower().replace(" ", "_").replace("-", "_"): link.url
                      for link in s.links if safe_url(link.url)},
        },
    }


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Webhook:
    def __init__(self, config: WebhookConfig, *, clock: Callable[[], float] = time.time) -> None:
        assert config.url is not None
        self._url = config.url.get_secret_value()
        self._secret = config.hmac_secret.get_secret_value().encode() if config.hmac_secret else None
        self._clock = clock

    async def notify(self, ctx: NotifyContext, event: IncidentEvent) -> Outcome:
        body = orjson.dumps(document(event))
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"{event.key}:{ctx.target}",
                   "X-Incident-Copilot-Event": event.kind, "User-Agent": "incident-copilot"}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, body, int(self._clock()))
        try:
            async with ctx.session.post(self._url, data=body, headers=headers) as response:
                return judge_status(response.status, response.headers, await response.text())
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc)
