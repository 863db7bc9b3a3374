"""Replay simulated incidents through ingestion and analysis, and check each verdict against what happened."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from redis.asyncio import Redis

from ingestion import (
    Batch,
    MetricsQueries,
    MetricsStore,
    TimeBounds,
    add_text_lines,
    generate_lines,
    scenario_timeline,
)

from .config import AnalysisConfig
from .llm import LLMClient
from .metrics import AnalysisMetrics
from .orchestrator import analyze
from .report import Finding, Report, Severity, Specialist
from .request import AlertContext, AnalysisRequest

# Synthetic minutes are written at fixed dates long past, one day apart, so scenarios never
# overlap each other nor the live minutes of a store that is in use.
EVAL_START = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
REDIS_SATURATION = "redis-saturation"
_FILL_TARGET = 0.88
_FILLER_PREFIX = "incident-copilot:eval:filler:"


@dataclass(frozen=True, slots=True)
class Expectation:
    signal: Specialist
    severity: Severity
    at_least: bool = False  # `severity` or worse
    mentions: tuple[str, ...] = ()  # strings the finding must name

    @property
    def wanted(self) -> str:
        return f">= {self.severity.value}" if self.at_least else self.severity.value

    def met_by(self, finding: Finding) -> tuple[bool, str]:
        rank_ok = (finding.severity.rank >= self.severity.rank if self.at_least
                   else finding.severity == self.severity)
        text = " ".join([finding.summary, finding.details, *(e.scope or "" for e in finding.evidence)])
        missing = [m for m in self.mentions if m not in text]
        note = finding.summary if not missing else f"does not name {', '.join(missing)}; {finding.summary}"
        return rank_ok and not missing, note


_OK_ALL = tuple(Expectation(signal, Severity.ok) for signal in ("latency", "errors", "saturation", "traffic"))
ONSET = "{onset}"  # in `mentions`: the scenario's onset minute, "HH:MM"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One case of the evaluation: the simulated traffic, the alerts that came with it, what a good report says."""

    traffic: str  # a scenario of `ingestion.simulate`
    expectations: tuple[Expectation, ...]
    culprit: str | None | bool = False  # the backend the report must point at; None: none; False: not checked
    title_mentions: tuple[str, ...] = ()
    alerts: tuple[AlertContext, ...] = ()
    # The onset the report must find, within this many minutes after the simulated one (a creep's first
    # minutes differ from the baseline by less than its noise); None: not checked.
    onset_within: int | None = 0


def _alert(name: str, severity: str, backend: str, description: str) -> AlertContext:
    return AlertContext(alertname=name, severity=severity, labels={"alertname": name, "backend": backend,
                                                                   "severity": severity},
                        annotations={"description": description})


_REGRESSION_ALERTS = (
    _alert("BackendLatencyHigh", "critical", "api",
           "P99 latency (HAProxy Ta) of backend api is 2s over the last minute; the critical threshold is 1s."),
    _alert("Backend5xxRateHigh", "critical", "api",
           "18% of the requests to backend api were answered 5xx over the last minute; the critical threshold is 10%."),
)

EVAL_SCENARIOS: dict[str, Scenario] = {
    "baseline": Scenario("baseline", _OK_ALL, culprit=None, onset_within=None),
    "deploy-regression": Scenario("deploy-regression", (
        Expectation("latency", Severity.critical, mentions=("api", ONSET)),
        Expectation("errors", Severity.critical, mentions=("api", ONSET)),
    ), culprit="api"),
    "two-alerts-one-backend": Scenario("deploy-regression", (
        Expectation("latency", Severity.critical, mentions=("api",)),
        Expectation("errors", Severity.critical, mentions=("api",)),
    ), culprit="api", title_mentions=("api", "P99", "5xx"), alerts=_REGRESSION_ALERTS),
    "auth-regression": Scenario("auth-regression", (
        Expectation("errors", Severity.warning, mentions=("POST /api/checkout", "401", ONSET)),
    ), culprit="checkout"),
    "outage": Scenario("outage", (Expectation("traffic", Severity.critical),)),
    "traffic-spike": Scenario("traffic-spike", (Expectation("traffic", Severity.warning),)),
    "backend-spike": Scenario("backend-spike", (Expectation("traffic", Severity.warning, mentions=("web",)),),
                              culprit="web"),
    "server-refusing": Scenario("server-refusing", (
        Expectation("errors", Severity.warning, at_least=True, mentions=("web-2", "503", ONSET)),
    ), culprit="web", title_mentions=("web",)),
    "latency-creep": Scenario("latency-creep", (
        Expectation("latency", Severity.warning, at_least=True, mentions=("checkout", "since")),
    ), culprit="checkout", onset_within=5),
    "quiet-broken-backend": Scenario("quiet-broken-backend", _OK_ALL, culprit=None, onset_within=None),
    REDIS_SATURATION: Scenario("baseline", (Expectation("saturation", Severity.warning),), onset_within=None),
}
SCENARIOS = tuple(EVAL_SCENARIOS)


