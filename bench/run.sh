#!/bin/sh
# make bench: the table (bench/run.py: BENCH_SECONDS, BENCH_CONNECTIONS,
# BENCH_QUICK=1, BENCH_ONLY=passthrough for the chat and responses
# pass-through rows alone), instructions per request (bench/instructions.py, callgrind),
# the parse time of the worst 8 MiB JSON bodies (bench/json_parse.c), the
# semantic cache's index (bench/vindex.c: lookup p50/p99, recall@1, memory), then
# the soak (bench/soak.py: SOAK_REQUESTS; SOAK=0 skips it).
cd "$(dirname "$0")/.." || exit 1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
python3 bench/run.py "$@" || exit 1
python3 bench/instructions.py || exit 1
./build/bench/json_parse || exit 1
./build/bench/vindex || exit 1
[ "${SOAK:-1}" = 0 ] && exit 0
exec python3 bench/soak.py
