"""The archive of past incidents: one SQLite file, a row and a full-text entry per post-mortem.

SQLite's FTS5 ranks the text (BM25, Porter stemming over the unicode61 tokenizer with accents
folded, so any language the team writes is indexed the same way); the fingerprints are
compared in `agents.memory`. The file is opened in WAL mode and written in short
transactions, so several service processes on one DATA_DIR index and read it at once: each
row is keyed by its file name and written whole, so two processes indexing the same file
write the same row.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from agents import (
    ArchivedIncident,
    Fingerprint,
    PastPostmortem,
    RecallProbe,
    SimilarIncident,
    explained,
    rank_similar,
    words,
)
from pydantic import ValidationError

ARCHIVE_FILE = "memory.sqlite3"
# Candidates read per recall: the best by text, and the newest of the same backend by fingerprint.
LEXICAL_CANDIDATES = 50
BACKEND_CANDIDATES = 50
# Of a post-mortem without a fingerprint, the characters searched for the names of ours it mentions.
MENTIONS_READ = 16_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS past (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    incident_id TEXT,
    title TEXT NOT NULL,
    date TEXT,
    backend TEXT,
    fingerprint TEXT,
    mitigation TEXT,
    root_cause TEXT,
    mtime_ns INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS past_incident ON past (incident_id);
CREATE INDEX IF NOT EXISTS past_backend ON past (backend, date);
CREATE VIRTUAL TABLE IF NOT EXISTS past_text USING fts5 (
    title, body, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a file was when it was indexed: a changed stamp means index it again."""

    mtime_ns: int
    size: int


class Archive:
    """Past incidents in `path` (SQLite); `recall` answers `agents.IncidentMemory`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # Writing -----------------------------------------------------------------------------------

    def put(self, file: str, past: PastPostmortem, stamp: Stamp) -> None:
        """Index one post-mortem under its file name, replacing what was there."""
        fingerprint = past.fingerprint.model_dump_json(exclude_defaults=True) if past.fingerprint else None
        backend = past.fingerprint.backend if past.fingerprint else None
        with self._lock, self._transaction():
            self._delete(file)
            cursor = self._db.execute(
                "INSERT INTO past (file, incident_id, title, date, backend, fingerprint, mitigation, root_cause, "
                "mtime_ns, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (file, past.incident_id, past.title, past.date, backend, fingerprint, past.mitigation,
                 past.root_cause, stamp.mtime_ns, stamp.size))
            self._db.execute("INSERT INTO past_text (rowid, title, body) VALUES (?, ?, ?)",
                             (cursor.lastrowid, past.title, past.text))

    def remove(self, file: str) -> None:
        with self._lock, self._transaction():
            self._delete(file)

    def _delete(self, file: str) -> None:
        row = self._db.execute("SELECT id FROM past WHERE file = ?", (file,)).fetchone()
        if row is not None:
            self._db.execute("DELETE FROM past_text WHERE rowid = ?", (row[0],))
            self._db.execute("DELETE FROM past WHERE id = ?", (row[0],))

    def checkpoint(self) -> None:
        """Move the write-ahead log into the database file (as SQLite does by itself every 1,000 pages)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def stamps(self) -> dict[str, Stamp]:
        """Every indexed file and what it was when indexed."""
        with self._lock:
            rows = self._db.execute("SELECT file, mtime_ns, size FROM past").fetchall()
        return {file: Stamp(mtime, size) for file, mtime, size in rows}

    def _transaction(self):
        return _Immediate(self._db)

    # Reading -----------------------------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM past").fetchone()[0]

    def size_bytes(self) -> int:
        """What the archive takes on disk: the database and its write-ahead log."""
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal"))
                   if p.exists())

    def entry(self, *, file: str | None = None, incident_id: str | None = None) -> PastEntry | None:
        """One archived post-mortem, by file name or by the incident it was written for."""
        column, value = ("file", file) if file is not None else ("incident_id", incident_id)
        with self._lock:
            row = self._db.execute(
                f"SELECT p.id, p.file, p.incident_id, p.title, p.date, p.fingerprint, p.mitigation, p.root_cause, "
                f"t.body FROM past p JOIN past_text t ON t.rowid = p.id WHERE p.{column} = ? "
                f"ORDER BY p.date DESC LIMIT 1", (value,)).fetchone()
        return None if row is None else PastEntry(*row[1:8], body=row[8])

    async def recall(self, probe: RecallProbe) -> list[SimilarIncident]:
        return await asyncio.to_thread(self.recall_now, probe)

    def recall_now(self, probe: RecallProbe) -> list[SimilarIncident]:
        """The past incidents most like the probe, above the relevance floor, best first, with why."""
        with self._lock:
            lexical = self._lexical(probe.terms)
            ids = set(lexical)
            if probe.fingerprint.backend:
                ids |= {r[0] for r in self._db.execute(
                    "SELECT id FROM past WHERE backend = ? ORDER BY date DESC LIMIT ?",
                    (probe.fingerprint.backend, BACKEND_CANDIDATES))}
            rows = self._db.execute(
                f"SELECT id, file, incident_id, title, date, fingerprint, mitigation, root_cause FROM past "
                f"WHERE id IN ({','.join('?' * len(ids))})", tuple(ids)).fetchall() if ids else []
        candidates = []
        for row_id, file, incident_id, title, date, fingerprint, mitigation, root_cause in rows:
            past = _fingerprint(fingerprint)
            named = frozenset() if past is not None else frozenset(words(self._text(row_id)[:MENTIONS_READ]))
            candidates.append(ArchivedIncident(row_id, file, incident_id, title, date, past, mitigation, root_cause,
                                               lexical.get(row_id, 0.0), named))
        return [explained(probe, best, self._text(best.key)) for best in rank_similar(probe, candidates)]

    def _text(self, row_id: int) -> str:
        with self._lock:
            row = self._db.execute("SELECT title || ' ' || body FROM past_text WHERE rowid = ?", (row_id,)).fetchone()
        return row[0] if row else ""

    def _lexical(self, terms: list[str]) -> dict[int, float]:
        """BM25 of the best candidates for the terms (higher is better)."""
        phrases = [t.replace('"', '""') for t in terms if t.strip()]
        if not phrases:
            return {}
        query = " OR ".join(f'"{p}"' for p in phrases)
        rows = self._db.execute(
            "SELECT rowid, -bm25(past_text, 2.0, 1.0) AS s FROM past_text WHERE past_text MATCH ? "
            "ORDER BY bm25(past_text, 2.0, 1.0) LIMIT ?", (query, LEXICAL_CANDIDATES)).fetchall()
        return {row_id: score for row_id, score in rows}


def _fingerprint(stored: str | None) -> Fingerprint | None:
    try:
        return Fingerprint.model_validate_json(stored) if stored else None
    except ValidationError:  # written by an older version: compared by its text alone
        return None


@dataclass(frozen=True, slots=True)
class PastEntry:
    file: str
    incident_id: str | None
    title: str
    date: str | None
    fingerprint: str | None
    mitigation: str | None
    root_cause: str | None
    body: str = ""


class _Immediate:
    """A write transaction taken at once, so a second process waits (busy_timeout) rather than failing mid-way."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
