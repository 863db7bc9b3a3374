"""The client side of `incident-copilot analyze`: `POST /analyze`, the report printed with a sparkline a signal."""

from __future__ import annotations

import sys
from datetime import datetime

import aiohttp
from agents import Report, format_report

from ..charts import sparkline

SPARKLINE_MAX_MINUTES = 120


async def analyze_remote(url: str, *, token: str | None, at: datetime | None, window: int | None,
                         backend: str | None, as_json: bool, read_token: str | None = None) -> int:
    body: dict = {}
    if at is not None:
        body["at"] = at.isoformat()
    if window is not None:
        body["window_minutes"] = window
    if backend:
        body["backend"] = backend
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = url.rstrip("/")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
            async with session.post(base + "/analyze", json=body, headers=headers) as resp:
                text = await resp.text()
                if resp.status != 200:
                    print(f"analysis failed ({resp.status}): {text}", file=sys.stderr)
                    return 1
            if as_json:
                print(text)
                return 0
            report = Report.model_validate_json(text)
            print(format_report(report))
            await _print_sparklines(session, base, report, read_token)
    except aiohttp.ClientConnectionError as exc:
        print(f"cannot reach the service at {url}: {exc} (is `incident-copilot serve` running?)", file=sys.stderr)
        return 1
    return 0


async def _print_sparklines(session: aiohttp.ClientSession, base: str, report: Report,
                            read_token: str | None) -> None:
    start = report.baseline_start or report.window_start
    minutes = min(SPARKLINE_MAX_MINUTES, int(report.window_end.timestamp() // 60 - start.timestamp() // 60) + 1)
    scope = report.culprit or report.backend
    params = {"minutes": str(minutes), "at": report.window_end.isoformat(), **({"backend": scope} if scope else {})}
    headers = {"Authorization": f"Bearer {read_token}"} if read_token else {}
    async with session.get(base + "/metrics/series", params=params, headers=headers) as resp:
        if resp.status != 200:
            print(f"(no sparklines: GET /metrics/series answered {resp.status})", file=sys.stderr)
            return
        series = await resp.json()
    print()
    print("\n".join(signal_sparklines(series["points"], scope)))


def signal_sparklines(points: list[dict], backend: str | None) -> list[str]:
    """A heading and one line a signal: its shape a minute a character, then its last and its peak value."""
    if not points:
        return []
    first, last = points[0]["minute"][11:16], points[-1]["minute"][11:16]
    lines = [f"Signals on {f'backend {backend}' if backend else 'all backends'}, {first} to {last} UTC, "
             "a character a minute:"]
    rows = (("requests", "requests", "{:,.0f}/min"), ("P99", "p99_ms", "{:,.0f} ms"),
            ("5xx rate", "error_rate_5xx_pct", "{:.1f} %"), ("4xx rate", "error_rate_4xx_pct", "{:.1f} %"))
    for name, key, unit in rows:
        values = [p[key] if p["requests"] or key == "requests" else None for p in points]
        known = [v for v in values if v is not None]
        figures = f"last {unit.format(known[-1])}, peak {unit.format(max(known))}" if known else "no requests"
        lines.append(f"  {name:<9} {sparkline(values)}  {figures}")
    return lines
