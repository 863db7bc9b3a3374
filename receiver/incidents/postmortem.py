"""Post-mortem drafts in markdown, after the SRE book's template, rendered from an incident with Jinja.

Every value printed goes through a filter that escapes it (`md`, `code`, `link`, ...), so what
came from an alert, a log or a model reads as text and never as markup, shows its hidden
format characters, and is cut at a stated length; a whole document is kept under
`MAX_POSTMORTEM_BYTES`. Files are written atomically, and a file the team has edited since it
was written is left alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import jinja2
from agents import Evidence, Fingerprint, Report, fingerprint_comment

from ..resources import replace_file
from . import lifecycle
from .charts import ChartFile, is_chart_file
from .model import Incident, IncidentSummary, TimelineEntry
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
#
# Every `{{ ... }}` of the templates ends in one of the filters registered below
# (`test_every_template_output_is_escaped` reads the templates and fails on one that does not),
# and each of them returns text that has been through `markdown_text`, `markdown_code` or
# `markdown_link`: markup escaped, control characters dropped, format characters shown, and
# untrusted text cut at a stated length.

# The longest a post-mortem (or the index) may be, in UTF-8 bytes, the draft's marker included.
# Beyond it the document is cut at a line, with a line that says so.
MAX_POSTMORTEM_BYTES = 512 * 1024
# The most characters shown of one untrusted string: an annotation, a label, a line of the timeline.
TEXT_LIMIT = 2_000
# ... of a paragraph the model wrote (the agents already ask for at most 4,000).
MULTILINE_LIMIT = 8_000
# ... of a code span: a label pair, a fingerprint, a group key.
CODE_LIMIT = 500
# A longer URL is not linked: the link's words are shown alone.
URL_LIMIT = 2_048
_DOCUMENT_RESERVE = 1_024  # room for the cut line and the draft's marker

# Format characters (Unicode category Cf: bidi overrides and isolates, zero-width spaces and
# joiners, the BOM, tag characters) make a line display differently from what it holds. They
# are shown as `<U+202E>` rather than removed: a reader sees that they were there, and a line
# that began with one cannot become a heading or a list item once it is gone. A ZWJ between
# two emoji is kept: it is what draws 👩‍💻 as one picture; between letters it is shown.
_ZWJ = "\u200d"
_EMOJI_MODIFIERS = range(0x1F3FB, 0x1F400)
# `<U+XXXX>` is never an HTML tag (a tag name cannot contain `+`) nor an autolink (no `:`).
_SHOWN = "<U+{:04X}>"


def show_format_characters(text: str) -> str:
    """`text` with every format character (Cf) written as `<U+XXXX>`, but a ZWJ inside an emoji sequence."""
    if text.isascii():
        return text
    shown: list[str] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) != "Cf" or (char == _ZWJ and _joins_emoji(text, index)):
            shown.append(char)
        else:
            shown.append(_SHOWN.format(ord(char)))
    return "".join(shown)


def _joins_emoji(text: str, index: int) -> bool:
    return 0 < index < len(text) - 1 and _is_emoji(text[index - 1]) and _is_emoji(text[index + 1], after=True)


def _is_emoji(char: str, after: bool = False) -> bool:
    """Close enough for a ZWJ sequence: a symbol, or (before the joiner) a skin tone or emoji presentation."""
    if unicodedata.category(char) == "So":
        return True
    return not after and (char == "\ufe0f" or ord(char) in _EMOJI_MODIFIERS)


def _cut(value: object, limit: int) -> tuple[str, int]:
    """The text without control characters, at most `limit` characters of it, and how many were left out."""
    text = _CONTROL.sub("", "" if value is None else str(value))
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


def _cut_marker(left_out: int) -> str:
    return f"… [cut: {left_out:,} more characters]" if left_out else ""


def markdown_text(value: object, multiline: bool = False, limit: int | None = None) -> str:
    """Untrusted text as literal markdown; newlines become `<br>` (table-safe) unless `multiline`.

    At most `limit` characters are shown (TEXT_LIMIT, or MULTILINE_LIMIT for a paragraph), then
    a marker that says how many were cut.
    """
    text, left_out = _cut(value, limit if limit is not None else (MULTILINE_LIMIT if multiline else TEXT_LIMIT))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE.sub(r"\\\1", text)
    lines = [_block_safe(line.strip()) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    if not multiline:
        text = "<br>".join(line for line in lines if line)
    else:
        text = "\n".join(lines).strip("\n")
    # A line that starts with a shown format character ("<U+202E># x") is not a heading or a tag.
    return show_format_characters(text) + (" " if text and left_out else "") + _cut_marker(left_out)


def _block_safe(line: str) -> str:
    """A line that cannot open a heading, list, rule or setext underline (leading spaces are already gone)."""
    return _ORDERED_ITEM.sub(r"\1\\\2", _BLOCK_MARK.sub(r"\\\1", line))


def markdown_code(value: object, table: bool = True, limit: int = CODE_LIMIT) -> str:
    """Untrusted text as an inline code span; pipes escaped for tables (GFM reads `\\|` inside code too)."""
    text, left_out = _cut(value, limit)
    text = show_format_characters(" ".join(text.split()))
    if not text:
        return _cut_marker(left_out)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    if table:
        text = text.replace("|", "\\|")
    return f"{fence}{text}{fence}" + (" " if left_out else "") + _cut_marker(left_out)


def markdown_link(text: object, url: object) -> str:
    """`[text](url)` for an http(s) URL; the text alone for anything else (javascript:, data:, paths, too long)."""
    label = markdown_text(text)
    address = "" if url is None else str(url).strip()
    if len(address) > URL_LIMIT:
        return label
    parts = urlsplit(address)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return label
    # quote() writes every character outside ASCII, format characters included, as %XX.
    return f"[{label}]({quote(address, safe=':/?#@!$&*+,;=%~-._')})"


def file_link(text: object, file_name: object) -> str:
    """`[text](file)` to a post-mortem beside this one; the text alone for any other name."""
    label = markdown_text(text)
    name = "" if file_name is None else str(file_name)
    return f"[{label}]({name})" if is_postmortem_file(name) else label


_PLAIN_FILE = re.compile(r"^[\w][\w.-]{0,150}\.md$", re.ASCII)


def past_link(text: object, file_name: object) -> str:
    """`[text](file)` to a past post-mortem in the same folder, hand-written ones too; the text alone otherwise."""
    label = markdown_text(text)
    name = "" if file_name is None else str(file_name)
    return f"[{label}]({quote(name)})" if _PLAIN_FILE.fullmatch(name) and name != INDEX_FILE else label


def fingerprint_note(fingerprint: Fingerprint | None) -> str:
    """The incident's fingerprint as an HTML comment, for the archive to read back; nothing without one."""
    return fingerprint_comment(fingerprint) if isinstance(fingerprint, Fingerprint) else ""


