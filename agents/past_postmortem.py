"""What a post-mortem in markdown says, read by its headings: title, date, root cause, how it was mitigated.

Generated post-mortems (this service's template, as the team completed it) and hand-written
ones in the team's own format, in English, German or French. A section is found by its
heading or by a labelled line ("**Mitigation:** ..."); where none is found, there is none —
a mitigation is never guessed from other text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .fingerprint import fingerprint_in
from .memory import quotation
from .report import Fingerprint

# The most of a file's text the archive indexes, in characters.
MAX_INDEXED_CHARS = 64_000

MITIGATION_HEADINGS = frozenset({
    "how it was mitigated", "mitigation", "mitigations", "mitigation steps", "resolution", "resolution and recovery",
    "fix", "the fix", "fixes", "remediation", "workaround", "how it was fixed", "what fixed it", "recovery",
    "immediate actions",
    # German
    "behebung", "losung", "massnahmen", "sofortmassnahmen", "wie es behoben wurde", "wiederherstellung",
    # French
    "attenuation", "correctif", "mesures prises", "comment ca a ete corrige", "retablissement",
})
ROOT_CAUSE_HEADINGS = frozenset({
    "root cause", "root causes", "root cause analysis", "cause", "causes",
    "ursache", "ursachen", "grundursache",
    "cause racine", "cause premiere", "cause profonde",
})
# Placeholders of the generated template: a field still holding one was not written by the team.
_PLACEHOLDER = re.compile(r"^\W*(?:to be (?:filled|completed|confirmed)|tbd|n/?a|todo)\b", re.I)
_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
# "- **Label:** text", "**Label**: text", "Label: text"
_LABELLED = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?([^*_:\n]{2,40}?)\s*(?::\s*(?:\*\*|__)|(?:\*\*|__)\s*:|:)\s*(.*)$")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_INCIDENT_ID = re.compile(r"\binc-[0-9]{8}-[0-9a-f]{8}\b")
_DATE = re.compile(r"\b(20[0-9]{2}-[01][0-9]-[0-3][0-9])\b")
_GENERATED_FIELD = "**How it was mitigated:**"
_TITLE = re.compile(r"^Incident inc-[0-9]{8}-[0-9a-f]{8}:\s*")
_COMMENTS = re.compile(r"<!--.*?-->", re.S)


@dataclass(frozen=True, slots=True)
class PastPostmortem:
    """One post-mortem as the archive keeps it."""

    title: str
    date: str | None
    incident_id: str | None  # the incident a generated post-mortem was written for
    fingerprint: Fingerprint | None
    mitigation: str | None
    root_cause: str | None
    text: str  # what the lexical ranking indexes


def read_postmortem(name: str, markdown: str) -> PastPostmortem:
    """A post-mortem file's parts; `name` is its file name (its date prefix is the incident's date)."""
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headings = _headings(lines)
    title = next((text for level, text, _ in headings if level == 1), None) or _stem(name)
    incident = _INCIDENT_ID.search(title)
    date = _DATE.match(name) or _DATE.search(markdown[:4000])
    generated = _GENERATED_FIELD in markdown
    return PastPostmortem(
        title=quotation(_TITLE.sub("", _plain(title)), 200) or _stem(name),
        date=date.group(1) if date else None,
        incident_id=incident.group(0) if incident else None,
        fingerprint=fingerprint_in(markdown),
        mitigation=_section(lines, headings, MITIGATION_HEADINGS, labelled_only=generated),
        root_cause=_section(lines, headings, ROOT_CAUSE_HEADINGS, labelled_only=generated),
        text=_COMMENTS.sub(" ", markdown)[:MAX_INDEXED_CHARS],
    )


def fold(text: str) -> str:
    """A heading as it is compared: lower case, accents and markup dropped, ß as ss."""
    text = unicodedata.normalize("NFKD", text.lower().replace("ß", "ss"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w\s]", " ", text).replace("_", " ").split())


def _headings(lines: list[str]) -> list[tuple[int, str, int]]:
    """(level, text, line index) of every ATX and setext heading outside code fences."""
    found: list[tuple[int, str, int]] = []
    fenced = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        if match := _ATX.match(line):
            found.append((len(match.group(1)), match.group(2), index))
        elif (index > 0 and lines[index - 1].strip() and (match := _SETEXT.match(line))
              and not _LIST_MARK.match(lines[index - 1]) and not _ATX.match(lines[index - 1])):
            found.append((1 if match.group(1)[0] == "=" else 2, lines[index - 1].strip(), index))
    return found


def _section(lines: list[str], headings: list[tuple[int, str, int]], names: frozenset[str], *,
             labelled_only: bool) -> str | None:
    """The text under the first heading named in `names`, else of the first line labelled so; None if neither."""
    for line in lines:
        match = _LABELLED.match(line)
        if match and fold(match.group(1)) in names and (text := _written(match.group(2))):
            return text
    if labelled_only:
        return None
    for position, (level, text, index) in enumerate(headings):
        if fold(text) not in names:
            continue
        following = [h for h in headings[position + 1:] if h[0] <= level]
        end = following[0][2] if following else len(lines)
        if following and _SETEXT.match(lines[end]):
            end -= 1  # a setext heading's text is the line above its underline
        body = [_LIST_MARK.sub("", line) for line in lines[index + 1:end] if not _SETEXT.match(line)]
        if written := _written("\n".join(body)):
            return written
    return None


def _written(text: str) -> str | None:
    plain = _plain(_COMMENTS.sub(" ", text)).strip()
    if not plain or _PLACEHOLDER.match(plain):
        return None
    return quotation(plain)


def _plain(text: str) -> str:
    """Markdown emphasis and code marks dropped: the words a reader sees."""
    return re.sub(r"(\*\*|__|`|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w))", "", text)


def _stem(name: str) -> str:
    return name.rsplit("/", 1)[-1].removesuffix(".md")
