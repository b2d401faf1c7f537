#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start.sh: only the PIDs it recorded, slurmd first.
set -euo pipefail
state=${ODIN_SLURM_DIR:-/tmp/odin-slurm}
[ -f "$state/pids" ] || { echo "no test cluster recorded in $state"; exit 0; }
pids=$(tac "$state/pids")   # reverse start order: slurmd, slurmctld, munged
while read -r name pid; do
    kill -0 "$pid" 2>/dev/null || continue
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    echo "stopped $name ($pid)"
done <<<"$pids"
rm -f "$state/pids"
