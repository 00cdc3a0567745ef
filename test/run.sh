#!/bin/sh
# Runs every test: unit binaries, fuzz corpus replays, integration suite.
# Each prints "PASS name" / "FAIL name" lines; this script counts them and ends
# with "N passed, N failed". Exit status 0 only if nothing failed.
cd "$(dirname "$0")/.." || exit 2
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(pwd)/test/lsan.supp:print_suppressions=0}"
out=build/test/results.txt
mkdir -p build/test
: > "$out"
crashed=0

run_one() { # name, command...
    name=$1; shift
    log=build/test/log.$(echo "$name" | tr '/ ' '__')
    "$@" > "$log" 2>&1
    rc=$?
    cat "$log" >> "$out"
    grep -E '^(PASS|FAIL|NOTE) ' "$log" # NOTE: figures a test reports (not counted)
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$log"; then
        echo "FAIL $name: exited $rc without a FAIL line (crash or sanitizer report):"
        tail -40 "$log"
        echo "FAIL $name (exit $rc)" >> "$out"
        crashed=$((crashed + 1))
    fi
}

for t in build/test/unit/test_*; do
    [ -x "$t" ] && run_one "$(basename "$t")" "$t"
done
for f in build/test/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    n=$(basename "$f")
    run_one "$n" "$f" "test/fuzz/corpus/$n"
done
run_one integration python3 test/integration/run.py ${SLUICE_TESTS:-}

passed=$(grep -c '^PASS ' "$out")
failed=$(grep -c '^FAIL ' "$out")
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
