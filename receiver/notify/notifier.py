"""What every integration has in common: the `Notifier` contract and how an HTTP answer is judged.

A notifier formats an event for its service and sends it once; it answers `(retry, err)` as
Alertmanager's notifiers do: `err` None when delivered, `retry` True when another attempt can
help. Whether and when to try again is the pipeline's decision, never the integration's.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from .event import IncidentEvent


class DeliveryError(Exception):
    """Why a delivery failed, in words safe to log and show (never a URL or a token)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class NotifyContext:
    """What a notifier knows of earlier deliveries to the same place, and may add to.

    `thread` is what the integration kept from the incident's first message (a Slack
    channel and timestamp); a notifier that sets `remember` has it kept for the next event.
    """

    target: str
    session: aiohttp.ClientSession
    thread: dict[str, str] | None = None
    remember: dict[str, str] | None = field(default=None)


Outcome = tuple[bool, DeliveryError | None]
DELIVERED: Outcome = (False, None)


class Notifier(Protocol):
    async def notify(self, ctx: NotifyContext, event: IncidentEvent) -> Outcome: ...


# Transport failures worth another attempt: the request may not have arrived, or its answer was lost.
TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


def judge_status(status: int, headers, body: str = "") -> Outcome:
    """Alertmanager's rule: 2xx delivered; 429 and 5xx worth another try (after `Retry-After`); other 4xx final."""
    if 200 <= status < 300:
        return DELIVERED
    detail = " ".join(body.split())[:200]
    reason = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429 or status >= 500:
        return True, DeliveryError(reason, retry_after=retry_after(headers))
    return False, DeliveryError(reason)


def transport_failure(exc: BaseException) -> Outcome:
    """A connection that failed or timed out: tried again. The text names the kind of failure only,
    since aiohttp's messages can carry the URL, and a webhook's URL is its secret."""
    name = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
    host = getattr(getattr(exc, "connection_key", None), "host", None)
    return True, DeliveryError(f"connection failed: {name}" + (f" ({host})" if host else ""))


def retry_after(headers) -> float | None:
    """`Retry-After` in seconds or as an HTTP date; None when absent or unreadable."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
