"""The post-mortems on disk, kept indexed in the archive: read at start, then whenever a file changes.

Every `*.md` file of POSTMORTEM_DIR (but its README.md index) is a past incident: those this
service generated, as the team completed them, and those the team wrote. Files are only read,
never written, but for `import_folder`, which copies a folder's post-mortems in beside them
without touching the originals. A file that is too large, binary or not UTF-8 is skipped
with one log line per version of it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from agents import read_postmortem

from ..resources import replace_file
from .archive import Archive, Stamp

log = logging.getLogger(__name__)

# A post-mortem larger than this is not indexed (the generated ones are kept under 512 KiB).
MAX_FILE_BYTES = 1024 * 1024
INDEX_FILE = "README.md"
_SAFE_NAME = re.compile(r"^[\w][\w.-]{0,150}\.md$")


class Unreadable(ValueError):
    """A file that is not a post-mortem the archive can read: too large, binary or not UTF-8."""


@dataclass(slots=True)
class SyncResult:
    indexed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why


def read_markdown(path: Path, *, limit: int = MAX_FILE_BYTES) -> str:
    """The file's text; raises `Unreadable` with the reason for one that is no markdown post-mortem."""
    data = path.read_bytes()[: limit + 1]
    if len(data) > limit:
        raise Unreadable(f"larger than {limit // 1024} KiB")
    if b"\x00" in data:
        raise Unreadable("binary (holds NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"not UTF-8 (byte {exc.start})") from None


class PostmortemLibrary:
    """POSTMORTEM_DIR as the archive sees it."""

    def __init__(self, directory: Path, archive: Archive, *, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.directory = Path(directory)
        self.archive = archive
        self.max_file_bytes = max_file_bytes
        self._skipped: dict[str, Stamp] = {}  # logged once per version of a file

    def sync(self) -> SyncResult:
        """Index every new or changed post-mortem and forget those removed."""
        result = SyncResult()
        on_disk = dict(self._post_mortems())
        known = self.archive.stamps()
        for name, stamp in sorted(on_disk.items()):
            if known.get(name) != stamp and self._skipped.get(name) != stamp:
                self._index(name, stamp, result)
        for name in sorted(set(known) - set(on_disk)):
            self._skipped.pop(name, None)
            self.archive.remove(name)
            result.removed.append(name)
        return result

    def index_file(self, name: str) -> None:
        """Index one file of the folder now (a post-mortem just written), if it changed."""
        path = self.directory / name
        if path.parent != self.directory or not _is_post_mortem(path):
            return
        try:
            stamp = _stamp(path)
        except OSError:
            return
        if self.archive.stamps().get(name) != stamp:
            self._index(name, stamp, SyncResult())

    async def watch(self, interval: float) -> None:
        """Sync now and every `interval` seconds (polling the files' times and sizes) until cancelled."""
        while True:
            try:
                result = await asyncio.to_thread(self.sync)
                if result.indexed or result.removed:
                    log.info("post-mortem archive updated", extra={"indexed": len(result.indexed),
                                                                    "removed": len(result.removed)})
            except Exception:  # a folder or database hiccup is no reason to stop watching
                log.warning("post-mortem archive not updated", exc_info=True)
            await asyncio.sleep(interval)

    def _post_mortems(self):
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if _is_post_mortem(path):
                try:
                    yield path.name, _stamp(path)
                except OSError:
                    continue

    def _index(self, name: str, stamp: Stamp, result: SyncResult) -> None:
        try:
            text = read_markdown(self.directory / name, limit=self.max_file_bytes)
        except (Unreadable, OSError) as exc:
            reason = str(exc) if isinstance(exc, Unreadable) else type(exc).__name__
            result.skipped[name] = reason
            if self._skipped.get(name) != stamp:
                self._skipped[name] = stamp
                log.warning("post-mortem not indexed: %s", reason, extra={"file": name})
            self.archive.remove(name)
            return
        self.archive.put(name, read_postmortem(name, text), stamp)
        result.indexed.append(name)


def import_folder(source: Path, directory: Path, *, max_file_bytes: int = MAX_FILE_BYTES) -> dict[str, str]:
    """Copy the post-mortems of `source` into `directory`, never overwriting; file -> what became of it."""
    outcome: dict[str, str] = {}
    directory.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(source).glob("*.md")):
        if not path.is_file() or path.name == INDEX_FILE:
            continue
        try:
            text = read_markdown(path, limit=max_file_bytes)
        except (Unreadable, OSError) as exc:
            outcome[path.name] = f"skipped: {exc}"
            continue
        name = _free_name(directory, path.name, text)
        if name is None:
            outcome[path.name] = "already there"
            continue
        replace_file(directory / name, text)
        outcome[path.name] = f"copied to {name}"
    return outcome


def _free_name(directory: Path, name: str, text: str) -> str | None:
    """`name` if free (made safe), else with a number; None when a file there already holds this text."""
    stem = name.removesuffix(".md")
    if not _SAFE_NAME.match(name):
        stem = re.sub(r"[^\w.-]+", "-", stem)[:140].strip(".-") or "post-mortem"
    for attempt in range(1, 1000):
        candidate = f"{stem}.md" if attempt == 1 else f"{stem}-{attempt}.md"
        target = directory / candidate
        if not target.exists():
            return candidate
        try:
            if target.read_text(encoding="utf-8") == text:
                return None
        except (OSError, UnicodeDecodeError):
            continue
    raise FileExistsError(f"no free name for {name} in {directory}")


def _is_post_mortem(path: Path) -> bool:
    return path.suffix == ".md" and path.name != INDEX_FILE and not path.name.startswith(".") and path.is_file()


def _stamp(path: Path) -> Stamp:
    info = path.stat()
    return Stamp(info.st_mtime_ns, info.st_size)
