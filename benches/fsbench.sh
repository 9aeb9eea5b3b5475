#!/usr/bin/env bash
# fsbench.sh - fixed filesystem workload for comparing (encrypted) FUSE filesystems.
# kmsfs's copy of ../shared/bench/fsbench.sh (knobs added: FSBENCH_SIZE_MB,
# FSBENCH_FIO_RUNTIME, FSBENCH_PID). Driven by benches/fs.sh.
#
# Usage:  fsbench.sh MOUNTPOINT [LABEL]
#         fsbench.sh --make-tar [OUT.tar]     (re-create the small-files tarball)
#
# Runs inside an already-mounted directory (creates and removes its own
# sub-directory MOUNTPOINT/.fsbench.<pid>) and prints one line per metric:
#
#     LABEL METRIC VALUE UNIT
#
# Lines starting with '#' are comments (metadata); progress goes to stderr.
# Must run as root (it writes /proc/sys/vm/drop_caches before every cold step).
#
# Metrics (all single-threaded, one process):
#   seq_write        MB/s  dd if=/dev/zero bs=1M count=$FSBENCH_SIZE_MB conv=fsync (dd's own figure, 10^6 B/s)
#   seq_read         MB/s  drop caches, dd bs=1M of that file to /dev/null
#   rss_seq_write    kB    only with FSBENCH_PID: VmHWM of that process right after seq_write
#   rss_end          kB    only with FSBENCH_PID: VmHWM of that process at the end
#   rand4k_read      IOPS  fio psync direct=0 bs=4k randread over a 256 MiB file, cold cache,
#                          exactly one random pass (each 4k block once), capped at
#                          $FSBENCH_FIO_RUNTIME s (default 10)
#   rand4k_write     IOPS  same file, cold cache, one random pass of 4k writes, same cap
#                          (no fsync inside fio; the flush is timed separately:)
#   rand4k_fsync     s     `sync FILE` (fsync) right after the random-write pass
#   untar            s     tar -xf of $FSBENCH_TAR (--no-same-owner), no sync
#   untar_sync       s     global `sync` right after the untar
#   ls_lR            s     drop caches, ls -lR tree >/dev/null
#   du_s             s     drop caches, du -s tree
#   cat_all          s     drop caches, find tree -type f -exec cat {} + >/dev/null
#   rm_rf            s     drop caches, rm -rf tree
#   total            s     wall time of the whole script
#
# Environment:
#   FSBENCH_TAR     small-files tarball (default /tmp/bench-src.tar; see --make-tar)
#   FSBENCH_PHASES  subset of "seq fio small" (default: all three)
#   FSBENCH_VERIFY  1 = also run `tar -df` on the extracted tree (untimed) and
#                   print "LABEL verify ok|FAIL"
#   FSBENCH_SIZE_MB size of the sequential file in MiB (default 1024)
#   FSBENCH_FIO_RUNTIME  cap of each fio pass in seconds (default 10)
#   FSBENCH_PID     PID of the FUSE daemon: report its VmHWM (peak RSS)
#
# Exit status: 0 ok, 2 usage / missing mountpoint / precondition failure,
#              1 a workload step failed.

set -uo pipefail
export LC_ALL=C

die() { echo "fsbench: error: $*" >&2; exit 2; }
log() { echo "fsbench: $*" >&2; }

# --------------------------------------------------------------------------
# Tarball creation (done once per machine; deterministic given the same tree)
# --------------------------------------------------------------------------
# The small-files tree is synthetic and seeded, so every machine builds the same one:
# 21,700 files in 1,400 folders, sizes log-normal (median ~2 KiB, mean ~8 KiB, long tail; ~170 MB).
if [[ "${1:-}" == "--make-tar" ]]; then
    out=${2:-/tmp/bench-src.tar}
    src=$(mktemp -d /tmp/fsbench-tree.XXXXXX)
    python3 - "$src" <<'PY' || die "tree generation failed"
import os, random, sys
root = sys.argv[1]; rnd = random.Random(20261128)
dirs = [os.path.join(root, "tree")]
for i in range(1, 1400):
    dirs.append(os.path.join(rnd.choice(dirs), f"d{i:04d}"))
for d in dirs:
    os.makedirs(d, exist_ok=True)
for i in range(21700):
    n = min(int(rnd.lognormvariate(7.7, 1.6)), 4 << 20)
    with open(os.path.join(rnd.choice(dirs), f"f{i:05d}.dat"), "wb") as f:
        f.write(rnd.randbytes(n))
