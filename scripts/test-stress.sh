#!/usr/bin/env bash
# Runs the whole suite RUNS times (default 10) beside BURNERS CPU-bound processes (default 2),
# stopping at the first failure: a busy CI machine, on demand, for tests that depend on speed.
# Arguments go to pytest. Each run's output is kept under var/test-stress/. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-10}
burner_count=${BURNERS:-2}
python=${PYTHON:-.venv/bin/python}
logs=var/test-stress
mkdir -p "$logs"

burners=()
stop_burners() {
  for pid in "${burners[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
}
# Ctrl-C reaches pytest too, which then stops what its fixtures started before it exits.
trap stop_burners EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq "$burner_count"); do
  "$python" -c 'while True: pass' &
  burners+=("$!")
done
echo "test-stress: $runs runs of the suite beside $burner_count CPU burners; logs in $logs/"

for run in $(seq "$runs"); do
  log="$logs/run-$run.log"
  started=$SECONDS
  if "$python" -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1; then
    echo "run $run/$runs: $(tail -n 1 "$log" | tr -d '=') ($((SECONDS - started)) s)"
  else
    echo "run $run/$runs: FAILED after $((SECONDS - started)) s; see $log"
    grep -E '^(FAILED|ERROR) ' "$log" || tail -n 20 "$log"
    exit 1
  fi
done
echo "test-stress: all $runs runs passed"
