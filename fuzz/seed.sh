#!/bin/sh
# Copies the seeds taken from tests/fixtures into fuzz/corpus/ (seed-fx-*).
# The generated seeds (seed-gen-*) come from
#   cargo test -p kmsfs-fuzz-bodies --test corpus -- --ignored
set -eu
cd "$(dirname "$0")/.."
fx=tests/fixtures
c=fuzz/corpus
mkdir -p $c/file_header $c/ciphertext_blob $c/key_store $c/volume_config \
    $c/rotation_state $c/sigv4_headers
for f in volume_v1/aes-file/one volume_v1/aes-file/rotated volume_v1/aes-file/empty \
    volume_v1/chacha-xattr.headers/one volume_v1/chacha-xattr.headers/rotated; do
    head -c 1024 "$fx/$f" > "$c/file_header/seed-fx-$(echo "$f" | tr / -)"
done
n=0
for f in $(find $fx/volume_v2/aes-file/tree $fx/volume_v2/chacha-xattr/tree -type f -size +1023c | sort | head -4); do
    n=$((n + 1))
    head -c 1024 "$f" > "$c/file_header/seed-fx-v2-$n"
done
xxd -r -p $fx/blob_v1.hex > $c/ciphertext_blob/seed-fx-blob_v1
python3 -c 'import json,base64,sys; sys.stdout.buffer.write(base64.b64decode(json.load(open(sys.argv[1]))["name_key"]["blob"]))' \
    $fx/volume_v2/aes-file/.kmsfs.volume.json > $c/ciphertext_blob/seed-fx-name-key
{ printf '\000'; cat $fx/volume_v1/keystore; } > $c/key_store/seed-fx-v1
{ printf '\001'; cat $fx/volume_v2/keystore; } > $c/key_store/seed-fx-v2
for v in volume_v1 volume_v2; do
    for d in aes-file chacha-xattr; do
        cp $fx/$v/$d/.kmsfs.volume.json $c/volume_config/seed-fx-$v-$d.json
    done
done
cat > $c/rotation_state/seed-fx-running.json <<'JSON'
{
  "target": {
    "key_id": "arn:aws:kms:local:000000000000:key/8d7a3333-e29b-4675-8ac3-e9ae5e331c03",
    "version": 2
  },
  "status": "running",
  "started_at": "2026-01-02T03:04:05Z",
  "completed_at": null,
  "total": 12,
  "done": 5,
  "rewrapped": 4,
  "failures": [
    {
      "path": "sub/file",
      "reason": "AccessDeniedException: not allowed"
    }
  ]
}
JSON
printf '{"target":null,"status":"complete","started_at":null,"completed_at":"2026-01-02T03:04:05Z","total":0,"done":0,"rewrapped":0,"failures":[]}\n' \
    > $c/rotation_state/seed-fx-complete.json
printf 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7\n20150830T123600Z\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-amz-json-1.1\nhost:kms.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-target:TrentService.Encrypt' \
    > $c/sigv4_headers/seed-fx-authorization
printf 'AWS4-HMAC-SHA256 Credential=kmsfs/20260102/local/kms/aws4_request,SignedHeaders=host,Signature=0000000000000000000000000000000000000000000000000000000000000000\n20260102T030405Z\n\nhost: 127.0.0.1:8443 \nHost:  a   b  ' \
    > $c/sigv4_headers/seed-fx-local
