"""`incident-copilot notify --check`: read the notifications file as the service would, and say what it does."""

from __future__ import annotations

import sys
from pathlib import Path

from ..notify import ConfigError, NotifyConfig, load_config


def check(path: Path | None) -> int:
    if path is None:
        print("no notifications file: set NOTIFY_CONFIG or pass --config", file=sys.stderr)
        return 2
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: valid")
    for line in describe(config):
        print(f"  {line}")
    return 0


def describe(config: NotifyConfig) -> list[str]:
    """Each receiver and where it delivers, without a secret."""
    lines = []
    for receiver in config.receivers:
        places = [t.describe().split(" (", 1)[1].rstrip(")") for t in config.targets_of(receiver.name)]
        lines.append(f"receiver {receiver.name}: {'; '.join(places) or 'nothing (drops what it is sent)'}")
    g = config.global_
    lines.append(f"deliveries given up after {g.give_up_after:g} s; {g.concurrency} events at once")
    return lines
