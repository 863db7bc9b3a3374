"""Incident ids and post-mortem file names: short, URL-safe, and never a path of their own."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime

INCIDENT_ID = re.compile(r"^inc-[0-9]{8}-[0-9a-f]{8}$")
POSTMORTEM_FILE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}-[a-z0-9-]{1,80}\.md$")
_MAX_SLUG = 60


def incident_id(group_key: str, entry_id: str, opened_at: datetime) -> str:
    """`inc-YYYYMMDD-<8 hex>`, derived from the notification that opened it, so a replay derives the same."""
    digest = hashlib.sha256(f"{group_key}\0{entry_id}".encode()).hexdigest()[:8]
    return f"inc-{opened_at:%Y%m%d}-{digest}"


def is_incident_id(value: str) -> bool:
    return INCIDENT_ID.fullmatch(value) is not None


def slugify(text: str, *, fallback: str = "incident") -> str:
    """Lower-case ASCII words joined by dashes: "Backend api: 5xx > 5%" -> "backend-api-5xx-5"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) > _MAX_SLUG:
        slug = slug[:_MAX_SLUG].rsplit("-", 1)[0] or slug[:_MAX_SLUG]
    return slug.strip("-") or fallback


def postmortem_file_name(incident: str, title: str, opened_at: datetime) -> str:
    """`YYYY-MM-DD-<slug>-<id hex>.md`: the date it opened, what it is about, and which incident."""
    return f"{opened_at:%Y-%m-%d}-{slugify(title)}-{incident.rsplit('-', 1)[-1]}.md"


def is_postmortem_file(name: str) -> bool:
    return POSTMORTEM_FILE.fullmatch(name) is not None
