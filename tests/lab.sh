#!/usr/bin/env bash
# The AWS KMS lab, run against kmsfs: the four lab commands verbatim, with
# `aws` replaced by `kmsfs`. Runs in the current folder, which must hold
# secret.txt; leaves encryptedsecret.txt, decryptedsecret.txt and
# newencryption.txt beside it.
#
#   KMSFS_BIN=path/to/kmsfs KMSFS_KEYSTORE=/tmp/lab/keystore tests/lab.sh
#
# KMSFS_BIN defaults to the kmsfs on PATH. tests/kms_cli.rs runs this script.
set -euo pipefail

kmsfs() { "${KMSFS_BIN:-$(type -P kmsfs)}" "$@"; }

test -f secret.txt || { echo "lab.sh: no secret.txt in $PWD" >&2; exit 2; }

KEY=$(kmsfs kms create-key --description "kmsfs lab key" --query KeyMetadata.KeyId --output text)

# The four lab commands.
kmsfs kms encrypt --key-id "$KEY" --plaintext fileb://secret.txt --output text --query CiphertextBlob | base64 --decode > encryptedsecret.txt
kmsfs kms decrypt --ciphertext-blob fileb://encryptedsecret.txt --output text --query Plaintext | base64 --decode > decryptedsecret.txt
kmsfs kms re-encrypt --destination-key-id "$KEY" --ciphertext-blob fileb://encryptedsecret.txt | base64 > newencryption.txt
kmsfs kms enable-key-rotation --key-id "$KEY"

cmp secret.txt decryptedsecret.txt
test "$(kmsfs kms get-key-rotation-status --key-id "$KEY" --query KeyRotationEnabled --output text)" = True
echo "$KEY"
