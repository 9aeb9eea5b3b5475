#!/usr/bin/env bash
# benches/ebs.sh: fio on an attached kmsfs EBS volume's block device, side by
# side in one run with
#   plain      a loop device (direct I/O) over a sparse image on the same disk:
#              the floor, no encryption, no FUSE, and no cache at all;
#   plain-cached  the same with the loop device's direct I/O off: the image's
#              page cache is then the one cache, as for kmsfs and gocryptfs
#              (their device processes do buffered I/O on the image), so this
#              is the floor to compare with;
#   gocryptfs  a loop device (direct I/O) over an image file inside a
#              gocryptfs mount: the peer (per-file encryption under a loop);
#   kmsfs      `kmsfs ebs create-volume --encrypted` + `attach-volume`.
# Each device is filled once (sequential write of its whole size), then fio
# runs random 4 KiB reads and writes (libaio, iodepth 16, direct) and
# sequential 1 MiB reads and writes, ROUNDS times round-robin over the
# devices; the medians (min-max) and the ratios kmsfs / plain and
# kmsfs / gocryptfs are printed and written to $RESULTS/summary.md.
#
#   cargo build --release && apt-get install -y fio gocryptfs fuse3
#   sudo benches/ebs.sh            # SIZE_GIB=1 ROUNDS=3 RUNTIME=15
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KMSFS=${KMSFS:-$HERE/../target/release/kmsfs}
ROOT=${BENCH_ROOT:-/var/tmp/kmsfs-ebs-bench}
SIZE_GIB=${SIZE_GIB:-1}
ROUNDS=${ROUNDS:-3}
RUNTIME=${RUNTIME:-15}
RESULTS=${RESULTS:-$HERE/results/ebs-$(date -u +%Y%m%dT%H%M%SZ)}
for tool in fio gocryptfs losetup python3; do
  command -v "$tool" >/dev/null || { echo "ebs.sh: $tool is missing (apt-get install -y fio gocryptfs)" >&2; exit 2; }
done
[ -x "$KMSFS" ] || { echo "ebs.sh: build first: cargo build --release" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "ebs.sh: run as root (loop devices, FUSE)" >&2; exit 2; }

rm -rf "$ROOT"; mkdir -p "$ROOT" "$RESULTS"
# gocryptfs (go-fuse) runs `fusermount`; where only fuse3's fusermount3 is
# installed, give it that under the old name, for this script only.
if ! command -v fusermount >/dev/null && command -v fusermount3 >/dev/null; then
  mkdir -p "$ROOT/bin"; ln -s "$(command -v fusermount3)" "$ROOT/bin/fusermount"
  export PATH="$ROOT/bin:$PATH"
fi
export KMSFS_EBS_POOL=$ROOT/pool KMSFS_RUNTIME_DIR=$ROOT/run AWS_REGION=us-east-1
mkdir -m 700 "$KMSFS_RUNTIME_DIR"
K=(--keystore "$ROOT/keystore")
LOOPS=() ; VOL=""
cleanup() {
  [ -n "$VOL" ] && "$KMSFS" "${K[@]}" ebs detach-volume --volume-id "$VOL" --force >/dev/null 2>&1 || true
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  umount "$ROOT/gocryptfs" 2>/dev/null || true
}
trap cleanup EXIT
BYTES=$((SIZE_GIB << 30))

# plain: a sparse image under a loop device.
truncate -s "$BYTES" "$ROOT/plain.img"
PLAIN=$(losetup --find --show --direct-io=on --sector-size 4096 "$ROOT/plain.img")
LOOPS+=("$PLAIN")
truncate -s "$BYTES" "$ROOT/plain-cached.img"
CACHED=$(losetup --find --show --direct-io=off --sector-size 4096 "$ROOT/plain-cached.img")
LOOPS+=("$CACHED")

# gocryptfs: an image file inside a gocryptfs mount, under a loop device.
mkdir -p "$ROOT/gocryptfs.cipher" "$ROOT/gocryptfs"
echo benchpass > "$ROOT/gocryptfs.pass"
gocryptfs -init -q -passfile "$ROOT/gocryptfs.pass" "$ROOT/gocryptfs.cipher"
gocryptfs -q -passfile "$ROOT/gocryptfs.pass" "$ROOT/gocryptfs.cipher" "$ROOT/gocryptfs"
truncate -s "$BYTES" "$ROOT/gocryptfs/disk.img"
GOCRYPT=$(losetup --find --show --direct-io=on --sector-size 4096 "$ROOT/gocryptfs/disk.img")
LOOPS+=("$GOCRYPT")

