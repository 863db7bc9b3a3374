"""Memory's pure parts: fingerprints compared with reasons, the query, the floor, post-mortems read by headings."""

from __future__ import annotations

import pytest

from agents import Fingerprint, SimilarIncident, fingerprint_comment, query_terms, read_postmortem
from agents.fingerprint import fingerprint_in
from agents.memory import (
    RELEVANCE_FLOOR,
    fingerprint_similarity,
    mention_similarity,
    past_fix_line,
    quotation,
    relevant,
)
from agents.report import Severity
from agents.synthesis_check import Measured, check_conclusion

REFUSING = Fingerprint(backend="payments", signals={"errors": Severity.critical}, causes=["connection_refused"],
                       status_codes=["503"], termination_states=["SC"], servers=["payments2"], hour=9)


def test_the_same_failure_on_the_same_backend_is_alike_and_says_why() -> None:
    score, why = fingerprint_similarity(REFUSING, REFUSING.model_copy(update={"hour": 10}))
    assert score == 1.0
    assert why == ["same backend payments", "same termination state SC", "same cause connection refused",
                   "same status 503", "same server payments2", "same signals (errors)",
                   "same time of day (10:00 UTC)"]


def test_another_failure_of_the_backend_is_less_alike_than_the_same_failure_elsewhere() -> None:
    slow = Fingerprint(backend="payments", signals={"latency": Severity.critical}, causes=["slow_server"], hour=14)
    elsewhere = REFUSING.model_copy(update={"backend": "billing", "servers": ["billing3"]})
    assert fingerprint_similarity(REFUSING, slow)[0] < fingerprint_similarity(REFUSING, elsewhere)[0]
    assert fingerprint_similarity(REFUSING, Fingerprint())[0] == 0.0
    # Only the signal and the hour in common: half of what those parts would weigh.
    other = Fingerprint(backend="search", signals={"errors": Severity.warning}, causes=["auth_failures"], hour=9)
    score, why = fingerprint_similarity(REFUSING, other)
    assert why == ["same signals (errors)", "same time of day (09:00 UTC)"] and score < 0.1


def test_the_query_names_the_backend_the_state_in_words_and_the_findings() -> None:
    terms = query_terms(REFUSING, ["payments returns 31 % 5xx", "SC connections refused"])
    assert terms[:3] == ["payments", "payments2", "sc"]
    assert {"connections", "refused", "503"} <= set(terms)
    assert "31" not in terms and "returns" not in terms
    # The names count twice: they say which system it was.
    assert terms.count("payments") == 2 and terms.count("payments2") == 2


def test_below_the_floor_is_none_similar() -> None:
    def found(score: float, date: str) -> SimilarIncident:
        return SimilarIncident(title=f"t{score}", file=f"{date}.md", date=date, score=score)

    assert relevant([found(RELEVANCE_FLOOR - 0.01, "2026-01-01")]) == []
    kept = relevant([found(0.5, "2026-01-01"), found(0.9, "2025-01-01"), found(0.5, "2026-06-01"),
                     found(0.4, "2026-07-01")], limit=3)
    assert [s.date for s in kept] == ["2025-01-01", "2026-06-01", "2026-01-01"]  # ties: the newer first


GENERATED = """# Incident inc-20261002-aaaabbbb: payments: 30 % 5xx

## Resolution

All alerts resolved at 2026-10-02 10:00:00 UTC.

- **How it was mitigated:** {mitigation}
- **Root cause:** _to be confirmed by the team._
"""


def test_a_generated_post_mortem_has_a_mitigation_only_once_the_team_wrote_one() -> None:
    draft = read_postmortem("2026-10-02-payments-aaaabbbb.md",
                            GENERATED.format(mitigation="_to be filled in by the team._"))
    assert draft.mitigation is None and draft.root_cause is None  # the Resolution heading is the service's text
    assert (draft.incident_id, draft.date, draft.title) == ("inc-20261002-aaaabbbb", "2026-10-02", "payments: 30 % 5xx")
    edited = read_postmortem("2026-10-02-payments-aaaabbbb.md",
                             GENERATED.format(mitigation="Drained **payments2**, then rolled back."))
    assert edited.mitigation == "Drained payments2, then rolled back."


