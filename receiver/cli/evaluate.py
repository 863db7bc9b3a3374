"""`incident-copilot eval`: the scenarios replayed into private redis-servers, the table printed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from agents import LLMClient, format_eval_table, run_eval

from ..app import connect
from ..embedded_redis import start_embedded_redis
from ..settings import Settings


async def run_scenarios(settings: Settings, *, scenarios: list[str] | None = None) -> int:
    config = settings.analysis_config()
    llm = LLMClient.from_config(config)
    with tempfile.TemporaryDirectory(prefix="incident-copilot-eval-") as scratch:
        main = await start_embedded_redis(Path(scratch) / "main")
        small = await start_embedded_redis(Path(scratch) / "saturation", maxmemory="16mb")
        redis, saturation = connect(main.url), connect(small.url)
        try:
            kwargs = {"scenarios": scenarios} if scenarios else {}
            rows = await run_eval(redis, config=config, llm=llm, saturation_redis=saturation, **kwargs)
        finally:
            await redis.aclose()
            await saturation.aclose()
            if llm is not None:
                await llm.close()
            await main.stop()
            await small.stop()
    print(f"mode: {'llm (' + config.model + ')' if llm else 'rules'}")
    print(format_eval_table(rows))
    return 0 if all(row.passed for row in rows) else 1
