"""The `stack` fixture; a failed test's report carries where the logs are and the tail of each."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .stack import Stack, missing_programs, new_log_dir

STACK = pytest.StashKey[Stack]()
FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report = yield
    stack = item.stash.get(STACK, None)
    if stack is not None and report.failed:
        item.stash[FAILED] = True  # the fixture keeps the logs
        report.sections.append(("end-to-end stack", stack.log_report()))
    return report


@pytest.fixture
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """Every program started and answering; all stopped afterwards, whatever happened."""
    missing = missing_programs()
    if missing:
        pytest.skip(f"not on PATH: {', '.join(missing)}")
    started = Stack(tmp_path, new_log_dir(request.node.name))
    request.node.stash[STACK] = started
    try:
        try:
            await started.start()
        except BaseException:
            request.node.stash[FAILED] = True
            raise
        yield started
    finally:
        await started.stop()
        if request.node.stash.get(FAILED, False):
            print(f"end-to-end logs kept in {started.log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(started.log_dir, ignore_errors=True)
