"""Prometheus recording and alerting rules for the golden signals, rendered from `Settings`.

Thresholds live only in `Settings`: the files under `alert_rules/` are the rendering of
the defaults, and a deployment with other thresholds renders its own
(`incident-copilot rules --out DIR`) instead of editing YAML by hand.

Timing (see docs/alerting.md): rates and quantiles use a 1-minute window and alerts
hold for 1 minute, which at a 15 s scrape and evaluation interval fires within
1m30s of a clear step change and never on one bad 15 s interval, whose share of a
1-minute window lasts at most four evaluations (45 s), short of the hold. `RuleTiming`
holds these durations; a stack that scrapes every second (the end-to-end tests) renders
the same rules with shorter ones.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..resources import replace_file
from ..settings import Settings

RULE_FILE = "golden-signals.yml"
SCRAPE_JOB = "incident-copilot"
# Completed by Prometheus' external label `runbook_base_url`; without it the link stays
# a path from the repository root, which Markdown rendered in the repository resolves.
RUNBOOK_BASE = "{{ $externalLabels.runbook_base_url }}/docs/runbooks"

# Go-template pieces of the annotations.
BACKEND = "{{ $labels.backend }}"
VALUE = "{{ $value | humanize }}"
VALUE_PCT = "{{ $value | humanizePercentage }}"
VALUE_DURATION = "{{ $value | humanizeDuration }}"
VALUE_COUNT = '{{ $value | printf "%.0f" }}'

# Per-second rates, deduplicated across replicas (each exposes the same Redis counters).
REQUESTS = "frontend_backend_code_class:haproxy_log_requests:rate1m"
BACKEND_REQUESTS = "backend:haproxy_log_requests:rate1m"
BACKEND_BASELINE = "backend:haproxy_log_requests:rate1h_offset5m"
LATENCY_BUCKETS = "backend_le:haproxy_log_request_duration_seconds_bucket:rate1m"
P95 = "backend:haproxy_log_request_duration_seconds:p95_rate1m"
P99 = "backend:haproxy_log_request_duration_seconds:p99_rate1m"
RATIO_5XX = "backend:haproxy_log_requests_5xx:ratio_rate1m"
RATIO_4XX = "backend:haproxy_log_requests_4xx:ratio_rate1m"
MEMORY_RATIO = "job:incident_copilot_redis_memory:usage_ratio"


@dataclass(frozen=True)
class RuleTiming:
    """Windows and holds of the rules, as Prometheus durations (whole seconds).

    The defaults are the production timing of docs/alerting.md, for a 15 s scrape and
    evaluation interval. Other values change the expressions, the holds and the words of
    the annotations, never the names: the recording rules stay `...:rate1m` and
    `...:rate1h_offset5m`, so alerts and dashboards read them the same way.
    """

    window: str = "1m"  # rates, ratios and quantiles
    hold: str = "1m"  # `for:` of every alert that has one
    silence: str = "4m"  # BackendTrafficDropped: no request in this long, then the hold
    rejections: str = "5m"  # RedisRejectingConnections: any rejection in this long
    baseline: str = "1h"  # the traffic baseline...
    baseline_offset: str = "5m"  # ...ending this long ago


PRODUCTION_TIMING = RuleTiming()


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    comment: str = ""


@dataclass(frozen=True)
class Alert:
    alert: str
    expr: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    hold: str | None
    comment: str = ""


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[Recording | Alert, ...]
    comment: str = ""


def render_rules(settings: Settings, *, timing: RuleTiming = PRODUCTION_TIMING) -> dict[str, str]:
    """The rule files for these settings: file name -> YAML text."""
    return {RULE_FILE: _render_file(settings, timing, rule_groups(settings, timing))}


def write_rules(settings: Settings, directory: Path, *, timing: RuleTiming = PRODUCTION_TIMING) -> list[Path]:
    """Write the rendered rule files into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_rules(settings, timing=timing).items():
        path = directory / name
        replace_file(path, text)
        written.append(path)
    return written


