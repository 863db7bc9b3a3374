"""A report as plain text for a terminal."""

from __future__ import annotations

import re
import textwrap

from .report import Evidence, Finding, Provenance, Report

_WIDTH = 100
# Paths and backend names come from logs: escape control characters so they cannot drive the terminal.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_MARK = {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL"}


def format_report(report: Report, *, width: int = _WIDTH) -> str:
    """The report as an on-call engineer reads it: verdict, diagnosis, actions, then each signal's numbers."""
    lines = [
        f"{_MARK[report.overall_severity.value]}  {report.title}",
        f"Window: {report.window_minutes} min, {report.window_start:%Y-%m-%d %H:%M} to {report.window_end:%H:%M} UTC"
        f"  |  backend: {report.backend or 'all'}  |  {_provenance(report.synthesis)}",
        "",
        "Diagnosis",
        *_wrap(report.diagnosis, width, "  "),
        "",
        "Recommendations",
    ]
    for number, action in enumerate(report.recommendations, 1):
        lines += _wrap(action, width, f"  {number}. ", "     ")
    lines.append("")
    lines.append("Findings")
    for finding in report.findings:
        lines += _finding(finding, width)
    dropped = [(step, claim) for step, p in _steps(report) for claim in p.dropped_claims]
    if dropped:
        lines.append("Model claims not used")
        for step, claim in dropped:
            lines += _wrap(f"{step}: {claim}", width, "  - ", "    ")
        lines.append("")
    tokens = report.tokens
    cached = (f", {tokens.cache_creation_input_tokens} cache writes, {tokens.cache_read_input_tokens} cache reads"
              if tokens.cache_creation_input_tokens or tokens.cache_read_input_tokens else "")
    cost = f"; ${report.cost_usd:.4f}" if report.cost_usd else ""
    lines.append(
        f"Analysed in {report.duration_ms / 1000:.1f} s; model tokens: {tokens.input_tokens} in, "
        f"{tokens.output_tokens} out{cached}{cost}."
    )
    return _printable("\n".join(lines)) + "\n"


def _steps(report: Report) -> list[tuple[str, Provenance]]:
    return [*((f.specialist, f.provenance) for f in report.findings), ("synthesis", report.synthesis)]


def _finding(finding: Finding, width: int) -> list[str]:
    head = f"  [{_MARK[finding.severity.value]}] {finding.specialist}: "
    lines = _wrap(finding.summary, width, head, " " * 6)
    lines += _wrap(finding.details, width, " " * 6)
    for item in finding.evidence:
        lines.append(f"      - {_evidence(item)}")
    if finding.disagreement:
        lines += _wrap(f"Disagreement: {finding.disagreement}", width, " " * 6)
    lines.append(f"      ({_provenance(finding.provenance)})")
    lines.append("")
    return lines


def _evidence(e: Evidence) -> str:
    value = "n/a" if e.value is None else f"{e.value:g}"
    unit = f" {e.unit}" if e.unit else ""
    text = f"{e.metric} = {value}{unit}"
    if e.threshold is not None:
        text += f" (threshold {e.threshold:g})"
    source = f", from {e.tool_call}" if e.source == "tool" else ""
    return f"{text}  [{e.scope or 'all'}, {e.window_minutes} min{source}]"


def _provenance(p: Provenance) -> str:
    text = f"mode: {p.mode}"
    if p.model and p.mode == "llm":
        text += f" ({p.model}, {p.tool_rounds} tool rounds)"
    if p.fallback_reason:
        text += f", fell back: {p.fallback_reason}"
    return text


def _wrap(text: str, width: int, first: str, rest: str | None = None) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=first if rest is None else rest,
                         break_on_hyphens=False) or [first.rstrip()]


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
