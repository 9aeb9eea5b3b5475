#!/usr/bin/env bash
# Benchmark (not a test): opening 10,000 files through a FUSE mount of a
# volume whose CMK is on `kmsfs kms serve`, with and without the data key
# cache. Needs root (FUSE mounts). Run: cargo build --release && bash benches/remote_open.sh
set -euo pipefail
K=${KMSFS_BIN:-$(dirname "$0")/../target/release/kmsfs}
D=$(mktemp -d)
export KMSFS_KEYSTORE=$D/ks AWS_REGION=local
$K iam create-user --user-name root >/dev/null
eval "$($K iam create-access-key --user-name root --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text | awk '{print "export AWS_ACCESS_KEY_ID="$1" AWS_SECRET_ACCESS_KEY="$2}')"
$K kms serve --listen 127.0.0.1:0 > $D/serve.out 2>/dev/null &
SERVER=$!
trap 'kill $SERVER' EXIT
sleep 1
URL=$(sed -n 's/listening on //p' $D/serve.out | head -1)
export -n KMSFS_KEYSTORE
for mode in nocache cache; do
  args=(); [ $mode = nocache ] && args=(--cache-max-keys 0)
  mkdir -p $D/$mode/mnt
  KMSFS_KEYSTORE=$D/client-none $K init --endpoint-url $URL "${args[@]}" $D/$mode/b 2>/dev/null
  $K mount $D/$mode/b $D/$mode/mnt
  t0=$(date +%s.%N)
  for i in $(seq 1 10000); do echo $i > $D/$mode/mnt/f$i; done
  t1=$(date +%s.%N)
  # files this mount created: open all
  cat $D/$mode/mnt/f* > /dev/null
  t2=$(date +%s.%N)
  $K umount $D/$mode/mnt; sleep 1
  $K mount $D/$mode/b $D/$mode/mnt
  t3=$(date +%s.%N)
  cat $D/$mode/mnt/f* > /dev/null   # cold: every open unwraps
  t4=$(date +%s.%N)
  cat $D/$mode/mnt/f* > /dev/null   # warm: within the cache's age limit
  t5=$(date +%s.%N)
  $K umount $D/$mode/mnt; sleep 1
  printf "%s: create 10000 %.1fs | open just-created %.2fs | after remount: first open %.2fs, second open %.2fs\n" \
    $mode $(echo "$t1-$t0" | bc) $(echo "$t2-$t1" | bc) $(echo "$t4-$t3" | bc) $(echo "$t5-$t4" | bc)
done
grep -c '"eventName":"Decrypt"' $D/ks.audit.log | sed 's/^/Decrypt calls at the server: /'
rm -rf $D
