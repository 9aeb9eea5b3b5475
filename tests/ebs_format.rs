//! The EBS pool's on-disk format (docs/FORMAT.md, "EBS pool") pinned by a
//! fixed fixture, `tests/fixtures/ebs_v1/`, made once by the `#[ignore]`d
//! `generate_ebs_fixture` with the code of pool version 1:
//!
//! - `keystore`, `keystore.rootkey`: a key store with one CMK;
//! - `state.json`: the pool state naming one encrypted 1 GiB volume;
//! - `vol.img.head`: the first 1024 + 3 · 4124 bytes of its image (the
//!   header, a written block 0, a hole, a written block 2; the rest of a
//!   1 GiB image is holes and is not committed);
//! - `expected.bin`: the plaintext of those three blocks.
//!
//! The test pins every file's SHA-256, reads the state with today's
//! `PoolState`, unwraps the data key through the key service with the
//! documented encryption context, decodes the blocks, and runs the
//! independent Python decoder's functions (tests/fixtures/decode_volume_v1.py)
//! over the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kmsfs_ebs::image::{self, Codec};
use kmsfs_ebs::pool::PoolState;
use kmsfs_format::cipher::DataKey;
use kmsfs_format::content::{BLOCK_SIZE, STORED_BLOCK_LEN};
use kmsfs_format::header::HEADER_LEN;
use kmsfs_kms::clock::SystemClock;
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::store::RootSecret;
use kmsfs_kms::{Caller, EncryptionContext};
use sha2::{Digest, Sha256};

const VOLUME_ID: &str = "vol-0e65f1c2a9b3d4e50";

/// SHA-256 of each fixture file; a change here is a format change.
const MANIFEST: &[(&str, &str)] = &[
    (
        "expected.bin",
        "204747a04765715484a482d5a78cd72992768d9c05f819a8125ca98ed6b40f29",
    ),
    (
        "keystore",
        "eb2ea9fcbde55048f8952156f227a0486873535842b2bec62158415c9b36f8ae",
    ),
    (
        "keystore.rootkey",
        "c4535275e005f03242997a939004887bc693605593db528b4553ad8398d007a6",
    ),
    (
        "state.json",
        "9791eef4f3a75cf7a4228664dbc02dc29c2e115bed8c238f7f1dbdade49f9543",
    ),
    (
        "vol.img.head",
        "dc4b9eeeb300aa5cfd375d4585009d3c74c419218bf3a7675f635274b61d8f5f",
    ),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ebs_v1")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Block `i`'s plaintext: block 0 and 2 hold data, block 1 is a hole.
fn plaintext() -> Vec<u8> {
    let mut out = vec![0u8; 3 * BLOCK_SIZE];
    for (i, b) in out.iter_mut().enumerate() {
        if !(BLOCK_SIZE..2 * BLOCK_SIZE).contains(&i) {
            *b = ((i * 7) % 251) as u8 + 1;
        }
    }
    out
}

fn context(id: &str) -> EncryptionContext {
    EncryptionContext::from([("aws:ebs:id".to_owned(), id.to_owned())])
}

#[test]
fn the_ebs_fixture_decodes_as_documented() {
    let dir = fixture_dir();
    for (name, digest) in MANIFEST {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            *digest,
            "{name} changed: that is a format change"
        );
    }
    let state: PoolState =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(state.version, 1);
    let volume = &state.volumes[VOLUME_ID];
    assert_eq!(volume.size, 1);
    assert_eq!(volume.region, "us-east-1");
    let sealing = volume
        .sealing
        .as_ref()
        .expect("the fixture volume is encrypted");
    assert_eq!(sealing.context_id, VOLUME_ID);

    let head = std::fs::read(dir.join("vol.img.head")).unwrap();
    assert_eq!(head.len(), HEADER_LEN + 3 * STORED_BLOCK_LEN);
    // The full image is 1024 + 262144 stored blocks.
    assert_eq!(
        image::image_len(volume.size_bytes(), true),
        1024 + (1u64 << 30) / 4096 * 4124
    );
    // A hole is 4124 zero bytes.
    let hole = &head[HEADER_LEN + STORED_BLOCK_LEN..HEADER_LEN + 2 * STORED_BLOCK_LEN];
    assert!(hole.iter().all(|&b| b == 0));

    let tmp = tempfile::tempdir().unwrap();
    // Git keeps files 0644; a root key file others can read is refused.
    for f in ["keystore", "keystore.rootkey"] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            tmp.path().join("keystore.rootkey"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let kms = LocalKms::open(
        &tmp.path().join("keystore"),
        &RootSecret::KeyFile,
        Arc::new(SystemClock),
    )
    .unwrap();
    let file = std::fs::File::open(dir.join("vol.img.head")).unwrap();
    let header = image::read_header(&file).unwrap();
    assert_eq!(image::data_key_id(&header.file_id), sealing.data_key_id);
    let wrapped = image::wrapped_key(&header).unwrap();
    assert_eq!(wrapped.key_id, sealing.kms_key_arn);
    // Another context does not open it: the volume id is bound in.
    assert!(
        kms.decrypt(
            &Caller::current(),
            &wrapped.blob,
            &context("vol-1234abcd"),
            None
        )
        .is_err()
    );
    let key = kms
        .decrypt(&Caller::current(), &wrapped.blob, &context(VOLUME_ID), None)
        .unwrap();
    let codec = Codec::sealed(
        &DataKey::from_slice(&key.plaintext).unwrap(),
        header.file_id,
    );
    let plain = codec.read(&file, 0, 3 * BLOCK_SIZE).unwrap();
    assert_eq!(plain, std::fs::read(dir.join("expected.bin")).unwrap());
    assert_eq!(plain, plaintext());

    independent_decoder(&dir);
}

/// The Python decoder's functions, written from FORMAT.md alone, decode the
/// same image with the context `aws:ebs:id`.
fn independent_decoder(dir: &Path) {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography.hazmat.primitives.ciphers.aead"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("note: python3 with cryptography not found; skipping the independent decoder");
        return;
    }
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import decode_volume_v1 as d
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
fx = sys.argv[2]
store = d.open_key_store(fx + "/keystore")
state = json.load(open(fx + "/state.json"))
(vid, vol), = state["volumes"].items()
img = open(fx + "/vol.img.head", "rb").read()
h = d.parse_header(img[:1024])
assert h["version"] == 1 and h["suite"] == 1
key = d.decrypt_blob(store, h["candidates"][0]["blob"], {"aws:ebs:id": vol["sealing"]["context_id"]})
plain = d.decrypt_content(img[1024:], AESGCM(key), h["file_id"], 1)
assert plain == open(fx + "/expected.bin", "rb").read(), "plaintext differs"
assert "dek-" + h["file_id"].hex() == vol["sealing"]["data_key_id"]
print("OK: ebs image decoded")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.parent().unwrap())
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK: ebs image decoded"),
        "independent decoder:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes tests/fixtures/ebs_v1 with the current code. Run once; the result
