"""`incident-copilot demo`, the README's first command, end to end: twice, as a newcomer would."""

from __future__ import annotations

import pytest

from receiver.demo import run_demo

pytestmark = pytest.mark.integration


async def test_the_demo_writes_a_post_mortem_naming_the_backend_and_runs_again(tmp_path, capsys):
    for _ in range(2):
        assert await run_demo(tmp_path / "demo") == 0
        written = list((tmp_path / "demo" / "post-mortems").glob("*.md"))
        postmortems = [p for p in written if p.name != "README.md"]
        assert len(postmortems) == 1  # each run starts from a clean slate
        text = postmortems[0].read_text()
        assert "api" in text and "sH" in text and "Resolved" in text
        out = capsys.readouterr().out
        assert "post-mortem" in out and "api:" in out and "to resolve" in out
