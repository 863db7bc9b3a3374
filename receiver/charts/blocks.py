"""A row of block characters for a terminal: the shape of a signal in one line."""

from __future__ import annotations

from collections.abc import Sequence

_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], *, top: float | None = None) -> str:
    """One character a value, ▁ for 0 to █ for `top` (default the highest); a space where None."""
    known = [v for v in values if v is not None]
    span = max(known, default=0.0) if top is None else top
    out = []
    for value in values:
        if value is None:
            out.append(" ")
        elif span <= 0:
            out.append(_BLOCKS[0])
        else:
            share = min(value, span) / span
            out.append(_BLOCKS[min(len(_BLOCKS) - 1, max(0, round(share * (len(_BLOCKS) - 1))))])
    return "".join(out)
