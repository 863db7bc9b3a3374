"""Every benchmark in turn, each with its defaults; the soak short unless asked for in full.

    .venv/bin/python bench/run_all.py [--full-soak]

`--full-soak`, or BENCH_FULL_SOAK=1 in the environment, runs the soak for its default
10 minutes instead of `SHORT_SOAK_MINUTES`. Exits 1 where any benchmark did.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHORT_SOAK_MINUTES = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-soak", action="store_true", default=os.environ.get("BENCH_FULL_SOAK") == "1",
                        help="the soak for its full default length (also BENCH_FULL_SOAK=1)")
    args = parser.parse_args()
    runs = [["bench_ingest.py"], ["bench_workers.py"], ["bench_syslog.py"], ["bench_analysis.py"],
            ["bench_big_answer.py"], ["bench_notify.py"], ["bench_recall.py"],
            ["bench_soak.py"] if args.full_soak else ["bench_soak.py", "--minutes", str(SHORT_SOAK_MINUTES)]]
    failed = []
    for script, *flags in runs:
        print(f"==> {script} {' '.join(flags)}".rstrip(), flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / script), *flags])
        print(f"<== {script}: exit {code} after {time.monotonic() - started:.0f} s\n", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
