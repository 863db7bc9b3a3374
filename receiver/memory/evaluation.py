"""How well recall finds the right past incident: a set of post-mortems and new incidents whose match is known.

The set (tests/fixtures/recall/) is a folder of past post-mortems of varied style and a
`cases.json` of new incidents, each with the file that should come first, or null where
nothing should match. Recall@k is the share of the cases with a match whose file is among the
first k recalled; a no-match case passes when nothing is recalled.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agents import Fingerprint, RecallProbe, query_terms

from .archive import Archive
from .library import PostmortemLibrary


@dataclass(frozen=True, slots=True)
class RecallCase:
    name: str
    expected: str | None
    recalled: tuple[str, ...]  # files, best first
    top_score: float | None

    @property
    def rank(self) -> int | None:
        """1 for first; None when the expected file was not recalled (or, for a no-match case, never)."""
        if self.expected is None or self.expected not in self.recalled:
            return None
        return self.recalled.index(self.expected) + 1

    @property
    def passed(self) -> bool:
        return not self.recalled if self.expected is None else self.rank == 1


@dataclass(frozen=True, slots=True)
class RecallEvaluation:
    cases: tuple[RecallCase, ...]
    seconds: float

    def recall_at(self, k: int) -> float:
        with_match = [c for c in self.cases if c.expected is not None]
        hits = [c for c in with_match if c.rank is not None and c.rank <= k]
        return len(hits) / len(with_match) if with_match else 0.0

    @property
    def no_match_correct(self) -> tuple[int, int]:
        """No-match cases where nothing was recalled, and how many there are."""
        empty = [c for c in self.cases if c.expected is None]
        return sum(1 for c in empty if not c.recalled), len(empty)


def evaluate_recall(recall_set: Path, *, depth: int = 3) -> RecallEvaluation:
    """Index the set's post-mortems into a scratch archive and recall each case's incident."""
    cases = json.loads((recall_set / "cases.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="incident-copilot-recall-") as scratch:
        archive = Archive(Path(scratch) / "archive.sqlite3")
        try:
            PostmortemLibrary(recall_set / "postmortems", archive).sync()
            rows = []
            for case in cases:
                fingerprint = Fingerprint.model_validate(case["fingerprint"])
                probe = RecallProbe(fingerprint=fingerprint, terms=query_terms(fingerprint, case.get("findings", [])),
                                    limit=depth)
                found = archive.recall_now(probe)
                rows.append(RecallCase(case["name"], case.get("expect"), tuple(s.file or "" for s in found),
                                       found[0].score if found else None))
        finally:
            archive.close()
    return RecallEvaluation(tuple(rows), time.perf_counter() - started)


def format_recall(evaluation: RecallEvaluation) -> str:
    """The cases as a table, then recall@1, recall@3 and the no-match cases."""
    files = [c.expected or "(none similar)" for c in evaluation.cases]
    files += [c.recalled[0] if c.recalled else "(none similar)" for c in evaluation.cases]
    width = max(map(len, files))
    lines = [f"{'recall case':<42} {'expected first':<{width}} {'got first':<{width}} score  rank"]
    for case in evaluation.cases:
        got = case.recalled[0] if case.recalled else "(none similar)"
        score = f"{case.top_score:.2f}" if case.top_score is not None else "  - "
        rank = str(case.rank) if case.rank else ("ok" if case.passed else "-")
        lines.append(f"{case.name[:42]:<42} {(case.expected or '(none similar)'):<{width}} {got:<{width}} "
                     f"{score:>5}  {rank}")
    right, total = evaluation.no_match_correct
    lines.append(f"recall@1 {evaluation.recall_at(1):.2f}, recall@3 {evaluation.recall_at(3):.2f} over "
                 f"{sum(1 for c in evaluation.cases if c.expected)} cases; nothing recalled in {right} of {total} "
                 f"no-match case{'s' if total != 1 else ''}")
    return "\n".join(lines)
