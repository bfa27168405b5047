#!/usr/bin/env bash
# Run every fuzz target for N seconds (default 30); exit non-zero if any target crashes.
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
fail=0
for t in $(RUSTC_BOOTSTRAP=1 cargo fuzz list); do
    if RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"/tmp/fuzz-$t.log" 2>&1; then
        echo "$t: ok ($(grep -o 'Done [0-9]* runs' "/tmp/fuzz-$t.log" | tail -1))"
    else
        echo "$t: FAILED (see /tmp/fuzz-$t.log)"; fail=1
    fi
done
exit $fail
