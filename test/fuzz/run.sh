#!/bin/sh
# run.sh — `make fuzz`: each libFuzzer target for FUZZ_SECONDS (default 60).
#
# New inputs land in build/fuzz/new/TARGET; at the end only those that add
# coverage are merged into test/fuzz/corpus/TARGET (libFuzzer -merge=1), so the
# corpus `make test` replays stays small. A finding leaves its reproducer in
# build/fuzz/ (crash-*, leak-*, timeout-*); the other targets still run, and
# the exit status is 1.
set -u
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
failed=""
for f in "$@"; do
    n=$(basename "$f")
    corpus=test/fuzz/corpus/$n new=build/fuzz/new/$n
    mkdir -p "$corpus" "$new"
    echo "fuzz: $n for ${secs}s"
    if ! "$f" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix=build/fuzz/ -print_final_stats=1 "$new" "$corpus"; then
        echo "fuzz: $n FOUND SOMETHING (see build/fuzz/)"
        failed="$failed $n"
        continue
    fi
    before=$(ls "$corpus" | wc -l)
    "$f" -merge=1 "$corpus" "$new" >/dev/null 2>&1
    echo "fuzz: $n clean; corpus $before -> $(ls "$corpus" | wc -l) inputs"
done
[ -z "$failed" ] || { echo "fuzz: findings in:$failed"; exit 1; }
