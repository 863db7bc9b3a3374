"""Post-mortem drafts in markdown, after the SRE book's template, rendered from an incident with Jinja.

Every string that came from an alert, a log or a model goes through a markdown filter (`md`,
`code`, `link`), so it reads as text and never as markup. Files are written atomically, and a
file the team has edited since it was written is left alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import jinja2
from agents import Evidence, Report

from ..resources import replace_file
from . import lifecycle
from .model import Incident, IncidentSummary
from .naming import is_postmortem_file

log = logging.getLogger(__name__)

INDEX_FILE = "README.md"
POSTMORTEM_TEMPLATE = "postmortem.md.j2"
INDEX_TEMPLATE = "postmortems-index.md.j2"
_MARKER = "<!-- incident-copilot draft sha256:{} -->"
_MARKER_RE = re.compile(r"\n<!-- incident-copilot draft sha256:([0-9a-f]{64}) -->\n?\Z")
_MINUTES_PER_30_DAYS = 30 * 24 * 60

# Markdown that could turn text into markup, and control characters that could hide it.
_INLINE = re.compile(r"([\\`*_\[\]|~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_BLOCK_MARK = re.compile(r"^([#+=-])")
_ORDERED_ITEM = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")

_SIGNAL_NAMES = {
    "latency_p95_ms": "Latency P95",
    "latency_p99_ms": "Latency P99",
    "route_latency_p95_ms": "Route latency P95",
    "error_rate_5xx_pct": "5xx error rate",
    "error_rate_4xx_pct": "4xx error rate",
    "requests_per_minute": "Traffic",
    "baseline_requests_per_minute": "Traffic baseline",
    "queued_requests_pct": "Queued requests",
    "requests": "Requests",
    "mean_queue_ms": "Mean time in queue (Tw)",
    "mean_response_ms": "Mean response time (Tr)",
    "redis_memory_used_pct": "Redis memory used",
    "redis_rejected_connections": "Redis rejected connections",
}


# Filters ---------------------------------------------------------------------------------------

def markdown_text(value: object, multiline: bool = False) -> str:
    """Untrusted text as literal markdown; newlines become `<br>` (table-safe) unless `multiline`."""
    text = _CONTROL.sub("", "" if value is None else str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE.sub(r"\\\1", text)
    lines = [_block_safe(line.strip()) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    if not multiline:
        return "<br>".join(line for line in lines if line)
    return "\n".join(lines).strip("\n")


def _block_safe(line: str) -> str:
    """A line that cannot open a heading, list, rule or setext underline (leading spaces are already gone)."""
    return _ORDERED_ITEM.sub(r"\1\\\2", _BLOCK_MARK.sub(r"\\\1", line))


def markdown_code(value: object, table: bool = True) -> str:
    """Untrusted text as an inline code span; pipes escaped for tables (GFM reads `\\|` inside code too)."""
    text = " ".join(_CONTROL.sub("", "" if value is None else str(value)).split())
    if not text:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    if table:
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}"


def markdown_link(text: object, url: object) -> str:
    """`[text](url)` for an http(s) URL; the text alone for anything else (javascript:, data:, paths)."""
    label = markdown_text(text)
    address = "" if url is None else str(url).strip()
    parts = urlsplit(address)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return label
    return f"[{label}]({quote(address, safe=':/?#@!$&*+,;=%~-._')})"


def format_time(value: datetime | None, style: str = "seconds") -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M UTC" if style == "minutes" else "%Y-%m-%d %H:%M:%S UTC")


def format_duration(value: timedelta | None) -> str:
    """Minutes and seconds as people say them: "38 s", "4 min 12 s", "2 h 5 min"."""
    if value is None:
        return "n/a"
    seconds = max(0, round(value.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{_tidy(value / 1000)} s" if value >= 1000 else f"{value:.0f} ms"
    if unit == "%":
        return f"{_tidy(value)} %"
    number = f"{value:,.0f}" if abs(value) >= 100 else _tidy(value)
    return f"{number} {unit}".strip()


def format_multiple(value: float | None) -> str:
    """A rate against what is allowed: 234.2 -> "234×", 2.34 -> "2.3×"."""
    return "n/a" if value is None else f"{_tidy(value)}×"


def _tidy(value: float) -> str:
    """Two significant figures below 10, whole numbers above: 23.4 -> "23", 5.0 -> "5", 0.052 -> "0.052"."""
    if abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}".removesuffix(".0")


# Impact ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SignalRow:
    signal: str
    scope: str
    value: str
    threshold: str
    window_minutes: int
    breached: bool | None


@dataclass(frozen=True, slots=True)
class Impact:
    rows: list[SignalRow]
    window_minutes: int
    requests: int | None
    failed_requests: int | None
    error_rate_pct: float | None
    slo_target_pct: float
    burn_rate: float | None
    budget_burned_pct: float | None


def signal_rows(report: Report) -> list[SignalRow]:
    """Every number the specialists measured, once, with its threshold."""
    rows: list[SignalRow] = []
    seen: set[tuple[str, str, int]] = set()
    for finding in report.findings:
        for e in finding.evidence:
            key = (e.metric, e.scope or "all", e.window_minutes)
            if key in seen:
                continue
            seen.add(key)
            breached = None if e.value is None or e.threshold is None else e.value > e.threshold
            rows.append(SignalRow(
                signal=_SIGNAL_NAMES.get(e.metric, e.metric), scope=e.scope or "all",
                value=format_value(e.value, e.unit),
                threshold="—" if e.threshold is None else format_value(e.threshold, e.unit),
                window_minutes=e.window_minutes, breached=breached,
            ))
    return rows


def impact(report: Report, *, slo_target_pct: float) -> Impact:
    """Requests and failures in the analysed window and the share of a 30-day error budget they used."""
    evidence = [e for f in report.findings for e in f.evidence]
    window = report.window_minutes
    error_rate = _first(evidence, "error_rate_5xx_pct", window)
    rate = _first(evidence, "requests_per_minute", window)
    baseline = _first(evidence, "baseline_requests_per_minute", None)
    counted = _first(evidence, "requests", window)
    if counted is not None and counted.window_minutes == window:
        requests = round(counted.value)
    else:  # a report without the count: estimate it from the recent rate
        requests = round(rate.value * window) if rate is not None and rate.value is not None else None
    failed = (round(requests * error_rate.value / 100)
              if requests is not None and error_rate is not None and error_rate.value is not None else None)
    allowed_pct = 100.0 - slo_target_pct
    burn = error_rate.value / allowed_pct if error_rate is not None and error_rate.value is not None else None
    budget = None
    usual = baseline.value if baseline is not None and baseline.value else (rate.value if rate is not None else None)
    if failed is not None and usual:
        budget_requests = usual * _MINUTES_PER_30_DAYS * allowed_pct / 100
        budget = failed / budget_requests * 100 if budget_requests else None
    return Impact(rows=signal_rows(report), window_minutes=window, requests=requests, failed_requests=failed,
                  error_rate_pct=error_rate.value if error_rate is not None else None,
                  slo_target_pct=slo_target_pct, burn_rate=burn, budget_burned_pct=budget)


def _first(evidence: list[Evidence], metric: str, window: int | None) -> Evidence | None:
    """The figure for the analysed window if there is one, else any (the traffic rate covers minutes)."""
    matching = [e for e in evidence if e.metric == metric and e.value is not None]
    exact = [e for e in matching if window is not None and e.window_minutes == window]
    return (exact or matching or [None])[0]


# Rendering and files ---------------------------------------------------------------------------

def template_environment(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        # Markdown, not HTML: the filters below escape for markdown; HTML templates would be escaped.
        autoescape=jinja2.select_autoescape(("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=markdown_text, code=markdown_code, link=markdown_link, time=format_time,
                       duration=format_duration, value=format_value,
                       multiple=format_multiple)
    return env


class UnsafePath(ValueError):
    """A post-mortem name that would leave the post-mortem directory."""


class PostmortemWriter:
    def __init__(self, directory: Path, *, templates: Path, slo_target_pct: float) -> None:
        self.directory = Path(directory)
        self.slo_target_pct = slo_target_pct
        self._env = template_environment(templates)
        self._index_lock = asyncio.Lock()
        self._index_queued = False

    def render(self, incident: Incident) -> str:
        report = incident.report
        body = self._env.get_template(POSTMORTEM_TEMPLATE).render(
            incident=incident, report=report, recheck=incident.recheck,
            impact=impact(report, slo_target_pct=self.slo_target_pct) if report is not None else None,
            slo_target_pct=self.slo_target_pct,
            timeline=sorted(incident.timeline, key=lambda e: e.at),
            runbooks=_runbooks(incident),
        )
        return _with_marker(body)

    def render_draft(self, report: Report) -> dict[str, str]:
        """A post-mortem draft of an analysis made on request; nothing is written."""
        incident = lifecycle.analysed_by_hand(report)
        return {"file_name": incident.postmortem_file, "markdown": self.render(incident)}

    def render_index(self, incidents: list[IncidentSummary]) -> str:
        return self._env.get_template(INDEX_TEMPLATE).render(incidents=incidents)

    def path_for(self, file_name: str) -> Path:
        """The file's path inside the directory; raises UnsafePath for a name that is not a plain file name."""
        root = self.directory.resolve()
        if file_name != INDEX_FILE and not is_postmortem_file(file_name):
            raise UnsafePath(f"not a post-mortem file name: {file_name!r}")
        path = (root / file_name).resolve()
        if path.parent != root:
            raise UnsafePath(f"{file_name!r} is outside {root}")
        return path

    def read(self, incident: Incident) -> str | None:
        """The post-mortem as it is on disk (the team may have completed it), or None."""
        try:
            return self.path_for(incident.postmortem_file).read_text(encoding="utf-8")
        except (FileNotFoundError, UnsafePath):
            return None

    async def write(self, incident: Incident) -> Path | None:
        """Render and write atomically; None when the file was edited by hand and is kept as it is."""
        path = self.path_for(incident.postmortem_file)
        text = self.render(incident)
        written = await asyncio.to_thread(_replace_unless_edited, path, text)
        if not written:
            log.info("post-mortem edited by hand; not overwritten", extra={"incident": incident.id, "path": str(path)})
            return None
        return path

    async def write_index(self, load: Callable[[], Awaitable[list[IncidentSummary]]]) -> None:
        """Rewrite README.md; a call made while another waits to run is folded into that one."""
        if self._index_queued:
            return
        self._index_queued = True
        async with self._index_lock:
            self._index_queued = False
            incidents = await load()
            text = self.render_index(incidents)
            await asyncio.to_thread(replace_file, self.path_for(INDEX_FILE), text)


def _runbooks(incident: Incident) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for alert in incident.alerts:
        url = alert.annotations.get("runbook_url", "").strip()
        if url and url not in seen:
            seen[url] = alert.alertname or "runbook"
    return [(name, url) for url, name in seen.items()]


def _with_marker(body: str) -> str:
    body = body.rstrip("\n") + "\n"
    return body + "\n" + _MARKER.format(hashlib.sha256(body.encode()).hexdigest()) + "\n"


def is_untouched(text: str) -> bool:
    """True when a file still holds exactly what was generated (its marker matches its body)."""
    match = _MARKER_RE.search(text)
    if match is None:
        return False
    body = text[: match.start()]
    return hashlib.sha256(body.encode()).hexdigest() == match.group(1)


def _replace_unless_edited(path: Path, text: str) -> bool:
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if current is not None and not is_untouched(current):
        return False
    if current != text:
        replace_file(path, text)
    return True
