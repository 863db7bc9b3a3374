"""Whether the model's conclusion may reach the report: it must agree with what was measured.

Pure logic over the model's answer and what the analysis knows: the measured severity, which
backends were seen and which are affected, the routes, the numbers the findings hold and the
addresses a link may point to. A title or diagnosis that contradicts them rejects the whole
answer (the rules' conclusion is used, with the reason); a recommendation that does is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .grounding import unsourced_figures
from .links import LINKABLE, TRAILING, foreign_urls
from .memory import words
from .report import Severity, SimilarIncident

_SAYS_HEALTHY = re.compile(
    r"\b(?:all (?:fine|good|clear|ok|healthy|green)|(?:is|are|looks?|stays?) (?:fine|healthy|normal)|no (?:issues?|"
    r"problems?|incident|impact|action needed)|nothing (?:wrong|to (?:do|see))|false (?:alarm|positive)|"
    r"within (?:thresholds|normal)|operating normally)\b", re.I)
_SAYS_BROKEN = re.compile(r"\b(?:outage|down|failing|fails|broken|critical|timeouts?|errors? spike)\b", re.I)
_ROUTE = re.compile(r"(?<![\w/.-])/[\w/.{}:-]+")
# Something to paste into a shell that the playbook does not hold: fetched code, privilege, deletion.
# A recommendation that speaks of an earlier incident and what fixed it then.
_CITES_PAST = re.compile(
    r"\b(?:last time|previously|the previous incident|an? (?:past|earlier|previous) incident|in the past|as before|"
    r"(?:was|were|got) (?:fixed|mitigated|resolved) by|fixed it)\b", re.I)
# The words of an archived mitigation a citation must repeat in a row (all of them when it has fewer).
CITED_WORDS = 3
_COMMAND = re.compile(r"\b(?:curl|wget|sudo|chmod|chown|eval)\s|\|\s*(?:ba|z)?sh\b|\brm\s+-\w*[rf]", re.I)


@dataclass(frozen=True, slots=True)
class Measured:
    """What the analysis measured, against which a model's conclusion is checked."""

    severity: Severity
    backends: frozenset[str]  # every backend the window's data names
    affected: frozenset[str]  # those a non-ok finding or cause points at
    routes: frozenset[str] = frozenset()  # "GET /api/products"
    numbers: set[float] = field(default_factory=set)  # every number the findings and the draft hold
    urls: frozenset[str] = frozenset()  # the alerts' own, the runbooks', the service's
    past: tuple[SimilarIncident, ...] = ()  # the similar incidents recalled, with their quoted mitigations


@dataclass(frozen=True, slots=True)
class Checked:
    """The verdict: `rejected` says why the whole answer is not used; `dropped` what was cut from it."""

    rejected: str | None
    recommendations: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


def check_conclusion(title: str, diagnosis: str, recommendations: Iterable[str], *, playbook: Iterable[str],
                     measured: Measured) -> Checked:
    """Reject a title or diagnosis that contradicts the measurements; drop recommendations that do."""
    for part, text in (("title", title), ("diagnosis", diagnosis)):
        if reason := _contradiction(part, text, measured):
            return Checked(rejected=reason)
    kept, dropped = [], []
    known = set(playbook)
    for action in recommendations:
        reason = None if action in known else _unfounded(action, measured)
        if reason is None:
            kept.append(action)
        else:
            dropped.append(f"recommendation {action[:200]!r}: {reason}")
    if not kept:
        return Checked(rejected="no recommendation passed the checks", dropped=tuple(dropped))
    return Checked(rejected=None, recommendations=tuple(kept), dropped=tuple(dropped))


def _contradiction(part: str, text: str, measured: Measured) -> str | None:
    worst = measured.severity
    if worst != Severity.ok and _SAYS_HEALTHY.search(text if part == "title" else _strip_backends(text, measured)):
        return f"the {part} says all is well where the measured severity is {worst.value}"
    if worst == Severity.ok and part == "title" and _SAYS_BROKEN.search(text):
        return f"the {part} reports a failure where every signal measured ok"
    if worst != Severity.ok and (stray := _stray_backends(part, text, measured)):
        return f"the {part} names backend {', '.join(stray)}, which is not affected"
    if missing := unsourced_figures(text, measured.numbers):
        return f"the {part} states {', '.join(missing)}, which no finding holds"
    if foreign := foreign_urls(text, measured.urls):
        return f"the {part} holds an address that is not the alert's, the runbook's or the service's: {foreign[0]}"
    return None


def _unfounded(action: str, measured: Measured) -> str | None:
    if _CITES_PAST.search(action) and not cites_archive(action, measured.past):
        return "cites a past incident or fix that the archive does not hold"
    if foreign := foreign_urls(action, measured.urls):
        return f"an address that is not the alert's, the runbook's or the service's ({foreign[0]})"
    if _COMMAND.search(action):
        return "a shell command the playbook does not hold"
    action = LINKABLE.sub(" ", action)  # an allowed link's path is no route
    if measured.severity != Severity.ok and (stray := sorted(_backends_named(action, measured.backends)
                                                              - measured.affected)):
        return f"names backend {', '.join(stray)}, which is not affected"
    paths = [r.rstrip(TRAILING) for r in _ROUTE.findall(action)]
    if stray_routes := [r for r in paths if not any(r in known for known in measured.routes)]:
        return f"names {stray_routes[0]}, a path the data does not hold"
    if missing := unsourced_figures(action, measured.numbers):
        return f"states {', '.join(missing)}, which no finding holds"
    return None


def cites_archive(text: str, past: Iterable[SimilarIncident]) -> bool:
    """Whether `text` names a recalled incident (its date, file or id) and repeats words of its mitigation."""
    said = [_stem(w) for w in words(text)]
    for incident in past:
        if not incident.mitigation:
            continue
        names = [n for n in (incident.date, incident.file, incident.incident_id) if n]
        if not any(n in text for n in names):
            continue
        fix = [_stem(w) for w in words(incident.mitigation)]
        run = min(CITED_WORDS, len(fix))
        shingles = {tuple(fix[i:i + run]) for i in range(len(fix) - run + 1)}
        if any(tuple(said[i:i + run]) in shingles for i in range(len(said) - run + 1)):
            return True
    return False


def _stem(word: str) -> str:
    """Close enough to compare "drained" with "draining": the first five letters of a longer word."""
    return word[:5]


def _backends_named(text: str, backends: Iterable[str]) -> set[str]:
    return {b for b in backends if re.search(rf"(?<![\w/.-]){re.escape(b)}(?![\w/-])", text)}


def _stray_backends(part: str, text: str, measured: Measured) -> list[str]:
    """Unaffected backends named as if affected: anywhere in a title, outside a "web is fine" sentence elsewhere."""
    healthy = measured.backends - measured.affected
    if part == "title":
        return sorted(_backends_named(text, healthy))
    sentences = re.split(r"(?<=[.!?])\s+", text)
    return sorted({b for s in sentences if not _SAYS_HEALTHY.search(s) for b in _backends_named(s, healthy)})


def _strip_backends(text: str, measured: Measured) -> str:
    """The diagnosis without its sentences about healthy backends ("web is fine" is no contradiction)."""
    healthy = measured.backends - measured.affected
    sentences = re.split(r"(?<=[.!?])\s+", text)
    return " ".join(s for s in sentences if not _backends_named(s, healthy))
