"""Memory: past incidents and their post-mortems, archived, and recalled for each new incident.

What the rest of the service may use is listed in `__all__`.
"""

from .archive import ARCHIVE_FILE, Archive, PastEntry, Stamp
from .evaluation import RecallCase, RecallEvaluation, evaluate_recall, format_recall
from .library import MAX_FILE_BYTES, PostmortemLibrary, SyncResult, Unreadable, import_folder, read_markdown

__all__ = [
    "ARCHIVE_FILE",
    "Archive",
    "MAX_FILE_BYTES",
    "PastEntry",
    "PostmortemLibrary",
    "RecallCase",
    "RecallEvaluation",
    "Stamp",
    "SyncResult",
    "Unreadable",
    "evaluate_recall",
    "format_recall",
    "import_folder",
    "read_markdown",
]
