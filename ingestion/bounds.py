"""What HAProxy can write in a log line: the range of each number, the letters of a termination state.

A record outside them is no request HAProxy logged, and is rejected with the field named,
whatever format it came in. Inside them no sum the store keeps can reach Redis' 64-bit
limit (`store.py` says why, and saturates should it ever). Pure: no I/O.
"""

from __future__ import annotations

import re

from .records import LogRecord, RejectedLine

# Timers (TR, Tw, Tc, Tr, Ta) are milliseconds below a day; -1 means the phase never
# happened, as HAProxy writes it. Ta is summed per backend per day: at most
# 8.64e7 ms a line, so the sum stays below 2^63 for 10^11 lines a day.
TIMER_LIMIT_MS = 86_400_000
# Connection and queue counts and retries are C ints in HAProxy.
MAX_COUNT = 2**31 - 1
# Bytes are not summed; below 2^53 a byte count stays exact as a JSON number anywhere.
MAX_BYTES = 2**53 - 1
# -1 when HAProxy sent no response (the client went away first), 0 in some aborted
# requests; both count as requests of class "other".
STATUSES = frozenset((-1, 0, *range(100, 600)))

# HAProxy's configuration manual, "Session state at disconnection" (the same letters from
# 1.7 to 3.x): the event that ended the session, then the phase it was in. The last two
# characters, only in HTTP mode, tell what happened to the persistence cookie.
CAUSES = "CSPLRIDUKcs-"
PHASES = "RQCHDLT-"
COOKIE_FROM_CLIENT = "NIDVEOU-"
COOKIE_FROM_SERVER = "NIUPRD-"
# The first two characters are what is counted. A state made of letters that this list
# lacks is counted as `__other__` (see `buckets.py`) rather than rejected: the request
# behind it is real, and a newer HAProxy that adds a letter must not make its requests
# vanish from traffic, errors and latency. The list keeps the labels to 96 pairs.
KNOWN_STATES = frozenset(c + p for c in CAUSES for p in PHASES)
_USUAL_SHAPES = frozenset(
    ("", *KNOWN_STATES, *(s + a + b for s in KNOWN_STATES for a in COOKIE_FROM_CLIENT for b in COOKIE_FROM_SERVER))
)
# Two characters (TCP mode, or `%ts`), four (`%tsc`), or none in a JSON entry that omits it.
_STATE_SHAPE = re.compile(r"(?:[-A-Za-z]{2}){0,2}")


def well_formed_state(state: str) -> bool:
    return state in _USUAL_SHAPES or _STATE_SHAPE.fullmatch(state) is not None


def check_record(r: LogRecord) -> None:
    """Raise `RejectedLine` (code ``out_of_range``) naming the first field HAProxy could not have written."""
    # The hot path: one chained comparison per field, the explanation only on failure.
    status, size, tr, tw, tc, tresp, ta, state, ac, fc, bc, sc, rc, sq, bq = r[7:]
    limit, most = TIMER_LIMIT_MS, MAX_COUNT
    if (status in STATUSES and 0 <= size <= MAX_BYTES
            and -1 <= tr < limit and -1 <= tw < limit and -1 <= tc < limit and -1 <= tresp < limit
            and -1 <= ta < limit and 0 <= ac <= most and 0 <= fc <= most and 0 <= bc <= most
            and 0 <= sc <= most and 0 <= rc <= most and 0 <= sq <= most and 0 <= bq <= most
            and (state in _USUAL_SHAPES or _STATE_SHAPE.fullmatch(state))):
        return
    raise RejectedLine(_explain(r), "out_of_range")


_TIMERS = (("TR", "time_request"), ("Tw", "time_queue"), ("Tc", "time_connect"), ("Tr", "time_response"),
           ("Ta", "time_active"))
_COUNTS = ("actconn", "feconn", "beconn", "srv_conn", "retries", "srv_queue", "backend_queue")


def _explain(r: LogRecord) -> str:
    if r.status not in STATUSES:
        return f"status {_short(r.status)} is out of range: HAProxy writes 100 to 599, or -1 or 0 with no response"
    for short, name in _TIMERS:
        value = getattr(r, name)
        if not -1 <= value < TIMER_LIMIT_MS:
            return f"{short} ({name}) {_short(value)} is out of range: a timer is -1 or 0 to {TIMER_LIMIT_MS - 1} ms"
    if not 0 <= r.bytes_read <= MAX_BYTES:
        return f"byte count {_short(r.bytes_read)} is out of range: 0 to 2^53-1"
    for name in _COUNTS:
        value = getattr(r, name)
        if not 0 <= value <= MAX_COUNT:
            return f"{name} {_short(value)} is out of range: 0 to 2^31-1"
    return (f"termination state '{_short(r.termination_state)}' is not one HAProxy writes: "
            "2 or 4 letters or '-', such as '----' or 'sH--'")


def _short(value: object, limit: int = 24) -> str:
    try:
        text = str(value)
    except ValueError:  # an int of more digits than Python prints
        return "(a number too long to print)"
    return text if len(text) <= limit else text[:limit] + "…"
