"""An incident's fingerprint: built from what an analysis measured, and carried in its post-mortem.

What another incident can be compared by (see `agents.memory`): the culprit backend, the
signals out of bounds, the causes, status codes, termination states, routes, failing servers
and the hour it began. A generated post-mortem carries it in an HTML comment, so the file
alone is the past incident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import ValidationError

from .assessment import Assessment, worst_cause_first
from .haproxy import abnormal_states
from .quoting import compact_json
from .report import Fingerprint, Severity
from .signals import SignalSnapshot

FAILING_SERVER_5XX_PCT = 5.0  # a server of the culprit answering this share of 5xx is one that fails
_LIST_CAP = 5  # entries kept of each list of a fingerprint
_TEXT_CAP = 200  # characters of one entry (backend and route names are anyone's text)


# The fingerprint inside a generated post-mortem ------------------------------------------------

_COMMENT = "<!-- incident-copilot fingerprint {} -->"
_COMMENT_RE = re.compile(r"<!-- incident-copilot fingerprint (\{.{0,8000}?\}) -->")


def fingerprint_comment(fingerprint: Fingerprint) -> str:
    """An HTML comment holding the fingerprint; nothing in it can close the comment or open a tag."""
    text = compact_json(fingerprint.model_dump(mode="json", exclude_defaults=True))
    return _COMMENT.format(text.replace("--", "-\\u002d"))


def fingerprint_in(markdown: str) -> Fingerprint | None:
    """The fingerprint a generated post-mortem carries; None when it has none or it does not read."""
    match = _COMMENT_RE.search(markdown)
    if match is None:
        return None
    try:
        return Fingerprint.model_validate_json(match.group(1))
    except ValidationError:
        return None


# The fingerprint of an analysis ----------------------------------------------------------------

def fingerprint_of(assessments: Sequence[Assessment], snapshot: SignalSnapshot, culprit: str | None) -> Fingerprint:
    """What this analysis measured, as a fingerprint: culprit, signals out of bounds, causes, codes, states,
    routes and servers of the culprit, and the hour the signals changed."""
    bad = [a for a in assessments if a.severity != Severity.ok]
    causes = [c for a in bad for c in a.causes if c.kind != "alert_firing"]
    row = next((b for b in snapshot.backends.backends if b.backend == culprit), None)
    codes = row.status_codes if row is not None else snapshot.status_codes.codes
    states = row.termination_states if row is not None else snapshot.termination_states.states
    error_codes = [c for c, n in sorted(codes.items(), key=lambda kv: -kv[1]) if c[:1] in "45" and n > 0]
    routes = [c.route for c in causes if c.route]
    servers = [str(c.facts["server"]) for c in causes if "server" in c.facts]
    if snapshot.servers is not None and culprit is not None:
        servers += [s.server for s in snapshot.servers.servers if s.backend == culprit
                    and s.error_rate_5xx_pct >= FAILING_SERVER_5XX_PCT and s.server != "<NOSRV>"]
    moment = snapshot.onset.minute if snapshot.onset is not None else snapshot.at
    return Fingerprint(
        backend=culprit[:_TEXT_CAP] if culprit else None,
        signals={a.specialist: a.severity for a in bad} if bad else {},
        causes=_capped(c.kind for c in worst_cause_first(causes)),
        status_codes=_capped(error_codes),
        termination_states=_capped(s for s, _ in abnormal_states(states) if bad),
        routes=_capped(routes),
        servers=_capped(servers),
        hour=moment.hour if bad else None,
    )


def _capped(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v[:_TEXT_CAP] for v in values if v))[:_LIST_CAP]
