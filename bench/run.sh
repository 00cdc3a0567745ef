#!/bin/sh
# make bench: see bench/run.py. BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_QUICK=1.
cd "$(dirname "$0")/.." || exit 1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec python3 bench/run.py "$@"
