#!/usr/bin/env bash
# Run every fuzz target; exit non-zero if any target crashes.
#
#   fuzz/run-all.sh [SECS]                 every target for SECS seconds (default 30)
#   fuzz/run-all.sh --long [RUNS [SECS]]   every target until RUNS inputs (default 10,000,000)
#                                          or SECS seconds (default 1800), seeded from the
#                                          captures (fuzz/seeds.py); prints a Markdown table
#   TARGETS="frame inspect" fuzz/run-all.sh ...   only these targets
set -uo pipefail
cd "$(dirname "$0")"
long=0
if [ "${1:-}" = "--long" ]; then
    long=1
    runs=${2:-10000000}
    secs=${3:-1800}
else
    runs=0
    secs=${1:-30}
fi
seeds=()
if [ $long = 1 ]; then
    python3 seeds.py seeds >/dev/null || exit 1
    echo "| target | inputs run | seconds | inputs/s | corpus | result |"
    echo "|---|---:|---:|---:|---:|---|"
fi
fail=0
targets=${TARGETS:-$(RUSTC_BOOTSTRAP=1 cargo fuzz list)}
for t in $targets; do
    log="/tmp/fuzz-$t.log"
    mkdir -p "corpus/$t"
    seeds=()
    [ $long = 1 ] && [ -d "seeds/$t" ] && seeds=("seeds/$t")
    start=$(date +%s)
    if RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
        -runs="$runs" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (see $log)"; fail=1
    fi
    took=$(( $(date +%s) - start ))
    # The fuzzing itself, without the build: "Done N runs in S second(s)".
    n=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -ao 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    ran=$(grep -ao 'Done [0-9]* runs in [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    took=${ran:-$took}
    size=$(ls "corpus/$t" | wc -l)
    if [ $long = 1 ]; then
        echo "| \`$t\` | ${n:-?} | $took | ${rate:-?} | $size | $result |"
    else
        echo "$t: $result (${n:-?} runs in ${took} s)"
    fi
done
exit $fail
