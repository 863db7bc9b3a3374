"""The rule file: templates/golden-signals.yml.j2 rendered with the thresholds and the timing."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import jinja2
import yaml
from agents import Thresholds

from ..resources import replace_file, resource_dir
from .timing import PRODUCTION_TIMING, RuleTiming, seconds, span

RULE_FILE = "golden-signals.yml"
TEMPLATE = "golden-signals.yml.j2"
SCRAPE_JOB = "incident-copilot"
_WIDTH = 88


def alerting_rule(thresholds: Thresholds, alert: str, severity: str, *,
                  timing: RuleTiming = PRODUCTION_TIMING) -> dict:
    """One alerting rule of the rendering (`alert`, `expr`, `for`, `labels`, `annotations`) as
    Prometheus reads it."""
    for group in yaml.safe_load(render_rules(thresholds, timing=timing)[RULE_FILE])["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert and rule.get("labels", {}).get("severity") == severity:
                return rule
    raise KeyError(f"no {severity} rule {alert!r} in {RULE_FILE}")


def render_rules(thresholds: Thresholds, *, timing: RuleTiming = PRODUCTION_TIMING,
                 setting_names: Mapping[str, str] | None = None) -> dict[str, str]:
    """The rule files for these thresholds: file name -> YAML text.

    `setting_names` (setting -> `Thresholds` field) lets the header name the settings that
    produced the file, so a reader knows what to change instead of editing it.
    """
    template = _environment().get_template(TEMPLATE)
    text = template.render(
        thresholds=thresholds, setting_names=setting_names or {}, scrape_job=SCRAPE_JOB,
        timing=timing, timing_fields=asdict(timing), production_timing=PRODUCTION_TIMING,
    )
    return {RULE_FILE: text}


def write_rules(thresholds: Thresholds, directory: Path, *, timing: RuleTiming = PRODUCTION_TIMING,
                setting_names: Mapping[str, str] | None = None) -> list[Path]:
    """Write the rendered rule files into `directory` (created if missing)."""
    written = []
    for name, text in render_rules(thresholds, timing=timing, setting_names=setting_names).items():
        replace_file(directory / name, text)
        written.append(directory / name)
    return written


def stale_rule_files(thresholds: Thresholds, directory: Path, *,
                     setting_names: Mapping[str, str] | None = None) -> list[str]:
    """Names of the rule files in `directory` that are missing or differ from the rendering."""
    stale = []
    for name, text in render_rules(thresholds, setting_names=setting_names).items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        # `${ }` substitutes, so the `{{ }}` of Prometheus' annotation templates is left as written.
        variable_start_string="${",
        variable_end_string="}",
        autoescape=jinja2.select_autoescape(("html",), default=False),  # YAML: nothing to escape
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(number=_number, text=_text, percent=_percent, duration_ms=_duration_ms,
                       span=span, seconds=seconds, comment=_comment)
    return env


def _number(value: float) -> str:
    """A PromQL number literal."""
    return f"{value:.10g}"


def _text(value: float) -> str:
    return f"{value:g}"


def _percent(pct: float) -> str:
    return f"{pct:g}%"


def _duration_ms(ms: float) -> str:
    return f"{ms:g}ms" if ms < 1000 else f"{ms / 1000:g}s"


def _comment(text: str, prefix: str = "# ") -> str:
    """A paragraph whose words the template decides reflowed into comment lines of the file's width."""
    lines = textwrap.wrap(" ".join(text.split()), _WIDTH - len(prefix))
    return "".join(f"{prefix}{line}\n" for line in lines)
