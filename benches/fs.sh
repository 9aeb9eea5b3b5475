#!/usr/bin/env bash
# fs.sh - kmsfs against its peers, side by side in one run (issue 7).
#
# Usage:  sudo benches/fs.sh            (after `cargo build --release`)
#
# For each round, for each filesystem in turn: a fresh backing dir on the same
# disk, mount, benches/fsbench.sh (1 GiB sequential write/read with caches
# dropped, fio random 4 KiB read/write, untar ~21.7k files / ls -lR / du /
# cat all / rm -rf), unmount. kmsfs additionally: daemon peak RSS (VmHWM)
# after the sequential write, and with 10,000 files held open on a freshly
# mounted daemon (benches/hold_open.py). Then benches/summarize.py prints
# medians and ratios (kmsfs vs the better of gocryptfs/securefs, vs bindfs,
# vs ext4) and the issue-7 target checks, and writes them as Markdown + JSON.
#
# Filesystems (labels):
#   ext4          the backing directory itself (the floor)
#   bindfs        plaintext passthrough FUSE (libfuse2, -o big_writes)
#   gocryptfs     gocryptfs defaults (AES-256-GCM)
#   securefs      securefs defaults (full format)
#   kmsfs-aes     kmsfs init --cipher aes-256-gcm (format version 2: encrypted names)
#   kmsfs-chacha  kmsfs init --cipher chacha20-poly1305 (format version 2)
#   kmsfs-aes-v1  kmsfs init --cipher aes-256-gcm --plaintext-names (format version 1)
#
# Environment knobs:
#   ROUNDS=3            rounds (medians are taken over rounds)
#   SIZE_MB=1024        sequential file size
#   FSES="ext4 bindfs gocryptfs securefs kmsfs-aes kmsfs-chacha"
#   PHASES="seq fio small"   fsbench phases
#   FIO_RUNTIME=10      cap per fio pass, s (a pass is one sweep of 65,536 4k ops)
#   OPEN_FILES=10000    files held open for the RSS figure (0 = skip)
#   KMSFS=target/release/kmsfs    the binary under test
#   KMSFS_MOUNT_ARGS=""  extra `kmsfs mount` arguments (e.g. "--threads 8")
#   BENCH_ROOT=/var/tmp/kmsfs-bench   backing stores + mountpoints (must be on the disk under test)
#   FSBENCH_TAR=/var/tmp/kmsfs-bench-src.tar   small-files tarball (built if missing, deterministic)
#   RESULTS=benches/results/<UTC timestamp>    output dir: raw.txt, raw.log, summary.md, summary.json
#   QUIET_PCT=15 QUIET_MAX=60   before each run wait up to QUIET_MAX s for machine CPU busy <= QUIET_PCT %
#
# Needs root (drop_caches, mounts), /dev/fuse, fio, gocryptfs, securefs, bindfs.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ROUNDS=${ROUNDS:-3}
SIZE_MB=${SIZE_MB:-1024}
FSES=${FSES:-"ext4 bindfs gocryptfs securefs kmsfs-aes kmsfs-chacha"}
PHASES=${PHASES:-"seq fio small"}
FIO_RUNTIME=${FIO_RUNTIME:-10}
OPEN_FILES=${OPEN_FILES:-10000}
KMSFS=${KMSFS:-$REPO/target/release/kmsfs}
KMSFS_MOUNT_ARGS=${KMSFS_MOUNT_ARGS:-}
ROOT=${BENCH_ROOT:-/var/tmp/kmsfs-bench}
TAR=${FSBENCH_TAR:-/var/tmp/kmsfs-bench-src.tar}
RESULTS=${RESULTS:-$HERE/results/$(date -u +%Y%m%dT%H%M%SZ)}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_MAX=${QUIET_MAX:-60}
PASS=benchpass
TAR_SHA256=af4be4361f3e02c47ee0e007d92729e7a09640bdbd7d77be02ec63c3b8e57f39

die() { echo "fs.sh: error: $*" >&2; exit 2; }
log() { echo "fs.sh: $*" >&2; }

[[ $EUID -eq 0 ]] || die "must run as root"
[[ -c /dev/fuse ]] || die "/dev/fuse missing"
for fs in $FSES; do
    case $fs in
    ext4) ;;
    bindfs | gocryptfs | securefs) command -v "$fs" >/dev/null || die "$fs not installed (apt-get install $fs)" ;;
    kmsfs-aes | kmsfs-chacha | kmsfs-aes-v1) [[ -x $KMSFS ]] || die "$KMSFS missing (cargo build --release)" ;;
    *) die "unknown filesystem '$fs'" ;;
    esac
