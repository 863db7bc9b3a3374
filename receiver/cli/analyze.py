"""The client side of `incident-copilot analyze`: `POST /analyze`, the report printed."""

from __future__ import annotations

import sys
from datetime import datetime

import aiohttp
from agents import Report, format_report


async def analyze_remote(url: str, *, token: str | None, at: datetime | None, window: int | None,
                         backend: str | None, as_json: bool) -> int:
    body: dict = {}
    if at is not None:
        body["at"] = at.isoformat()
    if window is not None:
        body["window_minutes"] = window
    if backend:
        body["backend"] = backend
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=180)) as session:
            async with session.post(url.rstrip("/") + "/analyze", json=body) as resp:
                text = await resp.text()
                if resp.status != 200:
                    print(f"analysis failed ({resp.status}): {text}", file=sys.stderr)
                    return 1
    except aiohttp.ClientConnectionError as exc:
        print(f"cannot reach the service at {url}: {exc} (is `incident-copilot serve` running?)", file=sys.stderr)
        return 1
    if as_json:
        print(text)
    else:
        print(format_report(Report.model_validate_json(text)))
    return 0
