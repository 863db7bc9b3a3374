"""`incident-copilot import-postmortems` and `similar`, as a new user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.cli import main
from receiver.cli.evaluate import print_recall

RECALL_SET = Path(__file__).parents[2] / "fixtures" / "recall" / "postmortems"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("POSTMORTEM_DIR", str(tmp_path / "post-mortems"))
    return tmp_path / "post-mortems"


def test_import_then_similar_by_incident_id(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-postmortems", str(RECALL_SET)]) == 0
    out = capsys.readouterr().out
    assert "2026-10-02-payments-refusing-connections.md: copied to 2026-10-02-payments-refusing-connections.md" in out
    assert "archive: 12 indexed now, 12 post-mortems in all" in out
    assert len(list(env.glob("*.md"))) == 12

    assert main(["similar", "inc-20260814-3f2a9c10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Similar to inc-20260814-3f2a9c10 (api, sH, 504), among 12 archived post-mortems:\n")
    assert "2026-08-14-api-deploy-timeouts" not in out  # never itself


def test_similar_by_file_ranks_the_archive_and_says_why(env: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    main(["import-postmortems", str(RECALL_SET)])
    capsys.readouterr()
    new = tmp_path / "today.md"
    new.write_text("# billing3 refuses connections\n\nbilling answers 503, SC termination states on billing3.\n"
                   "Verbindungen abgelehnt.\n")

    assert main(["similar", str(new), "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("2026-09-11  2026-09-11-abrechnung-verbindungen-abgelehnt.md")
    assert lines[3] == "       why: shared terms: billing3, billing, verbindungen, abgelehnt"
    assert len([line for line in lines if line[:4].strip().rstrip(".").isdigit()]) == 2
    assert any(line.startswith("       mitigated: \u201cbilling3 im HAProxy in den Wartungsmodus") for line in lines)


def test_similar_of_nothing_known_says_so(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["similar", "inc-20990101-00000000"]) == 1
    assert "no post-mortem of inc-20990101-00000000" in capsys.readouterr().err


def test_eval_reports_recall_at_1_and_3_and_says_where_the_set_is_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert print_recall(RECALL_SET.parent) is True
    out = capsys.readouterr().out
    assert out.rstrip().endswith(
        "recall@1 1.00, recall@3 1.00 over 12 cases; nothing recalled in 1 of 1 no-match case")
    assert print_recall(tmp_path) is True
    assert "recall set not found" in capsys.readouterr().out
