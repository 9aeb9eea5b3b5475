//! Replays every committed corpus file of every fuzz target (fuzz/corpus/)
//! through the target's body: the stable smoke run of the fuzz targets.
//! Fails if a body panics on any file, or a target has no corpus.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut failures = Vec::new();
    for (name, body) in kmsfs_fuzz_bodies::TARGETS {
        let dir = corpus.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: empty corpus");
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "bodies panicked on: {failures:#?}");
}

/// Regenerates the generated seeds (`seed-gen-*`) of fuzz/corpus/:
/// `cargo test -p kmsfs-fuzz-bodies --test corpus -- --ignored`.
/// The seeds taken from tests/fixtures are copied by fuzz/seed.sh.
#[test]
#[ignore]
fn write_generated_seeds() {
    kmsfs_fuzz_bodies::seeds::write_all(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus"),
    )
    .expect("writing seeds");
}
