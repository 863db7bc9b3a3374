"""From a request body to minute buckets and a per-line verdict. Pure: no Redis, clock injected."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import tzinfo

import orjson
from pydantic import ValidationError

from .bounds import check_record
from .buckets import MinuteBucket
from .entries import LogEntry, plain_record
from .httplog import parse_httplog_line
from .records import LogRecord, RejectedLine

MAX_REPORTED_ERRORS = 10


@dataclass(frozen=True, slots=True)
class LineError:
    line: int  # 1-based position in the batch
    reason: str


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """Timestamps a batch may carry: not older than the retention, not further ahead than the skew."""

    now: float
    retention_seconds: float
    skew_seconds: float

    def check(self, ts: float) -> None:
        if ts < self.now - self.retention_seconds:
            raise RejectedLine(
                f"timestamp is older than the retention ({int(self.retention_seconds // 60)} min)", "too_old"
            )
        if ts > self.now + self.skew_seconds:
            raise RejectedLine(
                f"timestamp is more than {int(self.skew_seconds)} s in the future", "too_new"
            )


@dataclass(slots=True)
class Batch:
    buckets: dict[int, MinuteBucket] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    errors: list[LineError] = field(default_factory=list)

    def add(self, record: LogRecord, bounds: TimeBounds) -> None:
        """Count the record in its minute, or raise `RejectedLine` for a date or number out of bounds."""
        bounds.check(record.ts)
        check_record(record)  # every format passes here, whatever its parser let through
        minute = int(record.ts // 60)
        bucket = self.buckets.get(minute)
        if bucket is None:
            bucket = self.buckets[minute] = MinuteBucket()
        bucket.add(record)
        self.accepted += 1

    def reject(self, line: int, error: RejectedLine) -> None:
        self.rejected += 1
        self.reasons[error.code] += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, error.reason))

    def absorb(self, other: "Batch") -> None:
        """Add `other`'s minutes and counts to this batch (not its error list): one write for both."""
        for minute, bucket in other.buckets.items():
            mine = self.buckets.get(minute)
            if mine is None:
                mine = self.buckets[minute] = MinuteBucket()
            mine.merge(bucket)
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.reasons.update(other.reasons)

    def answer(self) -> dict:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


def add_text_lines(batch: Batch, lines: Iterable[str], *, tz: tzinfo, bounds: TimeBounds, first: int = 1) -> None:
    """Raw HAProxy lines (bare or syslog-framed); blank lines are skipped, not rejected."""
    for number, line in enumerate(lines, first):
        if not line or line.isspace():
            continue
        try:
            batch.add(parse_httplog_line(line, tz), bounds)
        except RejectedLine as error:
            batch.reject(number, error)


def add_entries(batch: Batch, items: Iterable[object], *, bounds: TimeBounds, first: int = 1) -> None:
    """Already-decoded JSON values, each meant to be a log entry object."""
    for number, item in enumerate(items, first):
        try:
            batch.add(entry_record(item), bounds)
        except RejectedLine as error:
            batch.reject(number, error)


def add_ndjson_lines(batch: Batch, lines: Iterable[bytes], *, bounds: TimeBounds, first: int = 1) -> None:
    for number, line in enumerate(lines, first):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
            record = plain_record(item) if type(item) is dict else None
            if record is None:
                record = LogEntry.model_validate_json(line).to_record()
        except orjson.JSONDecodeError as error:
            batch.reject(number, RejectedLine(f"not valid JSON: {error}", "invalid_json"))
            continue
        except ValidationError as error:
            batch.reject(number, _ndjson_rejection(line, error))
            continue
        try:
            batch.add(record, bounds)
        except RejectedLine as error:
            batch.reject(number, error)


def _ndjson_rejection(line: bytes, error: ValidationError) -> RejectedLine:
    problems = error.errors(include_url=False)
    if problems and problems[0]["type"] == "json_invalid":
        return RejectedLine(f"not valid JSON: {problems[0]['msg']}", "invalid_json")
    if problems and problems[0]["type"] == "model_type":
        try:
            kind = type(orjson.loads(line)).__name__
        except orjson.JSONDecodeError:
            kind = "value"
        return RejectedLine(f"expected a JSON object, got {kind}", "invalid_entry")
    return RejectedLine(describe_validation_error(error), "invalid_entry")


def entry_record(item: object) -> LogRecord:
    if not isinstance(item, dict):
        raise RejectedLine(f"expected a JSON object, got {type(item).__name__}", "invalid_entry")
    record = plain_record(item)
    if record is not None:
        return record
    try:
        return LogEntry.model_validate(item).to_record()
    except ValidationError as error:
        raise RejectedLine(describe_validation_error(error), "invalid_entry") from None


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in problem["loc"]) or "entry"
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)
