"""Memory of past incidents, the pure part: an incident's fingerprint, how alike two are, and why.

An archive (the receiver's) holds past incidents: their fingerprint where the service analysed
them, and their post-mortem text. Recall ranks it for a new incident by two scores: how alike
the fingerprints are (same backend, termination states, routes, ...), and a lexical ranking of
the text against a query built here from the fingerprint and the findings. Nothing below reads
a file or a database.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from .haproxy import explain_state
from .links import defang
from .report import Fingerprint, SimilarIncident

# A past incident scoring below this (0 to 1) is not recalled: "none similar" is an answer.
RELEVANCE_FLOOR = 0.35
# How many similar incidents an incident shows.
RECALL_LIMIT = 3
# Where both scores exist: the share of the fingerprint's in the combined score (the text's is the rest).
FINGERPRINT_WEIGHT = 0.6
# A lexical score `s` (BM25, higher is better) counts as s / (s + LEXICAL_HALF): half at LEXICAL_HALF.
LEXICAL_HALF = 6.0
# The most a quoted mitigation or root cause shows, in characters; the archive keeps no more.
QUOTE_LIMIT = 400
MAX_QUERY_TERMS = 24
EXPLAINED_READ = 16_000  # characters of a post-mortem searched for the words it shares with the query

# What each part of the fingerprint weighs in its similarity (they sum to 1).
WEIGHTS = {"backend": 0.30, "states": 0.20, "causes": 0.15, "signals": 0.10, "codes": 0.10, "routes": 0.07,
           "servers": 0.05, "hour": 0.03}
_TEXT_CAP = 200  # characters of one query term (backend and route names are anyone's text)


class RecallProbe(BaseModel):
    """What recall is asked: the new incident's fingerprint, its query terms, and what not to return."""

    model_config = ConfigDict(frozen=True)

    fingerprint: Fingerprint
    terms: list[str] = Field(default_factory=list, max_length=MAX_QUERY_TERMS * 2)
    exclude: list[str] = Field(default_factory=list, description="Incident ids never recalled (this one and "
                                                                 "the earlier runs of its failure).")
    limit: int = Field(RECALL_LIMIT, ge=1, le=10)
    floor: float = Field(RELEVANCE_FLOOR, ge=0, le=1, description="Nothing scoring below this is recalled.")


class IncidentMemory(Protocol):
    """Where past incidents are recalled from (the receiver's archive)."""

    async def recall(self, probe: RecallProbe) -> list[SimilarIncident]: ...


# Fingerprint similarity ------------------------------------------------------------------------

def fingerprint_similarity(new: Fingerprint, past: Fingerprint) -> tuple[float, list[str]]:
    """How alike two fingerprints are (0 to 1), and the reasons, most telling first.

    Each part counts by its weight where either fingerprint has it: two incidents without a route
    are not less alike for it.
    """
    score = weighed = 0.0
    why: list[str] = []
    if new.backend or past.backend:
        weighed += WEIGHTS["backend"]
        if new.backend == past.backend:
            score += WEIGHTS["backend"]
            why.append(f"same backend {new.backend}")
    for part, label in (("termination_states", "termination state"), ("causes", "cause"),
                        ("status_codes", "status"), ("routes", "route"), ("servers", "server")):
        ours, theirs = getattr(new, part), getattr(past, part)
        if not ours and not theirs:
            continue
        weighed += WEIGHTS[_WEIGHT_OF[part]]
        score += WEIGHTS[_WEIGHT_OF[part]] * _jaccard(ours, theirs)
        shared = [v for v in ours if v in theirs]
        if shared:
            words = [v.replace("_", " ") for v in shared[:3]]
            why.append(f"same {label}{'s' if len(words) > 1 else ''} {', '.join(words)}")
    if new.signals or past.signals:
        weighed += WEIGHTS["signals"]
        signals = _jaccard(list(new.signals), list(past.signals))
        score += WEIGHTS["signals"] * signals
        if signals == 1.0:
            why.append(f"same signals ({', '.join(sorted(new.signals))})")
    if new.hour is not None and past.hour is not None:
        weighed += WEIGHTS["hour"]
        if _hours_apart(new.hour, past.hour) <= 1:
            score += WEIGHTS["hour"]
            why.append(f"same time of day ({past.hour:02d}:00 UTC)")
    if not weighed:
        return 0.0, why
    share = min(score / weighed, 1.0)
    if not why or not why[0].startswith(_TELLING):
        share /= 2  # sharing only the hour, a signal or a status is no likeness: the backend or the failure must
    return round(share, 4), why


_TELLING = ("same backend", "same termination", "same cause")


_WEIGHT_OF = {"termination_states": "states", "causes": "causes", "status_codes": "codes", "routes": "routes",
              "servers": "servers"}


