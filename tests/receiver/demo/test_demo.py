"""`incident-copilot demo`, the README's first command, end to end: twice, as a newcomer would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from receiver.demo import PAST_POSTMORTEM, run_demo
from receiver.demo import alerting as demo_alerting


def written_postmortems(data_dir: Path) -> list[str]:
    """The post-mortems the demo's incidents got: not the index, nor the past one the demo brings along."""
    return [p.read_text() for p in (data_dir / "post-mortems").glob("*.md")
            if p.name not in ("README.md", PAST_POSTMORTEM)]


@pytest.mark.integration
async def test_without_prometheus_the_demo_posts_the_alert_itself_and_runs_again(tmp_path, capsys):
    for _ in range(2):
        assert await run_demo(tmp_path / "demo", alerting=False) == 0
        postmortems = written_postmortems(tmp_path / "demo")
        assert len(postmortems) == 1  # each run starts from a clean slate
        text = postmortems[0]
        assert "backend `api`" in text and "sH" in text and "**Status:** Resolved" in text
        out = capsys.readouterr().out
        assert "posted as Alertmanager would post it" in out
        assert "post-mortem" in out and "api:" in out and "to resolve" in out
        # The last time, written by hand, is recalled with what fixed it: in the summary and the post-mortem.
        assert f"similar    2026-10-14 {PAST_POSTMORTEM}" in out
        assert "mitigated then: “Rolled back api to the previous release" in out
        similar = text.split("## Similar incidents", 1)[1].split("\n## ", 1)[0]
        assert PAST_POSTMORTEM in similar and "Rolled back api to the previous release" in similar


@pytest.mark.e2e
async def test_the_alert_goes_through_real_prometheus_and_alertmanager_and_the_demo_runs_again(tmp_path, capsys):
    if why := demo_alerting.unavailable():
        pytest.skip(why)
    for _ in range(2):
        assert await run_demo(tmp_path / "demo") == 0
        out = capsys.readouterr().out
        # Each step shows as it happens: Prometheus fires, Alertmanager calls the webhook, then resolves.
        assert re.search(r"Prometheus: BackendLatencyHigh on api is firing", out), out
        # Opened by whichever alert of api Alertmanager sent first; the other joins it (the post-mortem below).
        assert re.search(r"Alertmanager -> POST /alerts: incident \S+ opened \(", out), out
        assert re.search(r"Alertmanager -> POST /alerts: incident \S+ resolved", out), out
        [text] = written_postmortems(tmp_path / "demo")  # one failure, one incident
        assert "| BackendLatencyHigh | resolved |" in text and "| Backend5xxRateHigh | resolved |" in text
        heading = text.splitlines()[0]
        assert heading.startswith("# Incident ") and "latency above" in heading and "5xx rate above" in heading
        assert "**Status:** Resolved" in text and "backend `api`" in text
        # The findings agree with the alerts: both signals critical, as they were since the onset.
        assert "### Latency: critical" in text and "### Errors: critical" in text
        assert "Signals changed in the logs" in text and "| Before | Since the onset |" in text
        assert processes_mentioning(tmp_path) == []  # Prometheus and Alertmanager stopped with the demo


def processes_mentioning(path: Path) -> list[str]:
    """Command lines of the running processes that name `path`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if any(str(path).encode() in arg for arg in argv):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found