done
command -v fio >/dev/null || die "fio not installed (apt-get install fio)"

mkdir -p "$ROOT" "$RESULTS"
RAW=$RESULTS/raw.txt
LOG=$RESULTS/raw.log
: >"$RAW"
: >"$LOG"

if [[ " $PHASES " == *" small "* && ! -r $TAR ]]; then
    log "building the small-files tarball $TAR (once)"
    bash "$HERE/fsbench.sh" --make-tar "$TAR" >&2
fi
if [[ " $PHASES " == *" small "* ]]; then
    sha=$(sha256sum "$TAR" | cut -d' ' -f1)
    [[ $sha == "$TAR_SHA256" ]] || log "warning: $TAR has sha256 $sha, not the reference $TAR_SHA256"
fi

# ------------------------------------------------------------------ mounts
wait_mounted() {
    for _ in $(seq 300); do mountpoint -q "$1" && return 0; sleep 0.1; done
    echo "fs.sh: $1 did not get mounted" >&2; return 1
}

# PID of the kmsfs daemon serving mountpoint $1 (the daemonised `kmsfs mount`)
kmsfs_pid() {
    local m=$1 p
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/exe" 2>/dev/null) == "$(readlink -f "$KMSFS")" ]] || continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- " mount .* $m\( \|$\)" && { basename "$p"; return 0; }
    done
    return 1
}

kmsfs_mount() {  # kmsfs_mount CIPHER BACKING MOUNTPOINT [init [INIT_ARGS...]]
    local cipher=$1 b=$2 m=$3
    if [[ ${4:-} == init ]]; then
        KMSFS_KEYSTORE=$ROOT/ks "$KMSFS" init "$b" --cipher "$cipher" "${@:5}" >>"$LOG" 2>&1
    fi
    # shellcheck disable=SC2086
    KMSFS_KEYSTORE=$ROOT/ks "$KMSFS" mount "$b" "$m" --log-file "$m.log" $KMSFS_MOUNT_ARGS >>"$LOG" 2>&1
    wait_mounted "$m"
}

do_mount() {  # do_mount FS -> prints mountpoint
    local fs=$1 m="$ROOT/$1"
    rm -rf "${m:?}" "$m".*
    mkdir -p "$m"
    case $fs in
    ext4) ;;
    bindfs)
        mkdir -p "$m.back"
        # libfuse2: without big_writes every write is 4 KiB
        bindfs -o big_writes "$m.back" "$m" >>"$LOG" 2>&1 ;;
    gocryptfs)
        printf '%s\n' "$PASS" >"$m.pass"
        mkdir -p "$m.cipher"
        gocryptfs -init -q -passfile "$m.pass" "$m.cipher" >>"$LOG" 2>&1
        gocryptfs -q -passfile "$m.pass" "$m.cipher" "$m" >>"$LOG" 2>&1 ;;
    securefs)
        mkdir -p "$m.data"
        securefs create --pass "$PASS" "$m.data" >>"$LOG" 2>&1
        securefs mount -b --pass "$PASS" "$m.data" "$m" >>"$LOG" 2>&1
        wait_mounted "$m" ;;
    kmsfs-aes) mkdir -p "$m.back"; kmsfs_mount aes-256-gcm "$m.back" "$m" init ;;
    kmsfs-chacha) mkdir -p "$m.back"; kmsfs_mount chacha20-poly1305 "$m.back" "$m" init ;;
    kmsfs-aes-v1) mkdir -p "$m.back"; kmsfs_mount aes-256-gcm "$m.back" "$m" init --plaintext-names ;;
    esac
    echo "$m"
}

do_umount() {
    local fs=$1 m="$ROOT/$1"
    if mountpoint -q "$m"; then
        case $fs in
        kmsfs-*) "$KMSFS" umount "$m" >>"$LOG" 2>&1 || umount "$m" ;;
        *) fusermount -u "$m" 2>>"$LOG" || fusermount3 -u "$m" 2>>"$LOG" || umount "$m" ;;
        esac
    fi
    for _ in $(seq 100); do mountpoint -q "$m" || break; sleep 0.1; done
    mountpoint -q "$m" && { log "warning: $m still mounted"; return 1; }
    rm -rf "${m:?}" "$m".*
}

