#!/usr/bin/env bash
# profile.sh - where does the kmsfs daemon spend a workload? (guides tuning)
#
# Usage:  sudo benches/profile.sh          (after `cargo build --release`)
#
# Mounts a fresh kmsfs volume and runs fsbench.sh phases twice:
#   1. under `perf record -g` attached to the daemon (on-CPU samples, user +
#      kernel) -> perf.report.txt (flat, by symbol) and perf.dso.txt (by DSO);
#   2. under `strace -c -f` attached to the daemon -> strace.txt (syscall
#      counts and time; strace slows the daemon a lot, so only the counts and
#      the relative shares are meaningful, never the fsbench timings of run 2).
# Also records the FUSE request mix seen by the daemon as syscall counts.
#
# Environment: PHASES="small" (fsbench phases), STEPS="perf strace", CIPHER=aes-256-gcm,
#   SIZE_MB=1024, KMSFS=target/release/kmsfs, KMSFS_MOUNT_ARGS="",
#   BENCH_ROOT=/var/tmp/kmsfs-bench, FSBENCH_TAR=/var/tmp/kmsfs-bench-src.tar,
#   OUT=benches/results/profile-<UTC timestamp>
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PHASES=${PHASES:-small}
STEPS=${STEPS:-"perf strace"}
CIPHER=${CIPHER:-aes-256-gcm}
SIZE_MB=${SIZE_MB:-1024}
KMSFS=${KMSFS:-$REPO/target/release/kmsfs}
KMSFS_MOUNT_ARGS=${KMSFS_MOUNT_ARGS:-}
ROOT=${BENCH_ROOT:-/var/tmp/kmsfs-bench}
TAR=${FSBENCH_TAR:-/var/tmp/kmsfs-bench-src.tar}
OUT=${OUT:-$HERE/results/profile-$(date -u +%Y%m%dT%H%M%SZ)}
[[ $EUID -eq 0 ]] || { echo "profile.sh: must run as root" >&2; exit 2; }
for t in perf strace; do command -v $t >/dev/null || { echo "profile.sh: $t missing" >&2; exit 2; }; done
mkdir -p "$OUT" "$ROOT"
B=$ROOT/prof.back M=$ROOT/prof

mount_fresh() {
    mountpoint -q "$M" && "$KMSFS" umount "$M"
    rm -rf "$B" "$M"; mkdir -p "$B" "$M"
    KMSFS_KEYSTORE=$ROOT/ks "$KMSFS" init "$B" --cipher "$CIPHER" >/dev/null 2>&1
    # shellcheck disable=SC2086
    KMSFS_KEYSTORE=$ROOT/ks "$KMSFS" mount "$B" "$M" --log-file "$OUT/daemon.log" $KMSFS_MOUNT_ARGS
    for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done
    local p
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/exe" 2>/dev/null) == "$(readlink -f "$KMSFS")" ]] || continue
        tr '\0' ' ' <"$p/cmdline" | grep -q -- " mount .* $M\( \|$\)" && { PID=${p#/proc/}; return 0; }
    done
    echo "profile.sh: daemon not found" >&2; exit 1
}
cleanup() { mountpoint -q "$M" && "$KMSFS" umount "$M"; rm -rf "$B" "$M"; }
trap cleanup EXIT

run_fsbench() {  # run_fsbench LABEL
    FSBENCH_TAR=$TAR FSBENCH_PHASES=$PHASES FSBENCH_SIZE_MB=$SIZE_MB \
        "$HERE/fsbench.sh" "$M" "$1" 2>/dev/null
}

# 1. perf
if [[ " $STEPS " == *" perf "* ]]; then
mount_fresh
perf record -q -F 999 -g -p "$PID" -o "$OUT/perf.data" 2>/dev/null &
PERF=$!
sleep 1
run_fsbench perf | tee "$OUT/fsbench.perf.txt"
kill -INT "$PERF"; wait "$PERF" || true
perf report -i "$OUT/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null \
    | grep -v '^$' | head -80 >"$OUT/perf.report.txt" || true
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null \
    | grep -v '^$' | head -30 >"$OUT/perf.dso.txt" || true
perf report -i "$OUT/perf.data" --children --sort sym --stdio -g none 2>/dev/null \
    | grep -v '^$' | head -80 >"$OUT/perf.children.txt" || true

fi

# 2. strace -c
if [[ " $STEPS " == *" strace "* ]]; then
mount_fresh
strace -c -f -p "$PID" -o "$OUT/strace.txt" &
STRACE=$!
sleep 1
run_fsbench strace >"$OUT/fsbench.strace.txt"
kill -INT "$STRACE"; wait "$STRACE" || true
fi
echo "profile.sh: results in $OUT" >&2
head -30 "$OUT/perf.report.txt" 2>/dev/null || true; head -30 "$OUT/strace.txt" 2>/dev/null || true