def stale_rule_files(settings: Settings, directory: Path) -> list[str]:
    """Names of the rule files in `directory` that are missing or differ from the rendering."""
    stale = []
    for name, text in render_rules(settings).items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def rule_groups(settings: Settings, timing: RuleTiming = PRODUCTION_TIMING) -> tuple[RuleGroup, ...]:
    signals = RuleGroup(
        name="incident-copilot.golden-signals",
        comment=(
            "One group, so every alert reads the recording rules computed at the same "
            "evaluation instead of the previous one (15 s older)."
        ),
        rules=(
            *_recordings(timing),
            *_latency_alerts(settings, timing),
            *_error_alerts(settings, timing),
            *_saturation_alerts(settings, timing),
            *_traffic_alerts(settings, timing),
        ),
    )
    ingestion = RuleGroup(name="incident-copilot.ingestion", rules=(_ingestion_down(timing),))
    return signals, ingestion


def _recordings(t: RuleTiming) -> tuple[Recording, ...]:
    return (
        Recording(
            REQUESTS,
            f"max by (frontend, backend, code_class) (rate(haproxy_log_requests_total[{t.window}]))",
            comment=(
                "Every replica exposes the same counters from Redis: `max` keeps one copy. "
                "The counters restart from zero at midnight UTC, which rate() reads as a reset."
            ),
        ),
        Recording(BACKEND_REQUESTS, f"sum by (backend) ({REQUESTS})"),
        Recording(
            BACKEND_BASELINE,
            "sum by (backend) (\n"
            "  max by (frontend, backend, code_class) "
            f"(rate(haproxy_log_requests_total[{t.baseline}] offset {t.baseline_offset}))\n"
            ")",
            comment=(
                "Traffic baseline: the hour ending five minutes ago, so a drop or a spike "
                "does not dilute its own baseline while it is being detected."
            ),
        ),
        _ratio(RATIO_5XX, "5xx"),
        _ratio(RATIO_4XX, "4xx"),
        Recording(
            LATENCY_BUCKETS,
            f"max by (backend, le) (rate(haproxy_log_request_duration_seconds_bucket[{t.window}]))",
        ),
        Recording(P95, f"histogram_quantile(0.95, {LATENCY_BUCKETS})"),
        Recording(P99, f"histogram_quantile(0.99, {LATENCY_BUCKETS})"),
        Recording(
            MEMORY_RATIO,
            "max by (job) (incident_copilot_redis_memory_used_bytes)\n"
            "/ (max by (job) (incident_copilot_redis_memory_max_bytes) > 0)",
            comment="Absent while maxmemory is 0 (no limit): there is no ratio to alert on.",
        ),
    )


def _ratio(record: str, code_class: str) -> Recording:
    return Recording(
        record,
        "(\n"
        f'    sum by (backend) ({REQUESTS}{{code_class="{code_class}"}})\n'
        "  or\n"
        f"    {BACKEND_REQUESTS} * 0\n"
        ")\n"
        f"/ {BACKEND_REQUESTS}",
        comment=(
            f"0 rather than absent for a backend without {code_class} answers today; "
            "NaN (never above a threshold) for one without requests."
        ),
    )


def _latency_alerts(s: Settings, t: RuleTiming) -> tuple[Alert, ...]:
    return (
        _latency_alert(P95, "P95", s.latency_p95_threshold_ms, "warning", s, t, comment=(
            "Fires 1m-1m30s after a step change whose first 15 s lift the 1-minute P95 "
            "over the threshold; up to 2m15s when it only just crosses once the window "
            "is full. Silent below the traffic floor."
        )),
        _latency_alert(P99, "P99", s.latency_p99_threshold_ms, "critical", s, t, comment=(
            "Timing as for P95. The critical inhibits the warning of the same backend."
        )),
    )


def _latency_alert(record: str, name: str, ms: float, severity: str, s: Settings, t: RuleTiming, *,
                   comment: str) -> Alert:
    return Alert(
        "BackendLatencyHigh",
        _floored(f"{record} > {_number(ms / 1000)}", s),
        labels=_labels(severity, "latency"),
        annotations={
            "summary": f"Backend {BACKEND}: {name} latency above {_duration(ms)}",
            "description": (
                f"{name} latency (HAProxy Ta) of backend {BACKEND} is {VALUE_DURATION} "
                f"over the last {_span(t.window)}; the {severity} threshold is {_duration(ms)}."
            ),
            "runbook_url": _runbook("latency", "BackendLatencyHigh"),
        },
        hold=t.hold,
        comment=comment,
    )