cleanup() {
    for fs in $FSES; do mountpoint -q "$ROOT/$fs" 2>/dev/null && do_umount "$fs"; done
    return 0
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

busy_pct() {  # machine-wide CPU busy % over $1 seconds
    local a b
    a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat); sleep "$1"
    b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
    echo "$a $b" | awk '{db=$3-$1; di=$4-$2; printf "%d", 100*db/(db+di)}'
}
wait_quiet() {
    local t=0 b
    while :; do
        b=$(busy_pct 2); t=$((t + 2))
        if ((b <= QUIET_PCT)); then echo "$b"; return 0; fi
        if ((t >= QUIET_MAX)); then echo "$b(gave-up)"; return 0; fi
        sleep 3; t=$((t + 3))
    done
}

# 10k files held open on a freshly mounted kmsfs daemon: create them on one
# mount, remount (fresh daemon, fresh VmHWM), open them all and hold.
open_files_rss() {  # open_files_rss FS
    local fs=$1 m="$ROOT/$1" cipher pid
    ((OPEN_FILES > 0)) || return 0
    python3 "$HERE/hold_open.py" create "$m/open" "$OPEN_FILES" || { echo "# open_files create failed fs=$fs" >>"$RAW"; return 0; }
    "$KMSFS" umount "$m" >>"$LOG" 2>&1
    cipher=aes-256-gcm; [[ $fs == kmsfs-chacha ]] && cipher=chacha20-poly1305
    kmsfs_mount "$cipher" "$m.back" "$m" || { echo "# remount failed fs=$fs" >>"$RAW"; return 0; }
    pid=$(kmsfs_pid "$m") || { echo "# no daemon pid fs=$fs" >>"$RAW"; return 0; }
    echo "# $fs fresh daemon pid=$pid VmHWM_before=$(awk '/^VmHWM:/ {print $2}' /proc/$pid/status) kB nofile_limit=$(awk '/Max open files/ {print $4 "/" $5}' /proc/$pid/limits)" >>"$RAW"
    python3 "$HERE/hold_open.py" hold "$m/open" "$OPEN_FILES" "$pid" "$fs" >>"$RAW" 2>>"$LOG" \
        || echo "# hold_open failed fs=$fs" >>"$RAW"
}

# ------------------------------------------------------------------ run
{
    echo "# fs.sh date=$(date -u +%FT%TZ) rounds=$ROUNDS size_mb=$SIZE_MB phases=\"$PHASES\" fses=\"$FSES\" fio_runtime=$FIO_RUNTIME"
    echo "# machine nproc=$(nproc) kernel=$(uname -r) cpu=\"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\" mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
    echo "# disk root=$ROOT fstype=$(findmnt -no FSTYPE -T "$ROOT") src=$(findmnt -no SOURCE -T "$ROOT") opts=$(findmnt -no OPTIONS -T "$ROOT")"
    echo "# kmsfs=$KMSFS $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO" && git diff --quiet -- src 2>/dev/null || echo +dirty-src) mount_args=\"$KMSFS_MOUNT_ARGS\""
    echo "# versions gocryptfs=\"$(gocryptfs -version 2>/dev/null | head -1)\" securefs=\"$(securefs version 2>&1 | head -1)\" bindfs=\"$(bindfs --version 2>/dev/null | head -1)\" fio=$(fio --version)"
} >>"$RAW"

for r in $(seq "$ROUNDS"); do
    for fs in $FSES; do
        log "round $r/$ROUNDS: $fs"
        if ! m=$(do_mount "$fs"); then
            echo "# mount failed fs=$fs run=$r" >>"$RAW"; do_umount "$fs" || true; continue
        fi
        pid=""
        case $fs in kmsfs-*) pid=$(kmsfs_pid "$m") || pid="" ;; esac
        q=$(wait_quiet)
        echo "# run=$r fs=$fs pre_busy_pct=$q daemon_pid=$pid" >>"$RAW"
        FSBENCH_TAR=$TAR FSBENCH_PHASES=$PHASES FSBENCH_SIZE_MB=$SIZE_MB \
            FSBENCH_FIO_RUNTIME=$FIO_RUNTIME FSBENCH_PID=$pid \
            "$HERE/fsbench.sh" "$m" "$fs" >>"$RAW" 2>>"$LOG" \
            || echo "# fsbench failed rc=$? fs=$fs run=$r" >>"$RAW"
        case $fs in kmsfs-*) open_files_rss "$fs" ;; esac
        [[ -f $m.log ]] && cp "$m.log" "$RESULTS/$fs.r$r.daemon.log" 2>/dev/null
        do_umount "$fs" || true
    done
done

python3 "$HERE/summarize.py" --json "$RESULTS/summary.json" "$RAW" | tee "$RESULTS/summary.md"
log "results in $RESULTS"
