"""What an on-call engineer does about each cause: the recommendations of a rules-only report."""

from __future__ import annotations

from collections.abc import Callable

from . import wording
from .assessment import Cause


def _of(cause: Cause) -> str:
    return cause.backend or "the affected backend"


def _where(cause: Cause) -> str:
    return cause.backend or "all backends"


def _route(cause: Cause) -> str:
    service = f" (backend {cause.backend})" if cause.backend else ""
    return f"{cause.route}{service}" if cause.route else _of(cause)


def _code(cause: Cause) -> str:
    return cause.codes[0] if cause.codes else "error"


def _traffic_drop(cause: Cause) -> str:
    if cause.severity.value == "critical":
        return (f"Traffic to {_where(cause)} stopped: check what sits in front of HAProxy (DNS records, the load "
                "balancer or CDN, firewall changes) and that HAProxy runs and still ships its logs here.")
    return (f"Traffic to {_where(cause)} fell: check upstream (DNS, load balancer, a client release, a partner "
            "outage) for what stopped sending requests.")


PLAYBOOK: dict[str, Callable[[Cause], str]] = {
    "server_timeout": lambda c: (
        f"Roll back the latest deploy of {_of(c)} if the timeouts started with it; otherwise check {_of(c)}'s slow "
        "queries and the dependencies it waits on (HAProxy ended requests sH: no response within `timeout server`)."
    ),
    "connection_refused": lambda c: (
        f"Take server {c.facts['server']} of {_of(c)} out of rotation (`set server {_of(c)}/{c.facts['server']} "
        "state maint` on the HAProxy runtime API) and find why it refuses connections: a crashed or restarting "
        "process, a wrong port after a deploy; the other servers are healthy (SC: connection refused)."
        if "server" in c.facts else
        f"Check that {_of(c)}'s servers are up and listening: HAProxy health checks (`show servers state`), "
        "crashed or restarting processes, a wrong port after a deploy (SC: connection refused)."
    ),
    "server_abort": lambda c: (
        f"Look for crashes or OOM kills of {_of(c)}'s servers and for a protocol or TLS mismatch "
        "(the server closed connections mid-response, 502)."
    ),
    "queue_timeout": lambda c: (
        f"Add servers to {_of(c)} or raise its `maxconn`: requests time out in HAProxy's queue (sQ, 503)."
    ),
    "queueing": lambda c: (
        f"Scale out {_of(c)} or raise its servers' `maxconn`: requests wait in HAProxy's queue"
        + (f" (mean Tw {wording.ms(float(c.facts['mean_queue_ms']))})" if "mean_queue_ms" in c.facts else "")
        + "."
    ),
    "slow_server": lambda c: (
        f"Find what slows {_of(c)} itself: its latest deploy, slow database queries, and its downstream "
        "dependencies (the time is spent in the servers, not in HAProxy's queue)."
    ),
    "application_errors": lambda c: (
        f"Read {_of(c)}'s application logs for the {_code(c)} responses and roll back its latest deploy if they "
        "started with it."
    ),
    "auth_failures": lambda c: (
        f"Check the authentication of the service behind {_route(c)}: expired tokens or certificates, rotated "
        f"keys or secrets, a changed identity-provider setting in its latest deploy ({_code(c)} responses)."
    ),
    "not_found": lambda c: (
        f"Check the routing of {_route(c)}: an endpoint removed or renamed by the latest deploy, or clients "
        "calling an old URL (404)."
    ),
    "rate_limited": lambda c: (
        f"Check the rate limits on {_route(c)}: who is throttled (429) and whether the limit or the client is wrong."
    ),
    "client_errors": lambda c: (
        f"Compare what clients send to {_route(c)} with what it accepts: {_code(c)} answers point at a contract "
        "change between client and service."
    ),
    "redis_memory": lambda c: (
        "Raise Redis `maxmemory`, check its `maxmemory-policy`, or shorten RETENTION_MINUTES: the metrics store is "
        "near its memory limit and will evict or refuse writes."
    ),
    "redis_rejected": lambda c: (
        "Raise Redis `maxclients` or find the client leaking connections: Redis refused new connections."
    ),
    "alert_firing": lambda c: (
        f"Open the alert's graph for {_where(c)}: it fires where the logs received here read healthy. Check that "
        "every HAProxy replica ships its logs to this service and that the clocks of Prometheus and the log "
        "senders agree (NTP)."
    ),
    "traffic_drop": _traffic_drop,
    "traffic_spike": lambda c: (
        f"Find where the extra traffic to {_where(c)} comes from (a campaign, a bot, a retry storm): rate-limit "
        "abusive clients, or scale out if it is legitimate."
    ),
}

ALL_CLEAR = "No action needed now: all four golden signals are within their thresholds."


def recommend(cause: Cause) -> str:
    action = PLAYBOOK.get(cause.kind)
    return action(cause) if action else f"Investigate {cause.label} on {_where(cause)}."
