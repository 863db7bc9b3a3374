"""Untrusted text reaches a model only as JSON inside a delimited block it cannot close."""

from __future__ import annotations

import re
from typing import Any

import orjson

_TAG = re.compile(r"^[a-z][a-z_]*$")


def compact_json(data: Any) -> str:
    """JSON with `<`, `>` and `&` escaped, so no string inside can open or close a block."""
    text = orjson.dumps(data).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def quote_untrusted(tag: str, data: Any) -> str:
    """`<tag>` + JSON + `</tag>`; the system prompt tells the model such blocks are data, never instructions."""
    if not _TAG.match(tag):
        raise ValueError(f"bad block tag {tag!r}")
    return f"<{tag}>\n{compact_json(data)}\n</{tag}>"
