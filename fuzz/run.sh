#!/usr/bin/env bash
# Usage: fuzz/run.sh [--dev] [SECONDS [LIBFUZZER_FLAG...]]
# Builds every fuzz target (optimized; with --dev unoptimized, which builds in a third of the
# time and runs 2-15 times fewer inputs per second: the test suite's short pass), replays the kept reproducers of past crashes (fuzz/regressions/),
# then fuzzes each target for SECONDS (default 60), OCICAS_FUZZ_JOBS targets at once (default:
# the number of cores), from its seeds and the corpus it grew before. Prints executions, execs/s and coverage per target; exits non-zero
# when any reproducer or fuzz run crashed. Further arguments go to libFuzzer: with
# `-fork=1 -ignore_crashes=1` a run goes on past a crash (the count is in the summary, the
# inputs in fuzz/artifacts/). Needs only `cargo install --locked cargo-fuzz`.
set -uo pipefail

profile=()
if [ "${1:-}" = --dev ]; then
    profile=(--dev)
    shift
fi
seconds=${1:-60}
shift || true
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz_dir/.."

# cargo-fuzz passes -Z flags (sanitizer, coverage) to rustc; this lets the stable toolchain
# accept them, so no nightly is needed.
export RUSTC_BOOTSTRAP=1
# The targets create a layout per input: on a tmpfs that costs no disk and no fsync.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

targets=$(cargo fuzz list)
cargo fuzz build "${profile[@]}" || exit 1

jobs=${OCICAS_FUZZ_JOBS:-$(nproc)}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

# Replays the target's reproducers, then fuzzes it; writes its summary line to $results/TARGET
# and, when something crashed, $results/TARGET.failed.
fuzz_target() {
    local target=$1 failure=()
    if [ -d "fuzz/regressions/$target" ]; then
        for reproducer in "fuzz/regressions/$target"/*; do
            if ! cargo fuzz run "${profile[@]}" "$target" "$reproducer" > "fuzz/regressions-$target.log" 2>&1; then
                echo "REGRESSION: $reproducer crashes $target (see fuzz/regressions-$target.log)"
                failure+=("$target (reproducer $(basename "$reproducer"))")
            fi
        done
    fi

    local corpus=("fuzz/corpus/$target")
    mkdir -p "${corpus[0]}"
    if [ -d "fuzz/seeds/$target" ]; then
        corpus+=("fuzz/seeds/$target")
    fi
    local log="fuzz/run-$target.log" result
    echo "== $target: ${seconds}s (log: $log)"
    if cargo fuzz run "${profile[@]}" "$target" "${corpus[@]}" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "${libfuzzer_flags[@]}" > "$log" 2>&1; then
        result=ok
    else
        result=CRASH
        failure+=("$target")
        grep -a -m1 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" "$log"
        grep -a -E "^artifact_prefix|Test unit written to" "$log"
    fi
    # libFuzzer's final statistics; in fork mode, its last status line.
    local runs rate cov crashes
    runs=$(grep -a -o -E 'stat::number_of_executed_units: *[0-9]+|^#[0-9]+:' "$log" | tail -1 | grep -o -E '[0-9]+')
    rate=$(grep -a -o -E 'stat::average_exec_per_sec: *[0-9]+|exec/s: [0-9]+' "$log" | tail -1 | grep -o -E '[0-9]+$')
    cov=$(grep -a -o -E 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    crashes=$(grep -a -o -E 'oom/timeout/crash: [0-9/]+' "$log" | tail -1)
    printf '%-24s %-6s runs=%-9s execs/s=%-6s %s %s\n' \
        "$target" "$result" "${runs:-?}" "${rate:-?}" "$cov" "$crashes" > "$results/$target"
    if [ ${#failure[@]} -gt 0 ]; then
        printf '%s\n' "${failure[@]}" > "$results/$target.failed"
    fi
}

libfuzzer_flags=("$@")
for target in $targets; do
    while [ "$(jobs -r | wc -l)" -ge "$jobs" ]; do
        wait -n
    done
    fuzz_target "$target" &
done
wait

summary=()
failed=()
for target in $targets; do
    summary+=("$(cat "$results/$target")")
    if [ -f "$results/$target.failed" ]; then
        mapfile -t -O "${#failed[@]}" failed < "$results/$target.failed"
    fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
