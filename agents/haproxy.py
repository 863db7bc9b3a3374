"""What HAProxy's termination states say about where a request went wrong."""

from __future__ import annotations

from typing import NamedTuple


class TerminationMeaning(NamedTuple):
    kind: str  # the playbook key this points to
    label: str  # how a title names it
    meaning: str  # one clause for a diagnosis
    server_side: bool  # whether the backend's servers are the likely culprit


# Only the first two characters matter here: who ended the session, and in which phase.
_M = TerminationMeaning
TERMINATION_STATES: dict[str, TerminationMeaning] = {
    "sH": _M("server_timeout", "sH server timeouts",
             "the server accepted the request but sent no response headers before `timeout server`", True),
    "sD": _M("server_timeout", "sD server timeouts", "the server stalled while sending the response body", True),
    "SC": _M("connection_refused", "SC connections refused",
             "the server refused or reset the connection (process down, port closed)", True),
    "sC": _M("connection_refused", "sC connect timeouts",
             "connecting to the server timed out (host unreachable or overloaded)", True),
    "SH": _M("server_abort", "SH server aborts",
             "the server closed the connection before sending complete headers", True),
    "SD": _M("server_abort", "SD server aborts", "the server closed the connection in the middle of the response",
             True),
    "sQ": _M("queue_timeout", "sQ queue timeouts",
             "requests waited in the queue until `timeout queue` (no free server slot)", True),
    "CD": _M("client_abort", "CD client aborts", "the client closed the connection during the response", False),
    "cD": _M("client_abort", "cD client timeouts", "the client stopped reading the response", False),
    "CH": _M("client_abort", "CH client aborts", "the client gave up while waiting for the server's headers", False),
    "CQ": _M("client_abort", "CQ client aborts", "the client gave up while queued", False),
    "CC": _M("client_abort", "CC client aborts", "the client gave up while HAProxy connected", False),
    "CR": _M("client_abort", "CR client aborts", "the client aborted before sending a full request", False),
    "cR": _M("client_abort", "cR client timeouts", "the client sent its request too slowly (408)", False),
    "PR": _M("proxy_denied", "PR proxy denials", "HAProxy itself denied or tarpitted the request", False),
    "PH": _M("proxy_denied", "PH proxy blocks", "HAProxy blocked the server's response", False),
}

NORMAL_STATE = "--"


def explain_state(state: str) -> TerminationMeaning | None:
    """The meaning of a two-character state, or None for a normal or unknown one."""
    return TERMINATION_STATES.get(state[:2])


def abnormal_states(states: dict[str, int]) -> list[tuple[str, int]]:
    """States other than a normal end, most frequent first."""
    rows = [(s[:2], n) for s, n in states.items() if s[:2] != NORMAL_STATE and n > 0]
    return sorted(rows, key=lambda row: -row[1])