# kmsfs: an encrypted EBS volume, attached.
KEY=$("$KMSFS" "${K[@]}" kms create-key --query KeyMetadata.Arn --output text)
VOL=$("$KMSFS" "${K[@]}" ebs create-volume --size "$SIZE_GIB" --encrypted --kms-key-id "$KEY" \
      --query VolumeId --output text)
"$KMSFS" "${K[@]}" ebs attach-volume --volume-id "$VOL" --device /dev/sdf >/dev/null
KMS_DEV=$(readlink -f "/dev/disk/by-id/kmsfs-$VOL")

declare -A DEV=([plain]=$PLAIN [plain-cached]=$CACHED [gocryptfs]=$GOCRYPT [kmsfs]=$KMS_DEV)
NAMES=(plain plain-cached gocryptfs kmsfs)
for n in "${NAMES[@]}"; do
  echo "ebs.sh: $n is ${DEV[$n]} (dio=$(cat "/sys/block/$(basename "${DEV[$n]}")/loop/dio"))" | tee -a "$RESULTS/raw.txt"
  # Fill it so reads meet sealed data, not holes.
  fio --name=fill --filename="${DEV[$n]}" --rw=write --bs=1M --direct=1 --ioengine=libaio \
      --iodepth=8 --size="$BYTES" --output-format=json > "$RESULTS/fill-$n.json"
done

job() { # name device rw bs iodepth
  fio --name="$1" --filename="$2" --rw="$3" --bs="$4" --iodepth="$5" --direct=1 \
      --ioengine=libaio --size="$BYTES" --time_based --runtime="$RUNTIME" --ramp_time=2 \
      --randrepeat=0 --norandommap --output-format=json
}
for r in $(seq "$ROUNDS"); do
  for n in "${NAMES[@]}"; do
    echo 3 > /proc/sys/vm/drop_caches
    job rand4k_read  "${DEV[$n]}" randread  4k 16 > "$RESULTS/$n-$r-rand4k_read.json"
    job rand4k_write "${DEV[$n]}" randwrite 4k 16 > "$RESULTS/$n-$r-rand4k_write.json"
    job seq_read     "${DEV[$n]}" read      1M 8  > "$RESULTS/$n-$r-seq_read.json"
    job seq_write    "${DEV[$n]}" write     1M 8  > "$RESULTS/$n-$r-seq_write.json"
    echo "ebs.sh: round $r $n done" >&2
  done
done

python3 - "$RESULTS" "$ROUNDS" <<'EOF' | tee "$RESULTS/summary.md"
import json, statistics, sys, os
res, rounds = sys.argv[1], int(sys.argv[2])
names = ["plain", "plain-cached", "gocryptfs", "kmsfs"]
metrics = [("rand4k_read", "IOPS"), ("rand4k_write", "IOPS"), ("seq_read", "MB/s"), ("seq_write", "MB/s")]
def value(path, metric):
    job = json.load(open(path))["jobs"][0]
    side = job["read"] if "read" in metric else job["write"]
    return side["iops"] if metric.startswith("rand") else side["bw_bytes"] / 1e6
table = {}
for m, _ in metrics:
    for n in names:
        vals = [value(os.path.join(res, f"{n}-{r}-{m}.json"), m) for r in range(1, rounds + 1)]
        table[(m, n)] = (statistics.median(vals), min(vals), max(vals))
print(f"| metric | unit | " + " | ".join(names) + " | kmsfs / plain | kmsfs / plain-cached | kmsfs / gocryptfs |")
print("|---|---|" + "---:|" * (len(names) + 3))
for m, unit in metrics:
    cells = [f"{table[(m,n)][0]:,.0f} ({table[(m,n)][1]:,.0f}–{table[(m,n)][2]:,.0f})" for n in names]
    k, p, c, g = (table[(m, n)][0] for n in ("kmsfs", "plain", "plain-cached", "gocryptfs"))
    print(f"| {m} | {unit} | " + " | ".join(cells) + f" | {k/p:.2f} | {k/c:.2f} | {k/g:.2f} |")
print(f"\nmedian (min–max) of {rounds} rounds; fio libaio, direct=1; 4k: iodepth 16, 1M: iodepth 8")
EOF
