"""`incident-copilot analyze` against the real app: the report, then a sparkline a signal."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from receiver.app import create_app
from receiver.appkeys import INCIDENTS
from receiver.cli.analyze import analyze_remote, signal_sparklines
from receiver.settings import Settings
from tests.receiver.ui.scene import deploy_regression


def test_each_signal_gets_a_line_with_its_shape_and_figures() -> None:
    points = [{"minute": f"2026-11-25T16:{m:02d}:00Z", "requests": 100 if m != 3 else 0,
               "p99_ms": 2000.0 if m >= 4 else 100.0, "error_rate_5xx_pct": 20.0 if m >= 4 else 0.0,
               "error_rate_4xx_pct": 1.0} for m in range(6)]
    heading, requests, p99, e5, e4 = signal_sparklines(points, "api")
    assert heading.startswith("Signals on backend api, 16:00 to 16:05 UTC")
    assert requests.split()[:2] == ["requests", "███▁██"]
    assert "  P99       ▁▁▁ ██  " in p99  # a minute without requests is a gap
    assert p99.endswith("last 2,000 ms, peak 2,000 ms")
    assert e5.endswith("last 20.0 %, peak 20.0 %")
    assert e4.startswith("  4xx rate")


@pytest.mark.parametrize("read_token", [None, "r34d"])
async def test_analyze_prints_the_report_and_the_sparklines(fake_redis: Redis, settings: Settings, aiohttp_client,
                                                            capsys, read_token: str | None) -> None:
    settings = Settings(_env_file=None, **{**settings.model_dump(), "read_token": read_token})
    client = await aiohttp_client(create_app(settings, redis=fake_redis))
    await deploy_regression(client, client.app[INCIDENTS])
    url = str(client.make_url("/"))
    assert await analyze_remote(url, token=None, at=None, window=30, backend="api", as_json=False,
                                read_token=read_token) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "Signals on backend api" in out, (out[-1500:], captured.err)
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Signals on backend api"))
    names = [line.split()[0] for line in lines[start + 1:start + 5]]
    assert names == ["requests", "P99", "5xx", "4xx"]
    # Half an hour of the regression and its recovery, a character a minute.
    assert all(sum(char in "▁▂▃▄▅▆▇█" for char in line) >= 25 for line in lines[start + 1:start + 5]), lines
    assert "█" in lines[start + 2] and "▁" in lines[start + 2]  # P99 rose and fell
