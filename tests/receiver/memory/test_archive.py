"""The archive: POSTMORTEM_DIR indexed without being touched, bad files skipped, recall measured on the set."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from agents import Fingerprint, RecallProbe, query_terms
from receiver.memory import Archive, PostmortemLibrary, evaluate_recall, format_recall, import_folder

RECALL_SET = Path(__file__).parents[2] / "fixtures" / "recall"
PAYMENTS = "2026-10-02-payments-refusing-connections.md"
API = "2026-08-14-api-deploy-timeouts-3f2a9c10.md"
REFUSING = Fingerprint(backend="payments", signals={"errors": "critical"}, causes=["connection_refused"],
                       status_codes=["503"], termination_states=["SC"], servers=["payments2"], hour=9)


def probe(fingerprint: Fingerprint = REFUSING, **kwargs) -> RecallProbe:
    return RecallProbe(fingerprint=fingerprint, terms=query_terms(fingerprint, ["SC connections refused"]), **kwargs)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "post-mortems"
    shutil.copytree(RECALL_SET / "postmortems", directory)
    return directory


@pytest.fixture
def library(tmp_path: Path, folder: Path):
    archive = Archive(tmp_path / "var" / "memory.sqlite3")
    yield PostmortemLibrary(folder, archive)
    archive.close()


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}


def test_recall_set_recall_at_1_and_3_and_the_case_where_nothing_matches() -> None:
    evaluation = evaluate_recall(RECALL_SET)
    assert evaluation.recall_at(1) >= 0.9  # measured: 1.00 (12 of 12)
    assert evaluation.recall_at(3) == 1.0
    assert evaluation.no_match_correct == (1, 1)
    assert "recall@1 1.00, recall@3 1.00 over 12 cases; nothing recalled in 1 of 1 no-match case" in format_recall(
        evaluation)


def test_every_post_mortem_is_indexed_and_none_is_modified(library: PostmortemLibrary, folder: Path) -> None:
    (folder / "README.md").write_text("# Post-mortems\n\n| payments | SC |\n")
    before = snapshot(folder)
    result = library.sync()
    assert len(result.indexed) == 12 and "README.md" not in result.indexed
    assert snapshot(folder) == before
    assert library.sync().indexed == []  # nothing changed, nothing read again
    [first, *_] = library.archive.recall_now(probe())
    assert first.file == PAYMENTS and first.mitigation.startswith("Drained payments2")


def test_an_edited_file_is_read_again_and_a_removed_one_forgotten(library: PostmortemLibrary, folder: Path) -> None:
    library.sync()
    path = folder / "2026-07-03-checkout-queue-full-aa11bb22.md"
    path.write_text(path.read_text().replace("- **How it was mitigated:** _to be filled in by the team._",
                                             "- **How it was mitigated:** added two checkout servers."))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    (folder / PAYMENTS).unlink()
    result = library.sync()
    assert result.indexed == [path.name] and result.removed == [PAYMENTS]
    queued = Fingerprint(backend="checkout", signals={"saturation": "critical"}, causes=["queue_timeout"],
                         termination_states=["sQ"])
    assert library.archive.recall_now(probe(queued))[0].mitigation == "added two checkout servers."
    assert all(s.file != PAYMENTS for s in library.archive.recall_now(probe()))


def test_malformed_huge_and_binary_files_are_skipped_with_a_log_line(
        tmp_path: Path, folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    (folder / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00payments SC")
    (folder / "latin1.md").write_bytes("# Panne: connexion refusée\n".encode("latin-1"))
    (folder / "huge.md").write_text("# payments SC\n" + "x" * 5000)
    (folder / "empty.md").write_text("")
    (folder / "headings-only.md").write_text("#\n##\n# \n=====\n-----\n```\n")
    archive = Archive(tmp_path / "memory.sqlite3")
    library = PostmortemLibrary(folder, archive, max_file_bytes=4096)
    with caplog.at_level(logging.WARNING):
        result = library.sync()
        library.sync()
    assert result.skipped == {"binary.md": "binary (holds NUL bytes)", "huge.md": "larger than 4 KiB",
                              "latin1.md": "not UTF-8 (byte 24)"}
    skipped = [r for r in caplog.records if r.getMessage().startswith("post-mortem not indexed")]
    assert sorted(r.file for r in skipped) == ["binary.md", "huge.md", "latin1.md"]  # once each
    assert {"empty.md", "headings-only.md"} <= set(result.indexed)
    assert archive.recall_now(probe())[0].file == PAYMENTS
    archive.close()


def test_the_incident_itself_and_its_earlier_run_are_never_similar(library: PostmortemLibrary) -> None:
    library.sync()
    timeouts = Fingerprint.model_validate_json(
        '{"backend":"api","signals":{"latency":"critical","errors":"critical"},"causes":["server_timeout"],'
        '"status_codes":["504"],"termination_states":["sH"]}')
    assert library.archive.recall_now(probe(timeouts))[0].incident_id == "inc-20260814-3f2a9c10"
    found = library.archive.recall_now(probe(timeouts, exclude=["inc-20260814-3f2a9c10"]))
    assert all(s.file != API for s in found)


def test_two_processes_share_one_archive(tmp_path: Path, folder: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    first, second = Archive(path), Archive(path)
    PostmortemLibrary(folder, first).sync()
    assert PostmortemLibrary(folder, second).sync().indexed == []  # the other's work is seen, not redone
    assert second.recall_now(probe())[0].file == PAYMENTS
    assert second.count() == 12 and second.size_bytes() > 0
    first.close()
    second.close()


def test_import_copies_a_folder_in_and_never_overwrites(tmp_path: Path, folder: Path) -> None:
    target = tmp_path / "docs"
    target.mkdir()
    (target / PAYMENTS).write_text("# Our own payments notes\n")
    (folder / "bad name (copy).md").write_text("# Copy\n\n## Fix\nRestarted.\n")
    (folder / "binary.md").write_bytes(b"\x00\x01")
    before = snapshot(folder)
    outcome = import_folder(folder, target)
    assert outcome[PAYMENTS] == "copied to 2026-10-02-payments-refusing-connections-2.md"
    assert outcome["bad name (copy).md"] == "copied to bad-name-copy.md"
    assert outcome["binary.md"].startswith("skipped: binary")
    assert (target / PAYMENTS).read_text() == "# Our own payments notes\n"
    assert snapshot(folder) == before
    assert set(import_folder(folder, target).values()) >= {"already there"}
