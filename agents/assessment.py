"""What a deterministic evaluator concludes: a severity, the numbers behind it, and the causes it sees."""

from __future__ import annotations

from dataclasses import dataclass, field

from .report import Evidence, Severity, Specialist


@dataclass(frozen=True, slots=True)
class Cause:
    """One explanation the data supports, in a form the playbook can act on.

    `kind` is one of the playbook's keys (see `agents.playbook`); `label` is how a title
    names it ("sH server timeouts"); `weight` orders causes of the same severity.
    """

    kind: str
    severity: Severity
    label: str
    backend: str | None = None
    route: str | None = None
    codes: tuple[str, ...] = ()
    weight: float = 0.0
    facts: dict[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assessment:
    specialist: Specialist
    severity: Severity
    summary: str
    details: str
    evidence: tuple[Evidence, ...] = ()
    causes: tuple[Cause, ...] = ()
    headline: str | None = None  # the figure a title quotes, e.g. "P99 1.8 s"; None when ok
    backend: str | None = None  # the backend the numbers point at, if one stands out

    def to_context(self) -> dict:
        """The JSON a model is given first: the computed numbers and causes."""
        return {
            "specialist": self.specialist,
            "severity": self.severity.value,
            "summary": self.summary,
            **({"backend": self.backend} if self.backend else {}),
            "details": self.details,
            "evidence": [e.model_dump(mode="json", exclude_none=True) for e in self.evidence],
            "causes": [
                {
                    "kind": c.kind,
                    "severity": c.severity.value,
                    "label": c.label,
                    **({"backend": c.backend} if c.backend else {}),
                    **({"route": c.route} if c.route else {}),
                    **({"codes": list(c.codes)} if c.codes else {}),
                    **({"facts": c.facts} if c.facts else {}),
                }
                for c in self.causes
            ],
        }


def worst_cause_first(causes) -> tuple[Cause, ...]:
    return tuple(sorted(causes, key=lambda c: (-c.severity.rank, -c.weight)))
