#!/bin/sh
# Fuzzes each named target (default: all) for SECONDS of wall time, starting
# from a copy of its committed corpus in corpus-run/<target> (not committed),
# and prints the final libFuzzer stats line and the CPU time used.
#   nice -n 19 fuzz/run.sh 600 file_header names
set -eu
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=${*:-$(ls fuzz_targets | sed 's/\.rs$//')}
for t in $targets; do
    mkdir -p corpus-run/$t logs
    cp -n corpus/$t/* corpus-run/$t/ 2>/dev/null || true
    /usr/bin/time -f "$t cpu_user=%U cpu_sys=%S wall=%e" -o logs/$t.time \
        cargo +nightly fuzz run "$t" corpus-run/$t -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        > logs/$t.log 2>&1 || echo "$t: exited non-zero (crash? see fuzz/logs/$t.log, fuzz/artifacts/$t)"
    grep -E '^#[0-9]+ +DONE' logs/$t.log | tail -1 || true
    cat logs/$t.time
done