def chart_image(chart: tuple[str, str]) -> str:
    """`![title](<post-mortem stem>/<chart>.svg)` for a chart beside a post-mortem; the title alone otherwise."""
    title, path = chart
    stem, _, name = str(path).partition("/")
    if not (is_postmortem_file(f"{stem}.md") and is_chart_file(name)):
        return markdown_text(title)
    return f"![{markdown_text(title)}]({stem}/{name})"


def chart_dir(file_name: str) -> str:
    """The folder beside a post-mortem that holds its charts: its name without `.md`."""
    return file_name.removesuffix(".md")


def bounded_document(text: str, *, limit: int = MAX_POSTMORTEM_BYTES - _DOCUMENT_RESERVE) -> str:
    """The document if it fits in `limit` UTF-8 bytes; else its first lines that do, and a line saying so."""
    if len(text.encode()) <= limit:
        return text
    head = text.encode()[:limit].decode("utf-8", "ignore")
    head = head[: head.rfind("\n") + 1] if "\n" in head else ""
    left_out = len(text) - len(head)
    return (f"{head}\n… [cut: {left_out:,} more characters; a document here is kept under "
            f"{MAX_POSTMORTEM_BYTES // 1024} KiB, and `GET /incidents` holds the whole record]\n")


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
    before: str = "—"  # the same figure before the onset


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
                before="—" if e.baseline is None else format_value(e.baseline, e.unit),
            ))
    return rows


def _onset_entries(report: Report | None) -> list[TimelineEntry]:
    """The minute the logs show the change, from the latest analysis (it is not an event of the record)."""
    if report is None or report.onset is None:
        return []
    changed = "; ".join(report.onset.changes[:3]) or report.onset.signal
    return [TimelineEntry(at=report.onset.at, kind="onset",
                          text=f"Signals changed in the logs: {changed} (first bad minute).")]


