#!/usr/bin/env bash
# The whole test suite, in the order a failure is cheapest to see:
# formatting, lints, unit and integration tests (these mount real FUSE
# filesystems: run as root), then the public POSIX suites on a fresh mount.
# .ci/run installs what a fresh machine lacks and then runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --features aws-kms -- -D warnings
cargo test --workspace --release
# AWS KMS as a backend (off by default): the KeyService conformance suite
# against moto (installed by .ci/run), so aws.rs cannot rot unseen.
cargo test -p kmsfs-kms --release --features aws-kms
cargo build --release
bash tests/posix/run-on-kmsfs.sh
