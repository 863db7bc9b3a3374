"""The client side of `incident-copilot ingest`: a file sent to `POST /logs` in batches."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import IO

import aiohttp

from ..retry import retrying


def _batches(stream: IO[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in stream:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _content_type(first: bytes) -> str:
    return "application/x-ndjson" if first.lstrip().startswith(b"{") else "text/plain"


class Progress:
    def __init__(self, total_bytes: int | None, quiet: bool) -> None:
        self.total = total_bytes
        self.quiet = quiet or not sys.stderr.isatty()
        self.started = time.monotonic()
        self.lines = self.accepted = self.rejected = self.bytes = 0

    def update(self, lines: int, size: int, answer: dict) -> None:
        self.lines += lines
        self.bytes += size
        self.accepted += answer.get("accepted", 0)
        self.rejected += answer.get("rejected", 0)
        if not self.quiet:
            done = f" {100 * self.bytes / self.total:5.1f}%" if self.total else ""
            sys.stderr.write(f"\r{self.lines:>12,} lines{done}  {self.rate():>10,.0f} lines/s")
            sys.stderr.flush()

    def rate(self) -> float:
        return self.lines / max(time.monotonic() - self.started, 1e-9)

    def summary(self) -> str:
        return (f"{self.lines:,} lines: {self.accepted:,} accepted, {self.rejected:,} rejected "
                f"in {time.monotonic() - self.started:.1f} s ({self.rate():,.0f} lines/s)")


# A service restarting, or Redis behind it, is waited out: 8 tries over about half a minute.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
RETRY_ATTEMPTS = 8


class _Unavailable(Exception):
    """The service answered 5xx: worth sending the same batch again."""


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, kind: str) -> dict:
    send = retrying((aiohttp.ClientConnectionError, _Unavailable), what=f"POST {url}", first=RETRY_FIRST_SECONDS,
                    cap=RETRY_MAX_SECONDS, attempts=RETRY_ATTEMPTS)
    try:
        return await send(_post_once, session, url, body, kind)
    except aiohttp.ClientConnectionError as exc:
        raise SystemExit(f"cannot reach {url}: {exc}") from None
    except _Unavailable as exc:
        raise SystemExit(f"{url} kept answering {exc}; giving up") from None


async def _post_once(session: aiohttp.ClientSession, url: str, body: bytes, kind: str) -> dict:
    async with session.post(url, data=body, headers={"Content-Type": kind}) as resp:
        if resp.status >= 500:
            raise _Unavailable(resp.status)
        answer = await resp.json(content_type=None)
        if resp.status > 400:
            raise SystemExit(f"ingest refused ({resp.status}): {answer}")
        return answer


async def ingest_file(path: str, *, url: str, token: str | None, batch_lines: int, quiet: bool = False) -> int:
    import os

    stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")
    total = None if path == "-" else os.path.getsize(path)
    progress = Progress(total, quiet)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as session:
            kind = None
            for batch in _batches(stream, batch_lines):
                kind = kind or _content_type(batch[0])
                body = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in batch)
                answer = await _post(session, url.rstrip("/") + "/logs", body, kind)
                progress.update(len(batch), len(body), answer)
                for error in answer.get("errors", [])[:3] if answer.get("rejected") else []:
                    if not progress.quiet:
                        sys.stderr.write(f"\n  line {progress.lines - len(batch) + error['line']}: {error['reason']}")
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if not progress.quiet:
        sys.stderr.write("\n")
    print(progress.summary())
    return 0 if progress.accepted or not progress.lines else 1
