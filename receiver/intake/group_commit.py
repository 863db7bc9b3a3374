"""Group commit: small batches that arrive within a moment of each other are written to Redis together.

A single-entry `POST /logs` costs one Redis script call for one line: at a thousand such
requests a second the round trips and the encoding of each call, not the parsing, are
what the service spends its time on. A small batch therefore waits up to `window_seconds`
(a millisecond or two) for others; then one store write carries all of them. Each
request is answered only once that write has succeeded, and a write that fails fails
every request of its group with the same error, so nothing is acknowledged and lost.
Large batches gain nothing from waiting and are written on their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ingestion import Batch

# Writes one batch to the store; raises as the store did.
Write = Callable[[Batch], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GroupCommitPolicy:
    window_seconds: float = 0.001  # how long the first small batch of a group waits for others
    small_lines: int = 100  # batches of at most this many lines may join a group...
    max_lines: int = 2_000  # ...and a group this large is written at once

    @property
    def enabled(self) -> bool:
        return self.window_seconds > 0

    def joins(self, lines: int) -> bool:
        """Whether a batch of `lines` lines waits for company rather than being written alone."""
        return self.enabled and 0 < lines <= self.small_lines

    def full(self, lines: int) -> bool:
        return lines >= self.max_lines


def combine(batches: Sequence[Batch]) -> Batch:
    """One batch holding every line of `batches`, which are left as they were."""
    if len(batches) == 1:
        return batches[0]
    whole = Batch()
    for batch in batches:
        whole.absorb(batch)
    return whole


@dataclass(slots=True)
class _Group:
    batches: list[Batch] = field(default_factory=list)
    lines: int = 0
    done: asyncio.Future | None = None


class GroupCommit:
    """One per process and source of lines: collects small batches and writes each group with one call of `write`."""

    def __init__(self, write: Write, policy: GroupCommitPolicy = GroupCommitPolicy()) -> None:
        self._write = write
        self.policy = policy
        self._open: _Group | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task] = set()

    async def write(self, batch: Batch, lines: int) -> None:
        """Write `batch` (`lines` long) alone or with others; returns once it is in Redis, raises as the write did."""
        if not self.policy.joins(lines):
            await self._write(batch)
            return
        group = self._open
        if group is None:
            group = self._open = _Group(done=asyncio.get_running_loop().create_future())
            self._timer = asyncio.get_running_loop().call_later(self.policy.window_seconds, self._close_open)
        group.batches.append(batch)
        group.lines += lines
        done = group.done
        if self.policy.full(group.lines):
            self._close_open()
        # Shielded: a client that hangs up must not cancel the write of everyone else's lines.
        await asyncio.shield(done)

    def _close_open(self) -> None:
        group, self._open = self._open, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if group is None:
            return
        task = asyncio.get_running_loop().create_task(self._flush(group))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, group: _Group) -> None:
        assert group.done is not None
        try:
            await self._write(combine(group.batches))
        except BaseException as exc:  # every request of the group learns of it, none is answered 2xx
            if not group.done.done():
                group.done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("write cancelled"))
            group.done.exception()  # retrieved here too: a group whose requests all left must not warn
            if not isinstance(exc, Exception):
                raise
        else:
            if not group.done.done():
                group.done.set_result(None)

    async def close(self) -> None:
        """Write the group still open and wait for the writes under way."""
        self._close_open()
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
