#!/bin/bash
# Runs one cargo-fuzz target until its fuzzer process has used CPU_SECS of
# CPU (user+sys), then interrupts it; prints libFuzzer's final stats.
#   fuzz/run-cpu.sh names 600
set -u
t=$1; cpu=${2:-600}
cd "$(dirname "$0")"
mkdir -p corpus-run/$t logs
cp -n corpus/$t/* corpus-run/$t/ 2>/dev/null || true
nice -n 19 cargo +nightly fuzz run "$t" corpus-run/$t -- -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 > logs/$t.log 2>&1 &
# find the fuzzer binary (child) pid
for i in $(seq 1 600); do
  pid=$(pgrep -f "x86_64-unknown-linux-gnu/release/$t -artifact" | head -1)
  [ -n "$pid" ] && break; sleep 1
done
hz=$(getconf CLK_TCK)
start=$(date +%s)
while kill -0 $pid 2>/dev/null; do
  used=$(awk -v hz=$hz '{print int(($14+$15)/hz)}' /proc/$pid/stat 2>/dev/null || echo 0)
  if [ "$used" -ge "$cpu" ]; then kill -INT $pid; break; fi
  sleep 5
done
wait
end=$(date +%s)
echo "$t cpu_s=$used wall_s=$((end-start))" > logs/$t.cpu
cat logs/$t.cpu
grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov: " logs/$t.log | tail -3
grep -E "^#[0-9]+" logs/$t.log | tail -1
