"""Numbers as an on-call engineer reads them."""

from __future__ import annotations


def ms(value: float | None) -> str:
    """1840 -> "1.8 s", 420.4 -> "420 ms"."""
    if value is None:
        return "n/a"
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms"


def pct(value: float | None) -> str:
    """12.34 -> "12 %", 5.62 -> "5.6 %"."""
    if value is None:
        return "n/a"
    if value >= 10:
        return f"{value:.0f} %"
    return f"{value:.1f} %"


def rate(value: float) -> str:
    return f"{value:.0f}/min" if value >= 10 else f"{value:.1f}/min"


def scope_label(backend: str | None) -> str:
    return f"backend={backend}" if backend else "all"
