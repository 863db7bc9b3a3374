"""A backend fails behind HAProxy: Prometheus alerts, Alertmanager calls the webhook, the service opens an
incident naming the backend and the signal, and resolves it once the backend heals. The test-sized rules
that make this take a minute are the production rules with shorter windows and holds."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from receiver.rules import RULE_FILE, render_rules, write_rules

from .stack import BACKEND, E2E_TIMING, Stack, service_settings

ALERT = "Backend5xxRateHigh"
# Bounds on each wait; the stack needs a fraction of each (1 s intervals, E2E_TIMING).
FIRE_SECONDS = 60
NOTIFY_SECONDS = 30
RESOLVE_SECONDS = 90


def firing(alerts: list[dict], name: str) -> list[dict]:
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


@pytest.mark.e2e
async def test_a_failing_backend_opens_an_incident_naming_it_and_resolves_when_it_heals(stack: Stack):
    # Steady healthy traffic raises nothing.
    assert await stack.prometheus_alerts() == []
    assert await stack.incidents() == []
    assert set(stack.traffic.answers) == {"200"}, stack.traffic.answers

    # The backend fails every request with a 500.
    await stack.set_demo_mode("failing", status="500", pct="100")
    alerts = await stack.wait_for(f"{ALERT} to fire in Prometheus", stack.prometheus_alerts,
                                  lambda alerts: firing(alerts, ALERT), timeout=FIRE_SECONDS)
    for alert in firing(alerts, ALERT):
        assert alert["labels"]["backend"] == BACKEND
        assert alert["labels"]["signal"] == "errors"
        assert alert["annotations"]["runbook_url"].endswith("/docs/runbooks/errors.md#backend5xxratehigh")

    # Alertmanager calls the webhook; the worker opens the incident and analyses it.
    incident = await incident_for(stack, ALERT, known=set())
    ident = incident["id"]
    assert incident["alertnames"] == [ALERT] and incident["status"] == "open"
    assert {(a["labels"]["backend"], a["labels"]["signal"]) for a in incident["alerts"]} == {(BACKEND, "errors")}
    report = incident["report"]
    assert report["backend"] == BACKEND
    assert report["synthesis"]["mode"] == "rules"  # no API key
    (errors,) = [f for f in report["findings"] if f["specialist"] == "errors"]
    # Over the analysed window (10 min, most of it healthy) the share of 5xx is lower than the alert's.
    assert errors["severity"] in ("warning", "critical"), errors
    assert any(e["metric"] == "error_rate_5xx_pct" and e["value"] > 5 for e in errors["evidence"]), errors

    postmortem = await stack.postmortem(ident)
    assert f"backend `{BACKEND}`" in postmortem
    assert ALERT in postmortem and "5xx error rate" in postmortem
    written = Path(stack.postmortem_dir, incident["postmortem_file"])
    assert written.read_text(encoding="utf-8") == postmortem  # the endpoint serves the file

    # The backend heals: the alert resolves, and so does the incident, with its times.
    await stack.set_demo_mode("healthy")
    done = await resolved(stack, ident)
    assert not firing(await stack.prometheus_alerts(), ALERT)
    assert done["ended_at"] is not None and done["resolve_notified_at"] is not None
    kinds = [entry["kind"] for entry in done["timeline"]]
    assert kinds[0] == "onset" and {"notified", "diagnosed", "resolved", "resolve_notified"} <= set(kinds), kinds
    final = written.read_text(encoding="utf-8")
    assert "**Status:** Resolved" in final and f"backend `{BACKEND}`" in final and ALERT in final

    # Nothing but this incident: the traffic stayed steady throughout, and reached the clients.
    assert [i["id"] for i in await stack.incidents()] == [ident]
    assert stack.traffic.answers["500"] > 0 and stack.traffic.answers["200"] > 0, stack.traffic.answers


@pytest.mark.e2e
async def test_a_slow_backend_then_a_stopped_one_make_one_incident_re_opened_naming_each_signal(stack: Stack):
    # Slow: every answer takes 1.5 s. P99 crosses 1 s; the critical inhibits the P95 warning.
    await stack.set_demo_mode("slow", delay_ms="1500")
    slow = await incident_for(stack, "BackendLatencyHigh", known=set())
    assert {(a["labels"]["signal"], a["labels"]["severity"]) for a in slow["alerts"]} == {("latency", "critical")}
    (latency,) = [f for f in slow["report"]["findings"] if f["specialist"] == "latency"]
    assert latency["severity"] == "critical", latency
    assert any(e["metric"] == "latency_p99_ms" and e["value"] > 1000 for e in latency["evidence"]), latency
    postmortem = await stack.postmortem(slow["id"])
    assert f"backend `{BACKEND}`" in postmortem and "P99" in postmortem
    await stack.set_demo_mode("healthy")
    await resolved(stack, slow["id"])

    # Stopped: HAProxy retries, marks the server down and answers 503 itself. Minutes after the latency
    # resolved, on the same backend: a flap of the same failure, so the incident re-opens.
    await stack.stop_backend()
    down = await stack.wait_for(
        "the incident to re-open and be analysed again", lambda: stack.incident(slow["id"]),
        lambda found: found["status"] == "open" and not found["analysis_pending"]
        and ALERT in {a["alertname"] for a in found["alerts"]},
        timeout=FIRE_SECONDS + NOTIFY_SECONDS)
    assert "reopened" in [entry["kind"] for entry in down["timeline"]], down["timeline"]
    assert [i["id"] for i in await stack.incidents()] == [slow["id"]]
    await stack.settled()  # the report is stored before the post-mortem is written again
    (errors,) = [f for f in down["report"]["findings"] if f["specialist"] == "errors"]
    assert errors["severity"] in ("warning", "critical"), errors
    assert stack.traffic.answers["503"] > 0, stack.traffic.answers
    postmortem = await stack.postmortem(down["id"])
    assert f"backend `{BACKEND}`" in postmortem and ALERT in postmortem
    assert "SC" in postmortem, postmortem  # the termination state of refused connections
    await stack.start_backend()
    await resolved(stack, down["id"])


async def incident_for(stack: Stack, alertname: str, *, known: set[str]) -> dict:
    """The new incident for `alertname`, once analysed: its row of the list and its whole record."""
    def new(found: list[dict]) -> list[dict]:
        return [i for i in found if i["id"] not in known and alertname in i["alertnames"]]

    (row,) = new(await stack.wait_for(f"an incident for {alertname}", stack.incidents, new,
                                      timeout=FIRE_SECONDS + NOTIFY_SECONDS))
    incident = await stack.wait_for("its analysis", lambda: stack.incident(row["id"]),
                                    lambda found: found["report"] is not None, timeout=NOTIFY_SECONDS)
    assert incident["report"]["backend"] == BACKEND and incident["analysis_error"] is None
    await stack.settled()  # the report is stored before the post-mortem is written again
    return {**row, **incident}


async def resolved(stack: Stack, ident: str) -> dict:
    incident = await stack.wait_for(
        "the incident to resolve and be checked", lambda: stack.incident(ident),
        lambda found: found["status"] == "resolved" and found["recheck"] is not None, timeout=RESOLVE_SECONDS,
    )
    assert all(incident["durations_seconds"][name] is not None
               for name in ("time_to_detect", "time_to_diagnose", "time_to_resolve")), incident
    await stack.settled()  # the recheck is stored before the post-mortem is written again
    return incident


def rules_by_name(text: str) -> list[tuple[str, dict]]:
    return [(rule.get("record") or rule["alert"], rule.get("labels", {}))
            for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]


@pytest.mark.promtool
def test_the_test_sized_rules_are_the_production_rules_with_shorter_durations(tmp_path: Path):
    thresholds = service_settings().thresholds
    production = render_rules(thresholds)[RULE_FILE]
    short = render_rules(thresholds, timing=E2E_TIMING)[RULE_FILE]
    assert rules_by_name(short) == rules_by_name(production)
    durations = set(re.findall(r"\[(\w+)\]|offset (\w+)|for: (\w+)", short))
    # the traffic baseline keeps its hour, five minutes back; the spike's full-baseline check
    # looks back over both together
    assert {d for found in durations for d in found if d} == {"15s", "5s", "30s", "1h", "5m", "3900s"}
    assert "over the last 15 seconds" in short and "over the last minute" not in short
    if shutil.which("promtool") is None:
        pytest.skip("promtool not on PATH (Debian package `prometheus`)")
    (path,) = write_rules(thresholds, tmp_path / "rules", timing=E2E_TIMING)
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
