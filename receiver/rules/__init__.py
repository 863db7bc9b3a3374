"""Prometheus recording and alerting rules for the golden signals, rendered from `Thresholds`.

The rules are a template (templates/golden-signals.yml.j2) filled in with the thresholds
and a `RuleTiming`. The files under `alert_rules/` are the rendering of the default
settings, and a deployment with other thresholds renders its own
(`incident-copilot rules --out DIR`) instead of editing YAML by hand.
"""

from .render import RULE_FILE, SCRAPE_JOB, alerting_rule, render_rules, stale_rule_files, write_rules
from .timing import PRODUCTION_TIMING, RuleTiming

__all__ = [
    "PRODUCTION_TIMING",
    "RULE_FILE",
    "SCRAPE_JOB",
    "RuleTiming",
    "alerting_rule",
    "render_rules",
    "stale_rule_files",
    "write_rules",
]
