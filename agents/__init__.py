"""Analysis of the golden signals: deterministic evaluators, specialists, synthesis, the report.

What the receiver may use is listed in `__all__`; everything else is internal.
"""

from .config import AnalysisConfig, Thresholds
from .evaluation import SCENARIOS as EVAL_SCENARIOS, EvalRow, format_eval_table, run_eval
from .llm import LLMClient
from .fingerprint import fingerprint_comment
from .memory import (
    ArchivedIncident,
    IncidentMemory,
    RecallProbe,
    explained,
    query_terms,
    rank_similar,
    words,
)
from .metrics import AnalysisMetrics
from .orchestrator import analyze
from .past_postmortem import PastPostmortem, read_postmortem
from .report import (
    Evidence,
    Finding,
    Fingerprint,
    OnsetSummary,
    Provenance,
    Report,
    Severity,
    SimilarIncident,
    TokenUsage,
)
from .request import AlertContext, AnalysisRequest
from .signals import SignalSource, SignalsUnavailable
from .terminal import format_report

__all__ = [
    "AlertContext",
    "ArchivedIncident",
    "Fingerprint",
    "IncidentMemory",
    "PastPostmortem",
    "RecallProbe",
    "SimilarIncident",
    "explained",
    "fingerprint_comment",
    "query_terms",
    "rank_similar",
    "read_postmortem",
    "words",
    "AnalysisConfig",
    "AnalysisMetrics",
    "AnalysisRequest",
    "EVAL_SCENARIOS",
    "EvalRow",
    "Evidence",
    "Finding",
    "LLMClient",
    "OnsetSummary",
    "Provenance",
    "Report",
    "Severity",
    "SignalSource",
    "SignalsUnavailable",
    "Thresholds",
    "TokenUsage",
    "analyze",
    "format_eval_table",
    "format_report",
    "run_eval",
]
