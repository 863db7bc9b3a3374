"""`incident-copilot eval`: the scenarios replayed into private redis-servers, the table printed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from agents import LLMClient, format_eval_table, run_eval

from ..app import connect
from ..embedded_redis import start_embedded_redis
from ..memory import evaluate_recall, format_recall
from ..resources import resource_dir
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
    recalled = print_recall()
    return 0 if all(row.passed for row in rows) and recalled else 1


def print_recall(recall_set: Path | None = None) -> bool:
    """The recall set's table, recall@1 and recall@3; True when every case came first (or none, as it should)."""
    recall_set = recall_set or resource_dir("tests/fixtures/recall")
    if not (recall_set / "cases.json").is_file():
        print(f"\nrecall set not found at {recall_set}: run eval from a checkout for recall@1 and recall@3")
        return True
    evaluation = evaluate_recall(recall_set)
    print(f"\nsimilar past incidents ({recall_set}):")
    print(format_recall(evaluation))
    return all(case.passed for case in evaluation.cases)