@dataclass(frozen=True, slots=True)
class EvalRow:
    scenario: str
    signal: str
    expected: str
    got: str  # a severity, or "skipped"
    passed: bool
    mode: str = "rules"
    note: str = ""


async def run_eval(
    redis: Redis,
    *,
    config: AnalysisConfig,
    llm: LLMClient | None = None,
    metrics: AnalysisMetrics | None = None,
    saturation_redis: Redis | None = None,
    scenarios: Iterable[str] = SCENARIOS,
    minutes: int = 30,
    rps: float = 20.0,
    seed: int = 7,
    start: datetime = EVAL_START,
) -> list[EvalRow]:
    """One row per expectation of each scenario.

    Scenarios are written into `redis` at past dates (use a scratch Redis). `redis-saturation`
    needs `saturation_redis`: a dedicated server started with a small `maxmemory`, which is
    filled to about 88 % and emptied again; without it that row is skipped.
    """
    rows: list[EvalRow] = []
    for day, scenario in enumerate(scenarios):
        if scenario not in EVAL_SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
        begin = start + timedelta(days=day)
        if scenario == REDIS_SATURATION:
            rows += await _saturation_rows(saturation_redis, config=config, llm=llm, metrics=metrics,
                                           begin=begin, minutes=minutes, rps=rps, seed=seed)
            continue
        case = EVAL_SCENARIOS[scenario]
        timeline = scenario_timeline(case.traffic, begin, minutes)
        at = _analysis_moment(case.traffic, begin, minutes)
        await load_scenario(redis, case.traffic, start=begin, minutes=minutes, rps=rps, seed=seed)
        alerts = [a.model_copy(update={"starts_at": timeline.onset}) for a in case.alerts]
        report = await _analyze_at(redis, at, alerts, config=config, llm=llm, metrics=metrics)
        rows += _score(scenario, report, timeline.onset)
    return rows


async def load_scenario(redis: Redis, scenario: str, *, start: datetime, minutes: int, rps: float,
                        seed: int = 7) -> int:
    """Write a simulated scenario's minutes into `redis`; returns how many lines were accepted."""
    end = start + timedelta(minutes=minutes)
    batch = Batch()
    add_text_lines(batch, generate_lines(scenario, start=start, minutes=minutes, rps=rps, seed=seed),
                   tz=timezone.utc,
                   bounds=TimeBounds(now=end.timestamp(), retention_seconds=(minutes + 60) * 60, skew_seconds=60))
    await MetricsStore(redis, now=end.timestamp).write(batch.buckets)
    return batch.accepted


def format_eval_table(rows: list[EvalRow]) -> str:
    """The rows as an aligned text table, with a last line counting the passes."""
    header = ("scenario", "signal", "expected", "got", "result", "mode", "note")
    cells = [header] + [
        (r.scenario, r.signal, r.expected, r.got, "pass" if r.passed else ("skip" if r.got == "skipped" else "FAIL"),
         r.mode, r.note[:90]) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in cells]
    lines.insert(1, "-" * min(120, max(len(line) for line in lines)))
    passed = sum(r.passed for r in rows)
    skipped = sum(r.got == "skipped" for r in rows)
    lines.append(f"{passed}/{len(rows)} passed" + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines) + "\n"


