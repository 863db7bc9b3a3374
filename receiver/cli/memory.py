"""`incident-copilot similar` and `import-postmortems`: the archive of past incidents from the command line."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from agents import Fingerprint, RecallProbe, SimilarIncident, query_terms, read_postmortem

from ..app import open_memory
from ..incidents import is_incident_id
from ..memory import PostmortemLibrary, Unreadable, import_folder, read_markdown
from ..settings import Settings


def similar(settings: Settings, target: str, *, limit: int = 5) -> int:
    """Print the past incidents most like an incident (by id) or a post-mortem file, with scores and why."""
    library = open_memory(settings)
    try:
        library.sync()
        probe, own_file = _probe(library, target, limit)
        if probe is None:
            return 1
        found = [s for s in library.archive.recall_now(probe.model_copy(update={"limit": limit + 1}))
                 if s.file != own_file][:limit]
        total = library.archive.count()
        print(f"Similar to {target} ({_described(probe.fingerprint)}), among {total:,} archived post-mortems:")
        print(format_similar(found, floor=probe.floor))
        return 0
    finally:
        library.archive.close()


def _probe(library: PostmortemLibrary, target: str, limit: int) -> tuple[RecallProbe | None, str | None]:
    if is_incident_id(target):
        entry = library.archive.entry(incident_id=target)
        if entry is None:
            print(f"no post-mortem of {target} in {library.directory}", file=sys.stderr)
            return None, None
        past = read_postmortem(entry.file, entry.body)
        if entry.fingerprint:  # the archive keeps it apart from the text it indexes
            past = replace(past, fingerprint=Fingerprint.model_validate_json(entry.fingerprint))
        own = entry.file
    else:
        path = Path(target)
        try:
            past = read_postmortem(path.name, read_markdown(path))
        except (OSError, Unreadable) as exc:
            print(f"{target}: {exc}", file=sys.stderr)
            return None, None
        own = path.name if path.resolve().parent == library.directory.resolve() else None
    fingerprint = past.fingerprint or Fingerprint()
    words = [past.title, past.root_cause or "", past.text[:4000]]
    exclude = [past.incident_id] if past.incident_id else []
    return RecallProbe(fingerprint=fingerprint, terms=query_terms(fingerprint, words), exclude=exclude,
                       limit=limit), own


def format_similar(found: list[SimilarIncident], *, floor: float) -> str:
    """The ranked list as a terminal shows it: score, date, source, title, why, and the past fix."""
    if not found:
        return f"  none similar (no past incident scores {floor:.2f} or more)"
    lines = []
    for rank, s in enumerate(found, 1):
        lines.append(f"{rank:>3}. {s.score:.2f}  {s.date or 'date unknown':<10}  {s.source}")
        lines.append(f"       {s.title}")
        if s.why:
            lines.append(f"       why: {'; '.join(s.why)}")
        if s.mitigation:
            lines.append(f"       mitigated: \u201c{s.mitigation}\u201d")
    return "\n".join(lines)


def _described(fingerprint: Fingerprint) -> str:
    parts = [fingerprint.backend or "", *fingerprint.termination_states, *fingerprint.status_codes[:2]]
    return ", ".join(p for p in parts if p) or "its text"


def import_postmortems(settings: Settings, source: Path) -> int:
    """Copy a folder's post-mortems into POSTMORTEM_DIR (never overwriting, originals untouched), then index them."""
    if not source.is_dir():
        print(f"{source}: not a folder", file=sys.stderr)
        return 2
    for name, outcome in import_folder(source, settings.postmortem_dir).items():
        print(f"{name}: {outcome}")
    library = open_memory(settings)
    try:
        result = library.sync()
        library.archive.checkpoint()
        count, size = library.archive.count(), library.archive.size_bytes()
    finally:
        library.archive.close()
    print(f"archive: {len(result.indexed)} indexed now, {count:,} post-mortems in all, "
          f"{size / 1024:,.0f} KiB ({size / max(count, 1) / 1024:.1f} KiB each) at {library.archive.path}")
    return 0