def impact(report: Report, *, slo_target_pct: float) -> Impact:
    """Requests and failures in the analysed window and the share of a 30-day error budget they used."""
    # Measured figures only: a number the model read in a lookup may cover another window or scope.
    evidence = [e for f in report.findings for e in f.evidence if e.source == "evaluation"]
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
    env.filters.update(ESCAPING_FILTERS)
    return env


def _as_text(format_: Callable[..., str]) -> Callable[..., str]:
    """A formatter whose result is escaped too: a unit comes from the model, and nothing is printed raw."""
    return lambda *args: markdown_text(format_(*args))


# The filters a template may end a `{{ ... }}` with; each escapes what it prints.
ESCAPING_FILTERS: dict[str, Callable[..., str]] = {
    "md": markdown_text, "code": markdown_code, "link": markdown_link, "file_link": file_link,
    "time": _as_text(format_time), "duration": _as_text(format_duration), "value": _as_text(format_value),
    "multiple": _as_text(format_multiple), "chart_image": chart_image, "past_link": past_link,
    "fingerprint": fingerprint_note,
}


class UnsafePath(ValueError):
    """A post-mortem name that would leave the post-mortem directory."""


class PostmortemWriter:
    """`charts`, when given, draws an incident's charts; they are written beside each post-mortem and shown in it."""

    def __init__(self, directory: Path, *, templates: Path, slo_target_pct: float,
                 charts: Callable[[Incident], Awaitable[list[ChartFile]]] | None = None) -> None:
        self.directory = Path(directory)
        self.slo_target_pct = slo_target_pct
        self._charts = charts
        self._env = template_environment(templates)
        self._index_lock = asyncio.Lock()
        self._index_queued = False

    def render(self, incident: Incident, charts: list[ChartFile] | None = None) -> str:
        report = incident.report
        body = self._env.get_template(POSTMORTEM_TEMPLATE).render(
            incident=incident, report=report, recheck=incident.recheck,
            impact=impact(report, slo_target_pct=self.slo_target_pct) if report is not None else None,
            slo_target_pct=self.slo_target_pct,
            timeline=sorted([*incident.timeline, *_onset_entries(report)], key=lambda e: e.at),
            runbooks=_runbooks(incident), groups=alert_groups(incident),
            charts=[(c.title, f"{chart_dir(incident.postmortem_file)}/{c.name}") for c in charts or ()],
        )
        return _with_marker(bounded_document(body))

    def render_draft(self, report: Report) -> dict[str, str]:
        """A post-mortem draft of an analysis made on request; nothing is written."""
        incident = lifecycle.analysed_by_hand(report)
        return {"file_name": incident.postmortem_file, "markdown": self.render(incident)}

    def render_index(self, incidents: list[IncidentSummary]) -> str:
        return bounded_document(self._env.get_template(INDEX_TEMPLATE).render(incidents=incidents))

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
        charts = await self._draw_charts(incident)
        text = self.render(incident, charts)
        written = await asyncio.to_thread(_replace_unless_edited, path, text)
        if not written:
            log.info("post-mortem edited by hand; not overwritten", extra={"incident": incident.id, "path": str(path)})
            return None
        for chart in charts:
            await asyncio.to_thread(replace_file, path.parent / chart_dir(path.name) / chart.name, chart.svg)
        return path

    async def _draw_charts(self, incident: Incident) -> list[ChartFile]:
        """The charts as the series stand now; none (and a warning) when they cannot be read."""
        if self._charts is None:
            return []
        try:
            return [c for c in await self._charts(incident) if is_chart_file(c.name)]
        except Exception as exc:  # a post-mortem without its charts beats none at all
            log.warning("charts not drawn: %s", exc, extra={"incident": incident.id})
            return []

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


def alert_groups(incident: Incident) -> dict[str, str]:
    """The Alertmanager groups whose alerts joined, in the order they did: group key -> its labels in a line."""
    groups = {incident.group_key: ", ".join(f"{k}={v}" for k, v in sorted(incident.group_labels.items()))}
    for alert in incident.alerts:
        if alert.group_key and alert.group_key not in groups:
            groups[alert.group_key] = ", ".join(f"{k}={v}" for k, v in sorted(alert.group_labels.items()))
    return {key: labels or key for key, labels in groups.items()}


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