def _analysis_moment(scenario: str, begin: datetime, minutes: int) -> datetime:
    """When an on-call engineer would look: at the end of the run, or while a passing spike lasts."""
    timeline = scenario_timeline(scenario, begin, minutes)
    if timeline.end is not None and timeline.end < begin + timedelta(minutes=minutes):
        return timeline.end
    return begin + timedelta(minutes=minutes)


async def _analyze_at(redis: Redis, at: datetime, alerts: list[AlertContext] | None = None, **kw) -> Report:
    source = MetricsQueries(redis, now=at.timestamp)
    return await analyze(source, AnalysisRequest(at=at, alerts=alerts or []), now=lambda: at, **kw)


def _score(scenario: str, report: Report, onset: datetime | None = None) -> list[EvalRow]:
    case = EVAL_SCENARIOS[scenario]
    minute = f"{onset:%H:%M}" if onset is not None else ONSET
    rows = []
    for expectation in case.expectations:
        finding = next(f for f in report.findings if f.specialist == expectation.signal)
        wanted = replace(expectation, mentions=tuple(minute if m == ONSET else m for m in expectation.mentions))
        passed, note = wanted.met_by(finding)
        rows.append(EvalRow(scenario, expectation.signal, expectation.wanted, finding.severity.value, passed,
                            finding.provenance.mode, note))
    if case.culprit is not False:
        expected, got = case.culprit or "none", report.culprit or "none"
        rows.append(EvalRow(scenario, "culprit", expected, got, got == expected, report.synthesis.mode,
                            report.title))
    if case.onset_within is not None and onset is not None:
        found = report.onset.at if report.onset is not None else None
        late = None if found is None else (found - onset).total_seconds() / 60
        wanted_text = f"{onset:%H:%M}" + (f" +{case.onset_within} min" if case.onset_within else "")
        rows.append(EvalRow(scenario, "onset", wanted_text, f"{found:%H:%M}" if found else "none",
                            late is not None and 0 <= late <= case.onset_within, report.synthesis.mode,
                            report.onset.rule if report.onset else "no onset found"))
    if case.title_mentions:
        missing = [m for m in case.title_mentions if m not in report.title]
        rows.append(EvalRow(scenario, "title", "names " + ", ".join(case.title_mentions),
                            "ok" if not missing else "misses " + ", ".join(missing), not missing,
                            report.synthesis.mode, report.title))
    return rows


async def _saturation_rows(redis: Redis | None, *, begin: datetime, minutes: int, rps: float, seed: int,
                           **kw) -> list[EvalRow]:
    expectation = EVAL_SCENARIOS[REDIS_SATURATION].expectations[0]
    skipped = EvalRow(REDIS_SATURATION, expectation.signal, expectation.wanted, "skipped", False,
                      note="needs a dedicated Redis with a small maxmemory")
    if redis is None:
        return [skipped]
    maxmemory = int((await redis.config_get("maxmemory")).get("maxmemory", 0))
    if not maxmemory:
        return [skipped]
    await load_scenario(redis, "baseline", start=begin, minutes=minutes, rps=rps, seed=seed)
    filled = await _fill_memory(redis, maxmemory)
    try:
        report = await _analyze_at(redis, begin + timedelta(minutes=minutes), **kw)
    finally:
        if filled:
            await redis.delete(*filled)
    return _score(REDIS_SATURATION, report)


async def _fill_memory(redis: Redis, maxmemory: int) -> list[str]:
    """Write filler keys until Redis uses about 88 % of its maxmemory; returns their names."""
    chunk = max(1024, maxmemory // 400)
    keys: list[str] = []
    while True:
        used = int((await redis.info("memory"))["used_memory"])
        if used >= _FILL_TARGET * maxmemory or len(keys) > 10_000:
            return keys
        missing = int(_FILL_TARGET * maxmemory) - used
        key = f"{_FILLER_PREFIX}{len(keys)}"
        # Approach from below: allocator overhead makes each value cost more than its length.
        await redis.set(key, "x" * max(64, min(chunk, missing // 2)))
        keys.append(key)