/// is committed and pinned by MANIFEST.
#[test]
#[ignore = "writes tests/fixtures/ebs_v1; only for making a new fixture"]
fn generate_ebs_fixture() {
    use kmsfs_ebs::model::{Sealing, Volume, VolumeState};
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kms = LocalKms::open(
        &dir.join("keystore"),
        &RootSecret::KeyFile,
        Arc::new(SystemClock),
    )
    .unwrap();
    let me = Caller::current();
    let key = kms
        .create_key(&me, kmsfs_kms::local::CreateKeyInput::default())
        .unwrap();
    let pair = kms
        .generate_data_key(&me, &key.arn, 32, &context(VOLUME_ID), true)
        .unwrap();
    let header = image::new_header(&pair.key_arn, pair.key_version, pair.ciphertext_blob).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vol.img");
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    image::init_sealed(&file, &header, 1 << 30).unwrap();
    let codec = Codec::sealed(
        &DataKey::from_slice(&pair.plaintext).unwrap(),
        header.file_id,
    );
    let plain = plaintext();
    codec.write(&file, 0, &plain[..BLOCK_SIZE]).unwrap();
    codec
        .write(&file, 2 * BLOCK_SIZE as u64, &plain[2 * BLOCK_SIZE..])
        .unwrap();
    let all = std::fs::read(&path).unwrap();
    std::fs::write(
        dir.join("vol.img.head"),
        &all[..HEADER_LEN + 3 * STORED_BLOCK_LEN],
    )
    .unwrap();
    std::fs::write(dir.join("expected.bin"), &plain).unwrap();
    let mut state = PoolState {
        version: kmsfs_ebs::pool::STATE_VERSION,
        ..Default::default()
    };
    state.volumes.insert(
        VOLUME_ID.into(),
        Volume {
            volume_id: VOLUME_ID.into(),
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            size: 1,
            snapshot_id: None,
            state: VolumeState::Available,
            create_time: "2026-12-02T08:00:00.000Z".into(),
            volume_type: "gp3".into(),
            iops: Some(3000),
            throughput: Some(125),
            sealing: Some(Sealing {
                kms_key_arn: pair.key_arn.clone(),
                context_id: VOLUME_ID.into(),
                data_key_id: image::data_key_id(&header.file_id),
            }),
            tags: vec![],
            attachment: None,
        },
    );
    std::fs::write(
        dir.join("state.json"),
        serde_json::to_vec_pretty(&state).unwrap(),
    )
    .unwrap();
    drop(kms);
    for extra in ["keystore.audit.log", "keystore.lock"] {
        let _ = std::fs::remove_file(dir.join(extra));
    }
    for (name, _) in MANIFEST {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        println!("    (\"{name}\", \"{}\"),", hex(&Sha256::digest(&bytes)));
    }
}
