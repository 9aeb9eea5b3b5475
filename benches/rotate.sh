#!/usr/bin/env bash
# Re-wrap benchmark (issue 4): a volume of FILES small files (default
# 100,000) is created through a kmsfs mount, unmounted, its CMK rotated on
# demand, and `kmsfs rotate` re-wraps every header. Prints files per second,
# the same walk a second time when nothing is left to do (the cost of a
# re-scan after a restart), and the system calls and bytes per re-wrapped
# file, counted with strace on a second, traced rotation (STRACE=0 skips it).
#
# Usage: sudo benches/rotate.sh [FILES]      (needs target/release/kmsfs)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kmsfs="${KMSFS:-$root/target/release/kmsfs}"
files="${1:-${FILES:-100000}}"
work="$(mktemp -d /tmp/kmsfs-rotate-bench.XXXXXX)"
trap '"$kmsfs" umount "$work/m" 2>/dev/null || true; rm -rf "$work"' EXIT
export KMSFS_KEYSTORE="$work/ks/keystore"
mkdir -p "$work/b" "$work/m"
"$kmsfs" init "$work/b" 2>/dev/null
"$kmsfs" mount "$work/b" "$work/m" --log-file "$work/log"
echo "creating $files files of 100..1100 bytes through the mount..."
t0=$(date +%s.%N)
python3 - "$work/m" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range(0, n, 1000):
    os.makedirs(f"{root}/d{d // 1000:03}", exist_ok=True)
for i in range(n):
    with open(f"{root}/d{i // 1000:03}/f{i:06}", "wb") as f:
        f.write(b"x" * (100 + i % 1000))
PY
t1=$(date +%s.%N)
echo "created in $(echo "$t1 - $t0" | bc) s"
"$kmsfs" umount "$work/m"
arn="$("$kmsfs" kms describe-key --key-id alias/kmsfs/default --query KeyMetadata.Arn --output text)"
"$kmsfs" kms rotate-key-on-demand --key-id "$arn"
sync; echo 3 > /proc/sys/vm/drop_caches
echo "--- re-wrap after rotation (cold cache):"
"$kmsfs" rotate "$work/b" 2>/dev/null
echo "--- second walk, nothing left to re-wrap:"
"$kmsfs" rotate "$work/b" 2>/dev/null
"$kmsfs" status "$work/b" | head -5
if [ "${STRACE:-1}" = 1 ] && command -v strace >/dev/null; then
  "$kmsfs" kms rotate-key-on-demand --key-id "$arn" >/dev/null
  # strace slows the walk down, not what each file costs: a second rotation,
  # traced, counts the calls and bytes per re-wrapped file.
  strace -f -o "$work/strace" "$kmsfs" rotate "$work/b" --rate 1000000 >/dev/null 2>&1 || true
  n=$(grep -c 'pwrite64(' "$work/strace" || true)
  echo "--- per re-wrapped file (strace of the walk, $n files):"
  for call in openat pread64 pwrite64 fdatasync statx write; do
    c=$(grep -c "^[0-9]* $call(" "$work/strace" || true)
    echo "  $call: $(echo "scale=2; $c / $n" | bc)"
  done
  echo "  bytes read by pread64: $(grep -o 'pread64([0-9]*, .*, \([0-9]*\), [0-9]*) = [0-9]*' "$work/strace" | awk -F' = ' '{s+=$2} END {print s}') in total"
  echo "  bytes written by pwrite64: $(grep -o 'pwrite64(.*) = [0-9]*' "$work/strace" | awk -F' = ' '{s+=$2} END {print s}') in total"
fi
