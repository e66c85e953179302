#!/bin/bash
# Issue 22 goal 9: the browser suite, run after run beside a CPU hog, until RUNS clean
# runs in a row (20) or the deadline HH:MM (UTC; tomorrow's if it has passed).
# Usage, from the repo root after `make test` installed everything:
#   bash scripts/browser-soak.sh HH:MM [RUNS]
# One line a run goes to /tmp/browser_runs.txt; run N's output to /tmp/browser_run_N.txt.
deadline=$(date -d "$1" +%s)
[ "$deadline" -lt "$(date +%s)" ] && deadline=$((deadline + 86400))
runs=${2:-20}
python3 -c 'while True: pass' &
hog=$!
trap 'kill $hog 2>/dev/null' EXIT
n=0
clean=0
while [ "$(date +%s)" -lt "$deadline" ] && [ "$clean" -lt "$runs" ]; do
  n=$((n + 1))
  start=$(date +%s)
  timeout 900 .venv/bin/pytest tests/browser -q -n 2 -p no:cacheprovider >"/tmp/browser_run_$n.txt" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then clean=$((clean + 1)); else clean=0; fi
  echo "$(date -u +%H:%M:%S) run $n rc=$rc $(($(date +%s) - start))s" \
    "load=$(cut -d' ' -f1 /proc/loadavg) clean_in_a_row=$clean $(git rev-parse --short HEAD)" \
    ":: $(tail -1 "/tmp/browser_run_$n.txt")" >>/tmp/browser_runs.txt
done
