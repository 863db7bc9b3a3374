"""Untrusted text made safe to show: bounded, escaped for each surface, and links only of known origin.

Alert labels and annotations, log-derived names and the model's words all reach a chat
message. None of them may break its markup, mention a channel, or smuggle a link in.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_URL = 3000  # Slack's limit on a button's URL; Teams' is no lower in practice
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MARKDOWN = re.compile(r"([\\`*_~\[\]()<>#|])")


def printable(text: str) -> str:
    """The text without control characters (line breaks and tabs kept)."""
    return _CONTROL.sub("", text)


def clip(text: str, limit: int, *, marker: str = "…") -> str:
    """At most `limit` characters, the cut shown with `marker`; control characters dropped."""
    text = _CONTROL.sub("", text)
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker


def one_line(text: str, limit: int) -> str:
    return clip(" ".join(_CONTROL.sub("", text).split()), limit)


def mrkdwn(text: str) -> str:
    """Slack's three control characters escaped: no link, mention or markup can come from the text."""
    return _CONTROL.sub("", text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_clip(text: str, limit: int) -> str:
    """Escape, then bound by the escaped length (what Slack counts)."""
    return clip_escaped(mrkdwn(text), limit)


def clip_escaped(escaped: str, limit: int) -> str:
    """Bound text already escaped for Slack, never cutting an entity (`&amp;`) in half."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def markdown(text: str) -> str:
    """Markdown's active characters escaped (Adaptive Cards' TextBlock and FactSet read markdown)."""
    return _MARKDOWN.sub(r"\\\1", _CONTROL.sub("", text))


def safe_url(url: str | None) -> str | None:
    """The URL if a chat client may open it: http(s), with a host, no spaces or control characters, bounded."""
    if not url or len(url) > MAX_URL or any(c.isspace() for c in url) or _CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url