def _error_alerts(s: Settings, t: RuleTiming) -> tuple[Alert, ...]:
    return (
        _error_alert("5xx", RATIO_5XX, s.error_rate_5xx_threshold_pct, "warning", s, t, comment=(
            "Fires 1m-1m30s after onset when the error share is at least four times the "
            "threshold, within 2m at 4/3 of it, up to 2m15s when it only just crosses. "
            "Silent below the traffic floor."
        )),
        _error_alert("5xx", RATIO_5XX, s.error_rate_5xx_critical_pct, "critical", s, t, comment=(
            "Timing as for the warning. The critical inhibits the warning of the same backend."
        )),
        _error_alert("4xx", RATIO_4XX, s.error_rate_4xx_threshold_pct, "warning", s, t, comment=(
            "Timing as for 5xx."
        )),
    )


def _error_alert(code_class: str, record: str, pct: float, severity: str, s: Settings, t: RuleTiming, *,
                 comment: str) -> Alert:
    name = f"Backend{code_class}RateHigh"
    return Alert(
        name,
        _floored(f"{record} > {_number(pct / 100)}", s),
        labels=_labels(severity, "errors"),
        annotations={
            "summary": f"Backend {BACKEND}: {code_class} rate above {_percent(pct)}",
            "description": (
                f"{VALUE_PCT} of the requests to backend {BACKEND} were answered {code_class} "
                f"over the last {_span(t.window)}; the {severity} threshold is {_percent(pct)}."
            ),
            "runbook_url": _runbook("errors", name),
        },
        hold=t.hold,
        comment=comment,
    )


def _saturation_alerts(s: Settings, t: RuleTiming) -> tuple[Alert, ...]:
    pct = s.memory_usage_threshold_pct
    return (
        Alert(
            "RedisMemoryHigh",
            f"{MEMORY_RATIO} > {_number(pct / 100)}",
            labels=_labels("warning", "saturation"),
            annotations={
                "summary": f"Redis memory above {_percent(pct)} of maxmemory",
                "description": (
                    f"Redis uses {VALUE_PCT} of its maxmemory; the warning threshold is "
                    f"{_percent(pct)}. At 100 % it evicts or refuses writes, and ingestion fails."
                ),
                "runbook_url": _runbook("saturation", "RedisMemoryHigh"),
            },
            hold=t.hold,
            comment="Fires 1m-1m30s after memory crosses the threshold; one high sample never does.",
        ),
        Alert(
            "RedisRejectingConnections",
            f"max by (job) (increase(incident_copilot_redis_rejected_connections_total[{t.rejections}])) > 0",
            labels=_labels("warning", "saturation"),
            annotations={
                "summary": "Redis is rejecting connections",
                "description": (
                    f"Redis rejected {VALUE_COUNT} connections in the last {_span(t.rejections)} "
                    "(maxclients reached); any rejection warns."
                ),
                "runbook_url": _runbook("saturation", "RedisRejectingConnections"),
            },
            hold=None,
            comment=(
                "No hold: every rejection is a client that was refused, not a noisy estimate. "
                "Fires within 30 s of the first rejection and resolves 5m after the last. "
                "A failed scrape adds no sample, and a Redis restart reads as a counter reset."
            ),
        ),
    )