def _jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    if not a or not b:
        return 0.0
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb)


def _hours_apart(a: int, b: int) -> int:
    return min((a - b) % 24, (b - a) % 24)


def lexical_share(bm25: float) -> float:
    """A BM25 score (higher is better, unbounded) as 0 to 1, the same for every archive size."""
    return 0.0 if bm25 <= 0 else bm25 / (bm25 + LEXICAL_HALF)


def combined_score(lexical: float, fingerprint: float | None) -> float:
    """The similarity recall ranks by: both scores where the past incident has a fingerprint, else the text's."""
    if fingerprint is None:
        return round(lexical, 4)
    return round(FINGERPRINT_WEIGHT * fingerprint + (1 - FINGERPRINT_WEIGHT) * lexical, 4)


def relevant(found: Iterable[SimilarIncident], *, limit: int = RECALL_LIMIT,
             floor: float = RELEVANCE_FLOOR) -> list[SimilarIncident]:
    """The best `limit` above the floor, best first; ties go to the newer."""
    return best_first(found, lambda s: s.score, lambda s: (s.date, s.source), limit=limit, floor=floor)


def best_first(items: Iterable, score, order, *, limit: int, floor: float) -> list:
    """The `limit` items scoring `floor` or more, highest first; of equal scores the newer, then by name.

    `order(item)` is (date or None, name). Three stable sorts, cheaper than one by a composed key.
    """
    kept = [(score(item), item) for item in items]
    kept = [pair for pair in kept if pair[0] >= floor]
    kept.sort(key=lambda pair: order(pair[1])[1])
    kept.sort(key=lambda pair: order(pair[1])[0] or "", reverse=True)
    kept.sort(key=lambda pair: pair[0], reverse=True)
    return [item for _, item in kept[:limit]]


# The query -------------------------------------------------------------------------------------

_MARKS = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")  # combining marks
_WORD = re.compile(r"[^\W_]+(?:[-./][^\W_]+)*", re.UNICODE)
_STOPWORDS = frozenset(
    "the a an and or of to in on at for from by with is are was were be been it its this that these those as "
    "than then there their they them not no all any each per over under into since before after about above "
    "below within while when where which who what how only also most more less other same some such so still "
    "out up down back min minutes minute requests request rate rates window figure figures baseline onset returns "
    "threshold thresholds signal signals measured against warning critical ok latency errors saturation "
    "traffic".split())


def words(text: str) -> list[str]:
    """The words of `text` as the archive's index sees them: lower-case, accents dropped, numbers kept."""
    folded = text.lower() if text.isascii() else _MARKS.sub("", unicodedata.normalize("NFKD", text.lower()))
    return _WORD.findall(folded)


def query_terms(fingerprint: Fingerprint, findings: Iterable[str] = (), *, limit: int = MAX_QUERY_TERMS) -> list[str]:
    """The words to rank past post-mortems by: the fingerprint's names and codes, then the findings' words."""
    terms: list[str] = []
    if fingerprint.backend:
        terms.append(fingerprint.backend)
    terms += fingerprint.servers
    for state in fingerprint.termination_states:
        terms.append(state)
        meaning = explain_state(state)
        if meaning is not None:
            terms += meaning.label.split()[1:]  # "connections refused", "server timeouts"
    for kind in fingerprint.causes:
        terms += kind.split("_")
    terms += fingerprint.status_codes
    for route in fingerprint.routes:
        terms += [w for w in route.split(" ", 1)[-1].split("/") if w and not w.startswith("{")]
    for text in findings:
        terms += [w for w in words(text) if len(w) > 3 and not w.replace(".", "").isdigit()]
    seen: dict[str, None] = {}
    for term in terms:
        term = term.strip().lower()[:_TEXT_CAP]
        if term and term not in _STOPWORDS and term not in seen:
            seen[term] = None
    # The names (backend, servers) say which system it was, the words only what went wrong: they count twice.
    names = [n.lower() for n in (fingerprint.backend, *fingerprint.servers) if n]
    return (list(seen)[:limit] + names)[: limit + len(names)]


def mention_similarity(new: Fingerprint, document_words: Set[str]) -> tuple[float | None, list[str]]:
    """How far a post-mortem without a fingerprint names ours (0 to 1): its backend, termination states,
    servers, status codes and routes, each part by its weight where ours has it, and the reasons.

    None when ours names nothing (a site-wide traffic drop): the text alone then decides.
    """
    score = weighed = 0.0
    why: list[str] = []
    parts = (("backend", [new.backend] if new.backend else [], "backend"),
             ("states", new.termination_states, "termination state"), ("codes", new.status_codes, "status"),
             ("routes", [r for r in new.routes if _route_named(r, document_words)] and new.routes, "route"),
             ("servers", new.servers, "server"))
    for weight, values, label in parts:
        if not values:
            continue
        weighed += WEIGHTS[weight]
        named = [v for v in values if v.lower() in document_words
                 or (label == "route" and _route_named(v, document_words))]
        if named:
            score += WEIGHTS[weight] * len(named) / len(values)
            why.append(f"mentions {label} {', '.join(named[:3])}")
    if not weighed:
        return None, why
    share = score / weighed
    if not why or not why[0].startswith(("mentions backend", "mentions termination")):
        share /= 2  # a status code or a server name alone is no likeness
    return round(share, 4), why