PY
    tar -C "$src" --sort=name --mtime='2024-01-01 00:00:00Z' \
        --owner=0 --group=0 --numeric-owner --format=gnu -cf "$out" tree || die "tar failed"
    rm -rf "$src"
    ls -l "$out"
    tar -tvf "$out" | awk '$1 ~ /^-/ {n++; b+=$3} $1 ~ /^d/ {d++} END {printf "%d files, %d dirs, %d bytes of file data\n", n, d, b}'
    sha256sum "$out"
    exit 0
fi

# --------------------------------------------------------------------------
# Arguments and preconditions
# --------------------------------------------------------------------------
if [[ $# -lt 1 || $# -gt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,44p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi

MNT=$1
LABEL=${2:-$(basename "$MNT")}
LABEL=${LABEL// /_}
TAR=${FSBENCH_TAR:-/tmp/bench-src.tar}
PHASES=${FSBENCH_PHASES:-"seq fio small"}
VERIFY=${FSBENCH_VERIFY:-0}
SIZE_MB=${FSBENCH_SIZE_MB:-1024}
FIO_RUNTIME=${FSBENCH_FIO_RUNTIME:-10}
DPID=${FSBENCH_PID:-}

[[ -e "$MNT" ]] || die "mountpoint '$MNT' does not exist"
[[ -d "$MNT" ]] || die "mountpoint '$MNT' is not a directory"
[[ -w "$MNT" ]] || die "mountpoint '$MNT' is not writable"
[[ $EUID -eq 0 ]] || die "must run as root (needs /proc/sys/vm/drop_caches)"
[[ -w /proc/sys/vm/drop_caches ]] || die "/proc/sys/vm/drop_caches not writable"
for t in dd fio tar find du ls awk; do
    command -v "$t" >/dev/null || die "required tool '$t' not found"
done
if [[ " $PHASES " == *" small "* ]]; then
    [[ -r "$TAR" ]] || die "small-files tarball '$TAR' not readable (create it with: $0 --make-tar $TAR)"
fi
if ! mountpoint -q "$MNT"; then
    log "warning: '$MNT' is not itself a mountpoint (fine for a plain-directory baseline)"
fi

W="$MNT/.fsbench.$$"
mkdir "$W" 2>/dev/null || die "cannot create work dir '$W'"

cleanup() {
    local rc=$?
    if [[ -n "${W:-}" && -d "$W" ]]; then
        log "cleaning up $W"
        rm -rf -- "$W" || log "warning: could not fully remove $W"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
emit() { printf '%s %s %s %s\n' "$LABEL" "$1" "$2" "$3"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
fail() { log "step '$1' failed"; emit "$1" FAIL -; exit 1; }

# time a command (stdout/stderr of the command discarded unless it fails)
timed() {  # timed METRIC cmd...
    local m=$1; shift
    local t0 t1 errf="$W/.err"
    t0=$(now)
    "$@" >/dev/null 2>"$errf" || { cat "$errf" >&2; fail "$m"; }
    t1=$(now)
    emit "$m" "$(elapsed "$t0" "$t1")" s
}

# dd, return MB/s computed from dd's own byte count and seconds
dd_mbs() {  # dd_mbs METRIC dd-args...
    local m=$1; shift
    local out
    out=$(dd "$@" 2>&1) || { echo "$out" >&2; fail "$m"; }
    echo "$out" | awk -v L="$LABEL" -v M="$m" '/copied/ {
        for (i = 1; i <= NF; i++) if ($i == "s," || $i == "s") secs = $(i-1);
        printf "%s %s %.1f MB/s\n", L, M, $1 / secs / 1e6 }'
}

# fio single random pass; prints IOPS
fio_pass() {  # fio_pass METRIC rw
    local m=$1 rw=$2 out iops rt
    out=$(fio --name="$m" --filename="$W/fio.dat" --size=256M --bs=4k --rw="$rw" \
              --ioengine=psync --direct=0 --iodepth=1 --numjobs=1 --runtime="$FIO_RUNTIME" \
              --randrepeat=1 --invalidate=1 --fallocate=none --minimal 2>&1) \
        || { echo "$out" >&2; fail "$m"; }
    # terse v3: 8=read iops, 9=read runtime ms, 49=write iops, 50=write runtime ms
    if [[ $rw == randread ]]; then
        iops=$(echo "$out" | tail -1 | awk -F';' '{print $8}'); rt=$(echo "$out" | tail -1 | awk -F';' '{print $9}')
    else
        iops=$(echo "$out" | tail -1 | awk -F';' '{print $49}'); rt=$(echo "$out" | tail -1 | awk -F';' '{print $50}')
    fi
    [[ -n "$iops" && "$iops" != 0 ]] || { echo "$out" >&2; fail "$m"; }
    emit "$m" "$iops" IOPS
    echo "# $m fio_runtime_ms=$rt"
}

# peak RSS (VmHWM, kB) of the daemon, if we were told its PID
emit_hwm() {  # emit_hwm METRIC
    [[ -n "$DPID" && -r /proc/$DPID/status ]] || return 0
    emit "$1" "$(awk '/^VmHWM:/ {print $2}' "/proc/$DPID/status")" kB
}

cpu_busy_idle() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
T_START=$(now)
read -r CPU_B0 CPU_I0 < <(cpu_busy_idle)
echo "# fsbench label=$LABEL mnt=$MNT fstype=$(findmnt -no FSTYPE -T "$MNT" 2>/dev/null | head -1) src=$(findmnt -no SOURCE -T "$MNT" 2>/dev/null | head -1) kernel=$(uname -r) cpus=$(nproc) date=$(date -u +%FT%TZ) loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"

# --------------------------------------------------------------------------
# 1. Sequential 1 GiB write / cold read
# --------------------------------------------------------------------------
if [[ " $PHASES " == *" seq "* ]]; then
    log "seq_write"
    drop_caches
    dd_mbs seq_write if=/dev/zero of="$W/seq.dat" bs=1M count="$SIZE_MB" conv=fsync
    emit_hwm rss_seq_write
    log "seq_read"
    drop_caches
    dd_mbs seq_read if="$W/seq.dat" of=/dev/null bs=1M
    size=$(stat -c %s "$W/seq.dat")
    [[ $size -eq $((SIZE_MB << 20)) ]] || { log "seq.dat has size $size"; fail seq_size; }
    rm -f "$W/seq.dat"
fi

# --------------------------------------------------------------------------
# 2. Random 4k IOPS (fio) on a 256 MiB file
# --------------------------------------------------------------------------
if [[ " $PHASES " == *" fio "* ]]; then
    log "fio layout"
    dd if=/dev/zero of="$W/fio.dat" bs=1M count=256 conv=fsync status=none || fail fio_layout
    log "rand4k_read"
    drop_caches
    fio_pass rand4k_read randread
    log "rand4k_write"
    drop_caches
    fio_pass rand4k_write randwrite
    timed rand4k_fsync sync "$W/fio.dat"
    rm -f "$W/fio.dat"
fi

# --------------------------------------------------------------------------
# 3. Small files: untar / ls -lR / du -s / cat all / rm -rf
# --------------------------------------------------------------------------
if [[ " $PHASES " == *" small "* ]]; then
    read -r exp_files exp_bytes < <(tar -tvf "$TAR" | awk '$1 ~ /^-/ {n++; b+=$3} END {print n+0, b+0}')
    echo "# small tar=$TAR files=$exp_files bytes=$exp_bytes"
    mkdir "$W/tree" || fail untar
    drop_caches
    log "untar"
    timed untar tar --no-same-owner -xf "$TAR" -C "$W/tree"
    timed untar_sync sync
    log "ls -lR"
    drop_caches
    timed ls_lR ls -lR "$W/tree"
    log "du -s"
    drop_caches
    timed du_s du -s "$W/tree"
    log "cat all"
    drop_caches
    timed cat_all find "$W/tree" -type f -exec cat {} +
    # untimed sanity check: file count and total size must match the tarball
    read -r got_files got_bytes < <(find "$W/tree" -type f -printf '%s\n' | awk '{n++; b+=$1} END {print n+0, b+0}')
    if [[ $got_files != "$exp_files" || $got_bytes != "$exp_bytes" ]]; then
        log "tree mismatch: files $got_files/$exp_files bytes $got_bytes/$exp_bytes"
        fail tree_check
    fi
    if [[ $VERIFY == 1 ]]; then
        log "verify (tar -d)"
        if tar -df "$TAR" -C "$W/tree" >/dev/null 2>&1; then emit verify ok -; else emit verify FAIL -; fi
    fi
    log "rm -rf"
    drop_caches
    timed rm_rf rm -rf "$W/tree"
fi

emit total "$(elapsed "$T_START" "$(now)")" s
emit_hwm rss_end
# noise indicator: whole-machine CPU busy % during the run (includes the FUSE
# daemon and this script's children, so compare between runs of the same FS)
read -r CPU_B1 CPU_I1 < <(cpu_busy_idle)
times > "$W/.times"
echo "# end loadavg=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,) machine_busy_pct=$(awk -v b=$((CPU_B1-CPU_B0)) -v i=$((CPU_I1-CPU_I0)) 'BEGIN {printf "%.0f", 100*b/(b+i)}') children_cpu=$(tail -1 "$W/.times" | tr ' ' /)"