def _traffic_alerts(s: Settings, t: RuleTiming) -> tuple[Alert, ...]:
    floor = s.min_requests_per_minute
    factor = s.traffic_spike_factor
    quiet = _span(_seconds(t.silence) + _seconds(t.hold), article=True)
    baseline = _span(t.baseline)
    return (
        Alert(
            "BackendTrafficDropped",
            "(\n"
            f"    {_at_least(f'{BACKEND_BASELINE} * 60', floor)}\n"
            "  unless on (backend)\n"
            f"    sum by (backend) (increase(haproxy_log_requests_total[{t.silence}])) > 0\n"
            ")\n"
            "and on ()\n"
            f'  max(up{{job="{SCRAPE_JOB}"}}) == 1',
            labels=_labels("critical", "traffic"),
            annotations={
                "summary": f"Backend {BACKEND}: no requests for {quiet}",
                "description": (
                    f"Backend {BACKEND} has received no requests for {quiet} after averaging "
                    f"{VALUE} requests/min over the {baseline} before; it alerts when that {baseline} "
                    + (f"averaged at least {_rate(floor)} requests/min." if floor > 0 else "had any traffic.")
                ),
                "runbook_url": _runbook("traffic", "BackendTrafficDropped"),
            },
            hold=t.hold,
            comment=(
                "No request in 4m, held 1m: fires 5m-5m30s after the last request. `unless` "
                "(not `== 0`) so it keeps firing when the backend's series vanish at the "
                "midnight reset. Bounded: it needs traffic in the hour ending 5m ago, so it "
                "never fires for a backend that had none and stops about an hour after a "
                "backend is retired. Silent while the scrape fails (IngestionDown covers that)."
            ),
        ),
        Alert(
            "BackendTrafficSpike",
            f"{BACKEND_REQUESTS}\n"
            "/ on (backend)\n"
            f"({_at_least(BACKEND_BASELINE, floor, per_second=True)})\n"
            f"> {_number(factor)}\n"
            # Only against a full baseline: Prometheus must have scraped the backend before the
            # baseline began, or a fresh server divides minutes of traffic by a whole hour.
            "and on (backend)\n"
            "max by (backend) (present_over_time(haproxy_log_requests_total"
            f"[{t.window}] offset {_seconds(t.baseline) + _seconds(t.baseline_offset)}s))",
            labels=_labels("warning", "traffic"),
            annotations={
                "summary": f"Backend {BACKEND}: traffic above {_number(factor)}x its baseline",
                "description": (
                    f"Backend {BACKEND} receives {VALUE}x its baseline request rate (last {_span(t.window)} "
                    f"against the {baseline} ending {_span(t.baseline_offset, article=True)} ago); the "
                    f"warning factor is {_number(factor)}x."
                ),
                "runbook_url": _runbook("traffic", "BackendTrafficSpike"),
            },
            hold=t.hold,
            comment=(
                "Fires 1m-1m30s after a jump big enough that its first 15 s lift the 1-minute "
                "rate over the factor (more than 4 x factor - 3 times the baseline); a smaller "
                "jump takes up to 45 s more. Silent when the baseline is below the traffic floor, "
                "and until Prometheus holds a full baseline hour of the backend."
            ),
        ),
    )


def _ingestion_down(t: RuleTiming) -> Alert:
    up = f'up{{job="{SCRAPE_JOB}"}}'
    return Alert(
        "IngestionDown",
        f"{up} == 0\nor\nabsent({up})",
        labels=_labels("critical", "traffic"),
        annotations={
            "summary": "Incident Copilot is not being scraped",
            "description": (
                f"Prometheus has not scraped job {SCRAPE_JOB}"
                "{{ with $labels.instance }} at {{ . }}{{ end }}"
                f" for {_span(t.hold, article=True)}, or has no such "
                "target: no golden signal is collected and no alert built on them can fire."
            ),
            "runbook_url": _runbook("traffic", "IngestionDown"),
        },
        hold=t.hold,
        comment=(
            "Fires 1m-1m30s after the target stops answering (add the scrape timeout when it "
            "hangs); one failed scrape never does."
        ),
    )


def _floored(condition: str, s: Settings) -> str:
    """Only with enough traffic: one failure out of two requests at night pages nobody."""
    return f"{condition}\nand on (backend)\n{_at_least(BACKEND_REQUESTS, s.min_requests_per_minute, per_second=True)}"


def _at_least(rate: str, per_minute: float, *, per_second: bool = False) -> str:
    """`rate` at or above a floor in requests/min; above zero when the floor is 0."""
    if per_minute <= 0:
        return f"{rate} > 0"
    return f"{rate} >= {_number(per_minute)}{' / 60' if per_second else ''}"


def _labels(severity: str, signal: str) -> dict[str, str]:
    return {"severity": severity, "signal": signal}


def _runbook(page: str, alert: str) -> str:
    return f"{RUNBOOK_BASE}/{page}.md#{alert.lower()}"


def _number(value: float) -> str:
    return f"{value:.10g}"


def _percent(pct: float) -> str:
    return f"{pct:g}%"


def _rate(per_minute: float) -> str:
    return f"{per_minute:g}"


def _duration(ms: float) -> str:
    return f"{ms:g}ms" if ms < 1000 else f"{ms / 1000:g}s"