def _route_named(route: str, document_words: Set[str]) -> bool:
    path = route.split(" ", 1)[-1].lower()
    return path in document_words or all(p in document_words for p in path.split("/") if p)


def text_reasons(fingerprint: Fingerprint, document_words: Set[str], terms: Sequence[str]) -> list[str]:
    """Why a post-mortem without a fingerprint matches: the names and codes of ours it mentions, shared terms."""
    why = mention_similarity(fingerprint, document_words)[1]
    named = {v.lower() for v in (fingerprint.backend or "", *fingerprint.termination_states, *fingerprint.servers,
                                 *fingerprint.status_codes)}
    shared = [t for t in terms if t in document_words and t not in named][:5]
    if shared:
        why.append(f"shared terms: {', '.join(shared)}")
    return why


# Quotations from the archive -------------------------------------------------------------------

def quotation(text: str | None, limit: int = QUOTE_LIMIT) -> str | None:
    """Archive text as it may be quoted: one paragraph, links inert, cut to `limit` characters."""
    if not text:
        return None
    flat = defang(" ".join(text.split()))
    if not flat:
        return None
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


def past_fix_line(similar: SimilarIncident) -> str | None:
    """The rules' recommendation citing the closest past incident's mitigation, with its source and date."""
    if not similar.mitigation:
        return None
    when = f"{similar.date}, " if similar.date else ""
    return (f"Last time ({when}{similar.source}) a similar incident was mitigated this way, per its post-mortem: "
            f"\u201c{similar.mitigation}\u201d")[:500]


# Ranking what the archive found ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ArchivedIncident:
    """A candidate the archive read: its post-mortem's parts and its lexical score for the probe."""

    key: int
    file: str | None
    incident_id: str | None
    title: str
    date: str | None
    fingerprint: Fingerprint | None
    mitigation: str | None
    root_cause: str | None
    bm25: float = 0.0  # higher is better; 0 when its text matched no term
    words: frozenset[str] = frozenset()  # without a fingerprint: the words of its text, for what it names of ours


def rank_similar(probe: RecallProbe, candidates: Iterable[ArchivedIncident]) -> list[ArchivedIncident]:
    """The candidates worth showing, best first: not excluded, above the floor, at most `probe.limit`."""
    excluded = set(probe.exclude)
    allowed = (c for c in candidates if c.incident_id is None or c.incident_id not in excluded)
    return best_first(allowed, lambda c: score_of(probe, c)[0],
                      lambda c: (c.date, c.file or c.incident_id or c.title), limit=probe.limit, floor=probe.floor)


def score_of(probe: RecallProbe, candidate: ArchivedIncident) -> tuple[float, list[str]]:
    """The candidate's combined score, and the reasons of its fingerprint's part.

    A post-mortem without a fingerprint is compared by what its text names of ours instead (the
    backend, states, servers, codes, routes), which holds however few the archive has: a ranking
    of text alone says little when every post-mortem shares the words.
    """
    if candidate.fingerprint is not None:
        fp_score, why = fingerprint_similarity(probe.fingerprint, candidate.fingerprint)
    elif candidate.words:
        fp_score, why = mention_similarity(probe.fingerprint, candidate.words)
    else:
        fp_score, why = None, []
    return combined_score(lexical_share(candidate.bm25), fp_score), why


def similarity(probe: RecallProbe, candidate: ArchivedIncident) -> SimilarIncident:
    """The candidate as a similar incident: its score, why, and what its post-mortem says was done."""
    score, why = score_of(probe, candidate)
    return SimilarIncident(
        incident_id=candidate.incident_id, file=candidate.file, title=candidate.title, date=candidate.date,
        score=score, why=why, mitigation=candidate.mitigation, root_cause=candidate.root_cause)


def explained(probe: RecallProbe, candidate: ArchivedIncident, text: str) -> SimilarIncident:
    """The similar incident with every reason it matches: the shared fingerprint, and what its text shares."""
    found = similarity(probe, candidate)
    reasons = text_reasons(probe.fingerprint, set(words(text[:EXPLAINED_READ])), probe.terms)
    if candidate.fingerprint is not None:
        reasons = [*found.why, *(r for r in reasons if r.startswith("shared terms"))]
    return found.model_copy(update={"why": reasons})