@pytest.mark.parametrize(("markdown", "mitigation", "root_cause"), [
    ("# Outage\n\n## Root cause\nA bad port.\n\n## Mitigation\n- Drained web-2.\n\n## Action items\n- x\n",
     "Drained web-2.", "A bad port."),
    ("# Outage\n\n### Resolution\nRolled back 7.3.\n", "Rolled back 7.3.", None),
    ("Slow search\n===========\n\nRoot cause\n----------\nGC pauses.\n\nFix\n---\nRaised the heap.\n",
     "Raised the heap.", "GC pauses."),
    ("# Report\n\n- **Root cause:** full disk.\n- **Resolution:** cleaned /var/log.\n", "cleaned /var/log.",
     "full disk."),
    ("# Störung\n\n## Ursache\nFalscher Port.\n\n## Maßnahmen\nbilling3 in den Wartungsmodus gesetzt.\n",
     "billing3 in den Wartungsmodus gesetzt.", "Falscher Port."),
    ("# Panne\n\n## Cause racine\nCertificat expiré.\n\n## Correctif\nCertificat renouvelé.\n",
     "Certificat renouvelé.", "Certificat expiré."),
    ("# Notes\n\nWe restarted everything and it worked.\n", None, None),
    ("# Outage\n\n## Mitigation\n\n```\n## Root cause\n```\n", "## Root cause", None),
])
def test_hand_written_post_mortems_are_read_by_their_headings(markdown: str, mitigation: str | None,
                                                              root_cause: str | None) -> None:
    past = read_postmortem("notes.md", markdown)
    assert (past.mitigation, past.root_cause) == (mitigation, root_cause)


def test_a_quotation_is_one_bounded_paragraph_with_inert_links() -> None:
    quoted = quotation("Ran the fix from https://evil.example/x.sh\n\nthen " + "more " * 200)
    assert "https[:]//evil[.]example" in quoted and "\n" not in quoted
    assert len(quoted) <= 400 and quoted.endswith("\u2026")  # cut after the links are made inert
    assert quotation("   ") is None


def test_the_fingerprint_rides_in_a_comment_nothing_can_close() -> None:
    hostile = REFUSING.model_copy(update={"backend": "x --> <script>", "routes": ["GET /a--b"]})
    comment = fingerprint_comment(hostile)
    assert comment.count("-->") == 1 and comment.endswith("-->") and "<script>" not in comment
    assert fingerprint_in(f"# Title\n\n{comment}\n") == hostile
    assert fingerprint_in("<!-- incident-copilot fingerprint {\"hour\": 99} -->") is None


PAST = SimilarIncident(file="2026-10-02-payments-refusing.md", title="Payments refused connections",
                       date="2026-10-02", score=0.8, mitigation="Drained payments2 in HAProxy, then redeployed it.")


def test_the_rules_cite_the_past_fix_with_its_date_and_source() -> None:
    line = past_fix_line(PAST)
    assert line.startswith("Last time (2026-10-02, 2026-10-02-payments-refusing.md)")
    assert "\u201cDrained payments2 in HAProxy, then redeployed it.\u201d" in line
    assert past_fix_line(PAST.model_copy(update={"mitigation": None})) is None


def test_a_model_may_cite_a_past_fix_only_when_the_archive_holds_it() -> None:
    measured = Measured(severity=Severity.critical, backends=frozenset({"payments"}),
                        affected=frozenset({"payments"}), numbers={26.0}, past=(PAST,))
    cited = "Last time (2026-10-02) this was fixed by draining payments2 in HAProxy."
    invented = "Last time (2026-09-01) this was fixed by restarting the database."
    unnamed = "Previously the team drained payments2 in HAProxy."
    checked = check_conclusion("payments: 26 % 5xx", "payments2 refuses connections.", [cited, invented, unnamed],
                               playbook=[], measured=measured)
    assert checked.rejected is None and checked.recommendations == (cited,)
    assert all("archive does not hold" in d for d in checked.dropped) and len(checked.dropped) == 2
    alone = check_conclusion("payments: 26 % 5xx", "payments2 refuses connections.", [cited], playbook=[],
                             measured=Measured(severity=Severity.critical, backends=frozenset({"payments"}),
                                               affected=frozenset({"payments"}), numbers={26.0}))
    assert alone.rejected == "no recommendation passed the checks"


def test_a_past_fix_quoted_in_a_generated_post_mortem_is_not_its_own_mitigation() -> None:
    quoting = GENERATED.format(mitigation="_to be filled in by the team._") + (
        "\n## Similar incidents\n\n1. [Old](old.md) (2026-01-02): similarity 0.80; same backend payments.\n"
        "   - **How it was mitigated** (old.md, 2026-01-02): \u201cDrained payments2.\u201d\n"
        "   - **Root cause** (old.md): \u201cA bad port.\u201d\n")
    past = read_postmortem("2026-10-02-payments-aaaabbbb.md", quoting)
    assert past.mitigation is None and past.root_cause is None


def test_a_post_mortem_without_a_fingerprint_is_compared_by_what_it_names_of_ours() -> None:
    named = {"payments", "payments2", "sc", "503", "refused"}
    score, why = mention_similarity(REFUSING, named)
    assert score == 1.0
    assert why == ["mentions backend payments", "mentions termination state SC", "mentions status 503",
                   "mentions server payments2"]
    assert mention_similarity(REFUSING, {"503"})[0] < 0.1  # a status code alone is no likeness
    assert mention_similarity(Fingerprint(signals={"traffic": Severity.critical}), named) == (None, [])