_DURATION_PART = re.compile(r"(\d+)([smhdwy])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def _seconds(duration: str | int) -> int:
    """A Prometheus duration in whole seconds ("1m30s" -> 90); an int is taken as seconds."""
    if isinstance(duration, int):
        return duration
    parts = _DURATION_PART.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration in whole seconds: {duration!r}")
    total = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if total <= 0:
        raise ValueError(f"a window or hold must be longer than zero: {duration!r}")
    return total


def _span(duration: str | int, *, article: bool = False) -> str:
    """A duration in words: "minute" (or "a minute"), "5 minutes", "hour", "90 seconds"."""
    seconds = _seconds(duration)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            if count > 1:
                return f"{count} {unit}s"
            return f"{'an' if unit == 'hour' else 'a'} {unit}" if article else unit
    raise AssertionError("unreachable: every whole number of seconds is a number of seconds")


# YAML emission: block style, comments kept, no YAML library needed at run time.

_PLAIN = re.compile(r"[A-Za-z][\w.:/-]*(?<!:)|\d+[smhdwy]")
_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}
_WIDTH = 88


def _render_file(settings: Settings, timing: RuleTiming, groups: tuple[RuleGroup, ...]) -> str:
    fields = (
        "latency_p95_threshold_ms", "latency_p99_threshold_ms", "error_rate_5xx_threshold_pct",
        "error_rate_5xx_critical_pct", "error_rate_4xx_threshold_pct", "memory_usage_threshold_pct",
        "min_requests_per_minute", "traffic_spike_factor",
    )
    used = " ".join(f"{name}={getattr(settings, name):g}" for name in fields)
    out = [
        "# Golden-signal recording and alerting rules of Incident Copilot.",
        "#",
        "# Rendered by `incident-copilot rules` from the service settings: change the",
        "# settings and render again rather than editing this file. Rendered with:",
        *(f"#   {line}" for line in textwrap.wrap(used, _WIDTH - 4)),
        "#",
        *_comment(_timing_note(timing) + (
            "Latency and error alerts need the traffic floor (min_requests_per_minute) on the "
            "backend. runbook_url is completed by Prometheus' external label `runbook_base_url`."
        ), ""),
        "groups:",
    ]
    for index, group in enumerate(groups):
        if index:
            out.append("")
        out.extend(_comment(group.comment, "  "))
        out.append(f"  - name: {_scalar(group.name)}")
        out.append("    rules:")
        for rule in group.rules:
            out.extend(_rule(rule, "      "))
    return "\n".join(out) + "\n"


def _timing_note(timing: RuleTiming) -> str:
    if timing == PRODUCTION_TIMING:
        return ("Detection times assume a 15 s scrape and a 15 s evaluation interval; "
                "docs/alerting.md explains them and tests/promtool/ proves them. ")
    used = ", ".join(f"{name}={getattr(timing, name)}" for name in RuleTiming.__dataclass_fields__)
    return (f"Windows and holds shortened ({used}) for a stack that scrapes and evaluates "
            "every few seconds; the recording rules keep their production names, and the "
            "detection times in the comments below are those of the production timing "
            "(docs/alerting.md), not these. ")


def _rule(rule: Recording | Alert, indent: str) -> list[str]:
    inner = indent + "  "
    lines = [""] + _comment(rule.comment, indent)
    if isinstance(rule, Recording):
        lines.append(f"{indent}- record: {_scalar(rule.record)}")
        lines.extend(_expr(rule.expr, inner))
        return lines
    lines.append(f"{indent}- alert: {_scalar(rule.alert)}")
    lines.extend(_expr(rule.expr, inner))
    if rule.hold:
        lines.append(f"{inner}for: {_scalar(rule.hold)}")
    for key, mapping in (("labels", rule.labels), ("annotations", rule.annotations)):
        lines.append(f"{inner}{key}:")
        lines.extend(f"{inner}  {name}: {_scalar(value)}" for name, value in mapping.items())
    return lines


def _expr(expr: str, indent: str) -> list[str]:
    if "\n" not in expr:
        return [f"{indent}expr: {_scalar(expr)}"]
    if expr[:1].isspace():
        raise ValueError("a block scalar's first line sets its indentation: start it at column 0")
    return [f"{indent}expr: |-", *(f"{indent}  {line}" for line in expr.split("\n"))]


def _comment(text: str, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}# {line}" for line in textwrap.wrap(text, _WIDTH - len(indent) - 2)]


def _scalar(value: str) -> str:
    if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    return json.dumps(value, ensure_ascii=False)
