"""Addresses in text: which a markdown renderer would link, which are trusted, and how to show the others inert."""

from __future__ import annotations

import re
from collections.abc import Iterable

# What GitHub-flavoured markdown turns into a link by itself (www., emails), and any explicit scheme.
LINKABLE = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.|\bmailto:)[^\s<>\"'`)\]]*|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)
TRAILING = ".,;:!?"


def foreign_urls(text: str, allowed: frozenset[str]) -> list[str]:
    """Addresses in `text` (anything markdown would link) other than the `allowed` ones."""
    found = [m.group(0).rstrip(TRAILING) for m in LINKABLE.finditer(text)]
    return [url for url in found if url not in allowed]


def urls_in(values: Iterable[str]) -> set[str]:
    """The addresses in trusted text (an alert's annotations, the service's own URL), as a link would show them."""
    return {m.group(0).rstrip(TRAILING) for value in values for m in LINKABLE.finditer(value)}


def defang(text: str) -> str:
    """`text` with every address made inert ("https[:]//evil[.]example"), to quote what was rejected."""
    return LINKABLE.sub(lambda m: m.group(0).replace(":", "[:]").replace(".", "[.]").replace("@", "[@]"), text)
