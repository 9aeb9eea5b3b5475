//! Test vectors for the on-disk volume format (docs/FORMAT.md, "Test
//! vectors"): a fixed volume in tests/fixtures/volume_v1, made once by
//! `generate_fixture` below and committed. The tests check that
//!
//! - the fixture itself has not drifted (every file's SHA-256 is pinned);
//! - today's code still decrypts every file of it byte for byte;
//! - the header and block layout match the numbers the spec states;
//! - an independent decoder written from the spec alone, in Python
//!   (tests/fixtures/decode_volume_v1.py), decrypts it too.
//!
//! The same holds for the format version 2 fixture in
//! tests/fixtures/volume_v2 (`generate_fixture_v2`, the second half of this
//! file): encrypted names, symlink targets and xattrs, and the authenticated
//! length, decoded by tests/fixtures/decode_volume_v2.py too.
//!
//! A change that makes any of these fail changes the on-disk format: it
//! needs a new format version, not a regenerated fixture.
//!
//! Regenerating (only for a deliberate new fixture): remove
//! tests/fixtures/volume_v1, run
//! `cargo test --test format_vectors generate_fixture -- --ignored --nocapture`,
//! then paste the printed manifest and header literals into this file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use kmsfs_format::cipher::CipherSuite;
use kmsfs_format::content::{BLOCK_SIZE, Layout};
use kmsfs_format::header::{FileHeader, FormatVersion, HEADER_LEN};
use kmsfs_kms::clock::SystemClock;
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::store::RootSecret;
use kmsfs_kms::{Caller, KeyService, KmsError};
use kmsfs_volume::config::{HeaderPlacement, VolumeConfig};
use kmsfs_volume::{FileError, FileKey, Volume};

/// The two volumes of the fixture: directory, suite, header placement.
const VOLUMES: [(&str, CipherSuite, HeaderPlacement); 2] = [
    ("aes-file", CipherSuite::Aes256Gcm, HeaderPlacement::File),
    (
        "chacha-xattr",
        CipherSuite::ChaCha20Poly1305,
        HeaderPlacement::Xattr,
    ),
];

/// The files of each volume with their plaintext sizes.
const FILES: [(&str, usize); 7] = [
    ("noheader", 0),
    ("empty", 0),
    ("one", 1),
    ("block", 4096),
    ("block_plus", 5000),
    ("sparse", 8292),
    ("rotated", 300),
];

/// Plaintext byte at offset `i` of every fixture file: `i * 7 mod 251`,
/// except in the hole of `sparse` (block 1, offsets 4096..8192), which is 0.
fn plaintext(name: &str, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if name == "sparse" && (4096..8192).contains(&i) {
                0
            } else {
                (i * 7 % 251) as u8
            }
        })
        .collect()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/volume_v1")
}

/// Where the header of `name` in an xattr volume is kept: git does not
/// store extended attributes, so the generator copied each file's
/// `user.kmsfs.header` value into this sidecar.
fn sidecar(volume: &str, name: &str) -> PathBuf {
    fixture_dir().join(format!("{volume}.headers")).join(name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Every file under `dir`, relative path → contents, sorted.
fn walk(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let kind = fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                go(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                // A symlink (volume_v2 only) counts as its target's bytes.
                let bytes = if kind.is_symlink() {
                    fs::read_link(&path).unwrap().into_os_string().into_vec()
                } else {
                    fs::read(&path).unwrap()
                };
                out.insert(rel, bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

/// SHA-256 of every fixture file. The fixture is random (keys, nonces, file
/// ids) and therefore can only be pinned, never re-derived.
const MANIFEST: &[(&str, &str)] = &[
    (
        "aes-file/.kmsfs.volume.json",
        "8ecce43b0fc87e08e00a89b3fae939201195f4da4caab22cdbd47bceada1de77",
    ),
    (
        "aes-file/block",
        "79a319a8299241688af55f646201b843bd02b5c108472bb7c2d0a1aea5493dea",
    ),
    (
        "aes-file/block_plus",
        "26219bfd91a6ebc177468da0e043e51d5e229ff594d2ac21ca72b80ba0581274",
    ),
    (
        "aes-file/empty",
        "1c886b3f04d1c648d1c97aefda4f73da37f70b63beff425ae92e9ff6a13621d4",
    ),
    (
        "aes-file/noheader",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "aes-file/one",
        "339a2e2b3edda9161786fd5e4b11ccbe932639007bf25336a80ce34c4c99eba9",
    ),
    (
        "aes-file/rotated",
        "37513d6f65201955d018dd9b16a45c4bd66d005a24153787e1e5806a70668b59",
    ),
    (
        "aes-file/sparse",
        "2cbde87c9812d6a1c81e3d076ce5a978331b80a12abdacc7540ef4bf10e19645",
    ),
    (
        "chacha-xattr.headers/block",
        "b42fe961417751c4cf51b6ef57e152787c059d603c029fb05eeafe634234927b",
    ),
    (
        "chacha-xattr.headers/block_plus",
        "6b8894da54d11ea6333a72f7314a93d61fb1eb94df6b5ae71cd6090413daf294",
    ),
    (
        "chacha-xattr.headers/empty",
        "30e1c04b709be7f72398eb39d1c58bc833f80c6d06bfb0cd84036e09d7ee1562",
    ),
    (
        "chacha-xattr.headers/one",
        "3deca0db3c2ba570f8673818af326727fbdd8f78a653da518e3ac4e827f7c2c0",
    ),
    (
        "chacha-xattr.headers/rotated",
        "a8ba96d896193e4634ddadcae65f741e7d3f34063dfacd5a6350c15480322f34",
    ),
    (
        "chacha-xattr.headers/sparse",
        "cee15063793b4d46f178f1ca2873a9b7913f8e5929f7100d06ef08c61b3e7291",
    ),
    (
        "chacha-xattr/.kmsfs.volume.json",
        "d463d1a885d4f8cf5a8e1741ac08b0aba1f5d99d78f5a29da2f3bf08b8c28215",
    ),
    (
        "chacha-xattr/block",
        "a0e6271e7613cd5f01fbdaf1afc02cee413aae2daed0666d8c5c7fdd80f1550a",
    ),
    (
        "chacha-xattr/block_plus",
        "d4db6e6c41ad5f89ac3de631c554149002c619ea9be2813c4cb70d38e3c2b1d9",
    ),
    (
        "chacha-xattr/empty",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "chacha-xattr/noheader",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "chacha-xattr/one",
        "f4d0252cb6223b90e625e1832e2024e70032a02ca5b3ce041d77b5740ccea6f9",
    ),
    (
        "chacha-xattr/rotated",
        "2f0ea46980c7e9aac26697181306c81be220c333c80a1bafae1f57530f069f08",
    ),
    (
        "chacha-xattr/sparse",
        "227c16c84ac3a09ad31a6333d3dcf6b34353f860d2b4d036af8624952dcc7920",
    ),
    (
        "expected/block",
        "9141107b6ed1422839ed97f4674de82ae742ec2f8556c3df948da06930f94393",
    ),
    (
        "expected/block_plus",
        "08026c57be31084b60ded63e3101c86365be4d84b87b43bad97b3feb8152e20f",
    ),
    (
        "expected/empty",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "expected/noheader",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "expected/one",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    ),
    (
        "expected/rotated",
        "6a4239d205133d8402a260719140095ed928157baf8617038b67217d5df2d788",
    ),
    (
        "expected/sparse",
        "52f42e83390a1949c60b7770beb113407c0832021f47b72bc44d002ba7aa8c23",
    ),
    (
        "keystore",
        "5e7dc17976e0970ce6a4ff4d30e9348e37a4b8d66e3ae1787e72b2fb4d1b31cb",
    ),
    (
        "keystore.rootkey",
        "8604c5840a6255b4fe0564edd3c2e55d9740ec3e1937cf97df9e17d989afa956",
    ),
];

/// The 32-byte preamble of aes-file/one: magic "KMSF", version 1, suite 1
/// (AES-256-GCM), block shift 12, the file id, header length 1024, reserved.
const ONE_PREAMBLE: &str = "4b4d53460001010caca6438998670e8636d042387121fab90000040000000000";
/// ARN of the fixture's CMK (alias/kmsfs/default in its key store).
const CMK_ARN: &str = "arn:aws:kms:local:000000000000:key/17f86aa6-64c2-406d-8d1f-1471c5d879cd";

/// Copies a fixture's key store and root key; git keeps files 0644, and a
/// root key file others can read is refused, so the copy is made 0600.
fn copy_key_store(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for name in ["keystore", "keystore.rootkey"] {
        fs::copy(from.join(name), to.join(name)).unwrap();
    }
    fs::set_permissions(
        to.join("keystore.rootkey"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// A LocalKms over a temporary copy of the fixture's key store (opening a
/// store writes an audit log beside it, and the fixture must stay untouched).
fn fixture_kms() -> (tempfile::TempDir, Arc<dyn KeyService>) {
    let dir = tempfile::tempdir().unwrap();
    copy_key_store(&fixture_dir(), dir.path());
    let kms = LocalKms::open(
        &dir.path().join("keystore"),
        &RootSecret::KeyFile,
        Arc::new(SystemClock),
    )
    .unwrap();
    (dir, Arc::new(kms))
}

/// The volume in `dir` of the fixture, with its config as committed but the
/// key service replaced by `kms` (the config names the store's path at the
/// time of generation, which is not where the test's copy is).
fn fixture_volume(dir: &str, kms: &Arc<dyn KeyService>) -> Volume {
    let config = VolumeConfig::load(&fixture_dir().join(dir)).unwrap();
    Volume::new(config, kms.clone()).unwrap()
}

/// The header of a fixture file as the volume would read it: from the file
/// or, for xattr volumes, from its sidecar. `None` for a file without one.
fn fixture_header(volume: &Volume, dir: &str, name: &str) -> Option<FileHeader> {
    let file = File::open(fixture_dir().join(dir).join(name)).unwrap();
    match volume.config.header {
        HeaderPlacement::File => volume.read_header(&file).unwrap(),
        HeaderPlacement::Xattr => {
            let path = sidecar(dir, name);
            path.exists()
                .then(|| FileHeader::decode(&fs::read(path).unwrap()).unwrap())
        }
    }
}

fn unwrap(volume: &Volume, header: FileHeader) -> Result<FileKey, FileError> {
    volume.unwrap_key(&Caller::current(), header)
}

#[test]
fn fixture_is_unchanged() {
    let files = walk(&fixture_dir());
    let actual: Vec<(String, String)> = files
        .iter()
        .map(|(path, bytes)| (path.clone(), sha256_hex(bytes)))
        .collect();
    let pinned: Vec<(String, String)> = MANIFEST
        .iter()
        .map(|(p, h)| (p.to_string(), h.to_string()))
        .collect();
    assert_eq!(actual, pinned, "tests/fixtures/volume_v1 changed");
}

#[test]
fn expected_plaintexts_match_their_definition() {
    for (name, len) in FILES {
        let stored = fs::read(fixture_dir().join("expected").join(name)).unwrap();
        assert_eq!(stored, plaintext(name, len), "expected/{name}");
    }
}

#[test]
fn library_decrypts_every_file() {
    let (_store, kms) = fixture_kms();
    let mut decrypted = 0;
    for (dir, suite, placement) in VOLUMES {
        let volume = fixture_volume(dir, &kms);
        assert_eq!(volume.suite, suite);
        assert_eq!(volume.config.header, placement);
        assert_eq!(volume.config.key_id, CMK_ARN);
        for (name, len) in FILES {
            let path = fixture_dir().join(dir).join(name);
            let file = File::open(&path).unwrap();
            let expected = plaintext(name, len);
            let backing_len = fs::metadata(&path).unwrap().len();
            let Some(header) = fixture_header(&volume, dir, name) else {
                // A file created but never given a header: size 0, no key.
                assert_eq!((name, backing_len), ("noheader", 0), "{dir}");
                assert_eq!(volume.layout.plain_size(0).unwrap(), 0);
                continue;
            };
            assert_eq!(header.suite, suite, "{dir}/{name}");
            let key = unwrap(&volume, header).unwrap();
            let content = volume.content(&key);
            assert_eq!(
                content.plain_size(&file).unwrap(),
                len as u64,
                "{dir}/{name}"
            );
            let got = content.read(&file, 0, len + 4096).unwrap();
            assert!(got == expected, "{dir}/{name}: plaintext differs");
            // An unaligned read across the block boundary.
            if len > 4100 {
                assert_eq!(
                    content.read(&file, 4090, 10).unwrap(),
                    &expected[4090..4100]
                );
            }
            decrypted += 1;
        }
    }
    assert_eq!(decrypted, 12);
}

/// Backing sizes per the spec: `H + 4124 * q + (r > 0 ? r + 28 : 0)` for
/// plaintext size `4096 * q + r`, with H = 1024 (in-file header) or 0.
#[test]
fn backing_sizes_follow_the_format() {
    let literal: BTreeMap<&str, [u64; 2]> = BTreeMap::from([
        ("noheader", [0, 0]),
        ("empty", [1024, 0]),
        ("one", [1053, 29]),
        ("block", [5148, 4124]),
        ("block_plus", [6080, 5056]),
        ("sparse", [9400, 8376]),
        ("rotated", [1352, 328]),
    ]);
    for (v, (dir, _, placement)) in VOLUMES.into_iter().enumerate() {
        let h: u64 = match placement {
            HeaderPlacement::File => 1024,
            HeaderPlacement::Xattr => 0,
        };
        for (name, len) in FILES {
            let backing = fs::metadata(fixture_dir().join(dir).join(name))
                .unwrap()
                .len();
            assert_eq!(backing, literal[name][v], "{dir}/{name}");
            if name != "noheader" {
                let (q, r) = (len as u64 / 4096, len as u64 % 4096);
                let formula = h + 4124 * q + if r > 0 { r + 28 } else { 0 };
                assert_eq!(backing, formula, "{dir}/{name}");
                let layout = Layout {
                    header_len: h,
                    version: FormatVersion::V1,
                };
                assert_eq!(layout.backing_len(len as u64), backing);
            }
        }
    }
    // The hole of `sparse` is stored as 4124 zero bytes (block 1).
    for (dir, _, placement) in VOLUMES {
        let h = if placement == HeaderPlacement::File {
            1024
        } else {
            0
        };
        let bytes = fs::read(fixture_dir().join(dir).join("sparse")).unwrap();
        let block = |i: usize| &bytes[h + 4124 * i..(h + 4124 * (i + 1)).min(bytes.len())];
        assert!(block(1).iter().all(|&b| b == 0), "{dir}: block 1 is a hole");
        assert!(block(0).iter().any(|&b| b != 0) && block(2).iter().any(|&b| b != 0));
        assert_eq!(block(2).len(), 100 + 28);
    }
}

#[test]
fn header_golden_bytes() {
    let one = fs::read(fixture_dir().join("aes-file/one")).unwrap();
    assert_eq!(hex(&one[..32]), ONE_PREAMBLE);
    assert_eq!(&ONE_PREAMBLE[..16], "4b4d53460001010c");
    assert_eq!(&ONE_PREAMBLE[48..], "0000040000000000");

    // Slot A: generation 1, key version 1, the CMK's ARN, a 35 + 32 + 16
    // byte blob naming the CMK (UUID) and version 1 in its clear prefix.
    let slot_a = &one[32..528];
    let arn = CMK_ARN.as_bytes();
    assert_eq!(
        hex(&slot_a[..13]),
        // generation 1, key version 1, key id length
        format!("0000000000000001{}{:02x}", "00000001", arn.len())
    );
    assert_eq!(&slot_a[13..13 + arn.len()], arn);
    let at = 13 + arn.len();
    assert_eq!(u16::from_be_bytes([slot_a[at], slot_a[at + 1]]), 83);
    let blob = &slot_a[at + 2..at + 2 + 83];
    let uuid = uuid_of(CMK_ARN);
    assert_eq!(
        hex(&blob[..23]),
        format!("4b4201{}00000001", uuid.replace('-', ""))
    );
    assert!(slot_a[at + 2 + 83..492].iter().all(|&b| b == 0));
    assert_eq!(slot_a[492..], crc32fast::hash(&slot_a[..492]).to_be_bytes());
    // Slot B is empty: 492 zero bytes and the CRC-32 of them.
    let slot_b = &one[528..1024];
    assert!(slot_b[..492].iter().all(|&b| b == 0));
    assert_eq!(hex(&slot_b[492..]), "3081a4a7");

    // The same 1024 bytes in an xattr volume's header.
    let side = fs::read(sidecar("chacha-xattr", "one")).unwrap();
    assert_eq!(side.len(), HEADER_LEN);
    assert_eq!(hex(&side[..8]), "4b4d53460001020c");
}

fn uuid_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// `rotated` was re-wrapped after the CMK was rotated: its slot B holds
/// generation 2 under key version 2 and is active; slot A (generation 1,
/// version 1) is untouched and still unwraps, which is what a reader falls
/// back to if slot B is torn.
#[test]
fn rewrapped_file_uses_the_newer_slot_and_keeps_the_old() {
    let (_store, kms) = fixture_kms();
    for (dir, _, _) in VOLUMES {
        let volume = fixture_volume(dir, &kms);
        let header = fixture_header(&volume, dir, "rotated").unwrap();
        let [Some(a), Some(b)] = &header.slots else {
            panic!("{dir}/rotated: both slots should be full");
        };
        assert_eq!((a.generation, a.key_version), (1, 1));
        assert_eq!((b.generation, b.key_version), (2, 2));
        assert_eq!(header.active_index(), Some(1));
        let expected = plaintext("rotated", 300);
        let file = File::open(fixture_dir().join(dir).join("rotated")).unwrap();
        // Slot B alone, then slot A alone (B emptied as if it were torn).
        for keep in [1, 0] {
            let mut h = header.clone();
            h.slots[1 - keep] = None;
            let key = unwrap(&volume, h).unwrap();
            assert_eq!(volume.content(&key).read(&file, 0, 1000).unwrap(), expected);
        }
        // A torn slot B on disk: its CRC fails and slot A is used.
        if volume.config.header == HeaderPlacement::File {
            let mut bytes = fs::read(fixture_dir().join(dir).join("rotated")).unwrap();
            bytes[528 + 20] ^= 1;
            let torn = FileHeader::decode(&bytes[..1024]).unwrap();
            assert_eq!(torn.slots[1], None);
            assert_eq!(torn.active().unwrap().generation, 1);
        }
    }
}

/// The encryption context binds a wrapped key to its volume, file and
/// cipher: a header copied onto another file (other file id), or with its
/// suite byte changed, no longer unwraps.
#[test]
fn wrapped_key_is_bound_to_its_file() {
    let (_store, kms) = fixture_kms();
    let volume = fixture_volume("aes-file", &kms);
    let one = fixture_header(&volume, "aes-file", "one").unwrap();
    let block = fixture_header(&volume, "aes-file", "block").unwrap();
    let mut moved = one.clone();
    moved.file_id = block.file_id;
    assert!(matches!(
        unwrap(&volume, moved),
        Err(FileError::Unwrap(KmsError::InvalidCiphertext(_)))
    ));
    let mut other_suite = one.clone();
    other_suite.suite = CipherSuite::ChaCha20Poly1305;
    assert!(matches!(
        unwrap(&volume, other_suite),
        Err(FileError::Unwrap(_))
    ));
    // Same header, other volume id: refused too.
    let other = fixture_volume("chacha-xattr", &kms);
    assert!(matches!(unwrap(&other, one), Err(FileError::Unwrap(_))));
}

/// The independent Python decoder (written from docs/FORMAT.md) decrypts the
/// fixture. Skipped, with a note, where python3 or its `cryptography`
/// package is missing.
#[test]
fn python_decoder_decrypts_the_fixture() {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography.hazmat.primitives.ciphers.aead"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!(
                "note: python3 with the cryptography package not found; skipping the independent decoder"
            );
            return;
        }
    }
    let script = fixture_dir().with_file_name("decode_volume_v1.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(fixture_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "decoder failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("OK: 14 files decrypted"),
        "unexpected decoder output:\n{stdout}\n{stderr}"
    );
}

/// Builds tests/fixtures/volume_v1 with the current code. Run once; the
/// result is committed and pinned by MANIFEST.
#[test]
#[ignore = "writes tests/fixtures/volume_v1; only for making a new fixture"]
fn generate_fixture() {
    use kmsfs_kms::local::CreateKeyInput;
    use kmsfs_volume::config::{DEFAULT_KEY_ALIAS, HEADER_XATTR, KeyServiceConfig};
    use std::os::fd::AsFd;

    let root = fixture_dir();
    assert!(!root.exists(), "{} exists: remove it first", root.display());
    fs::create_dir_all(root.join("expected")).unwrap();
    for (name, len) in FILES {
        fs::write(root.join("expected").join(name), plaintext(name, len)).unwrap();
    }

    // The store lives in a temporary folder while in use (LocalKms writes an
    // audit log and a lock file beside it); only the store and its root key
    // are copied into the fixture at the end.
    let tmp = tempfile::tempdir().unwrap();
    let store_path = tmp.path().join("keystore");
    let local =
        Arc::new(LocalKms::open(&store_path, &RootSecret::KeyFile, Arc::new(SystemClock)).unwrap());
    let caller = Caller::current();
    // Usable by anyone, so the tests pass whatever uid runs them.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Id": "kmsfs-format-test-vectors",
        "Statement": [{
            "Sid": "Test vectors: anyone may use this key",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string();
    let info = local
        .create_key(
            &caller,
            CreateKeyInput {
                description: "kmsfs format test vectors (tests/fixtures/volume_v1)".into(),
                policy: Some(policy),
                ..CreateKeyInput::default()
            },
        )
        .unwrap();
    local
        .create_alias(&caller, DEFAULT_KEY_ALIAS, &info.key_id.to_string())
        .unwrap();
    let kms: Arc<dyn KeyService> = local.clone();

    let mut volumes = Vec::new();
    for (dir, suite, placement) in VOLUMES {
        let backing = root.join(dir);
        fs::create_dir(&backing).unwrap();
        let config = VolumeConfig::new(
            suite,
            placement,
            KeyServiceConfig::Embedded {
                keystore: "tests/fixtures/volume_v1/keystore".into(),
            },
            info.arn.clone(),
        );
        config.save(&backing).unwrap();
        let volume = Volume::new(VolumeConfig::load(&backing).unwrap(), kms.clone()).unwrap();
        for (name, len) in FILES {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(backing.join(name))
                .unwrap();
            if name == "noheader" {
                continue;
            }
            let key = volume.create_key(&caller, &file).unwrap();
            let content = volume.content(&key);
            let data = plaintext(name, len);
            if name == "sparse" {
                // Block 0, then block 2: block 1 is never written (a hole).
                content.write(&file, 0, &data[..BLOCK_SIZE]).unwrap();
                content.write(&file, 8192, &data[8192..]).unwrap();
            } else {
                content.write(&file, 0, &data).unwrap();
            }
            file.sync_all().unwrap();
        }
        volumes.push((dir, volume));
    }

    // Rotate the CMK, then re-wrap `rotated` in both volumes the crash-safe
    // way: new blob in the non-active slot, generation + 1, only that slot
    // written.
    let (arn, version) = local
        .rotate_key_on_demand(&caller, &info.key_id.to_string())
        .unwrap();
    assert_eq!(version, 2);
    for (dir, volume) in &volumes {
        let path = root.join(dir).join("rotated");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let header = volume.read_header(&file).unwrap().unwrap();
        let active = header.active().unwrap();
        let ctx = volume.context(&header.file_id, header.suite);
        let wrapped = kms.re_encrypt(&caller, &active.blob, &ctx, &arn).unwrap();
        let (next, index) = header
            .with_rewrapped(
                &wrapped.key_arn,
                wrapped.key_version,
                &wrapped.ciphertext_blob,
            )
            .unwrap();
        assert_eq!(index, 1);
        volume.write_header_slot(&file, &next, index).unwrap();
        file.sync_all().unwrap();
    }

    // xattr headers do not survive git: keep each one in a sidecar file.
    for (dir, volume) in &volumes {
        if volume.config.header != HeaderPlacement::Xattr {
            continue;
        }
        let headers = root.join(format!("{dir}.headers"));
        fs::create_dir(&headers).unwrap();
        for (name, _) in FILES {
            let file = File::open(root.join(dir).join(name)).unwrap();
            match kmsfs_sys::fgetxattr(file.as_fd(), HEADER_XATTR) {
                Ok(value) => fs::write(headers.join(name), value).unwrap(),
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => panic!("{dir}/{name}: {e}"),
            }
        }
    }

    drop(volumes);
    drop(kms);
    drop(local);
    for name in ["keystore", "keystore.rootkey"] {
        fs::copy(tmp.path().join(name), root.join(name)).unwrap();
    }

    println!("const MANIFEST: &[(&str, &str)] = &[");
    for (path, bytes) in walk(&root) {
        println!("    (\"{path}\", \"{}\"),", sha256_hex(&bytes));
    }
    println!("];");
    let one = fs::read(root.join("aes-file/one")).unwrap();
    println!("const ONE_PREAMBLE: &str = \"{}\";", hex(&one[..32]));
    println!("const CMK_ARN: &str = \"{}\";", info.arn);
}

// ------------------------------------------------------------- volume_v2
//
// A fixed format version 2 volume in tests/fixtures/volume_v2, made once by
// `generate_fixture_v2` below and committed: encrypted names (short and
// long), a subdirectory, an encrypted symlink target and an encrypted user
// xattr, and content blocks with the authenticated length. Its key store is
// its own (not volume_v1's): one CMK, rotated once on demand between the two
// volumes, so `aes-file` (name key and data keys) is under key version 1 and
// `chacha-xattr` under key version 2.
//
// Regenerating (only for a deliberate new fixture): remove
// tests/fixtures/volume_v2, run
// `cargo test --test format_vectors generate_fixture_v2 -- --ignored --nocapture`,
// then paste the printed manifest into MANIFEST_V2.

use std::ffi::OsStr;

use kmsfs_format::names::{DIR_ID_FILE, DirId, EntryClass, classify};
use kmsfs_volume::backing::Dir;

fn fixture_v2_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/volume_v2")
}

/// The 200-byte name of the fixture: a long name (`L.*` + `L.*.name`).
fn v2_long_name() -> String {
    "0123456789".repeat(20)
}

/// The regular files of each v2 volume: plaintext path, plaintext size.
fn v2_files() -> Vec<(String, usize)> {
    let mut files: Vec<(String, usize)> = [
        ("empty", 0),
        ("one", 1),
        ("block", 4096),
        ("block_plus", 5000),
        ("sparse", 8292),
        ("sub/nested", 100),
    ]
    .into_iter()
    .map(|(p, n)| (p.to_string(), n))
    .collect();
    files.push((v2_long_name(), 300));
    files
}

/// The symlink of each v2 volume and its target.
const V2_LINK: (&str, &str) = ("link", "sub/nested");
/// The user xattr of each v2 volume: file, attribute, value.
const V2_XATTR: (&str, &str, &str) = ("one", "user.comment", "hello");
/// The header xattr (only in `chacha-xattr`, kept in the sidecar).
const HEADER_ATTR: &str = "user.kmsfs.header";

/// What expected/TREE.json says: every plaintext path of a v2 volume (sorted),
/// its kind, its size (files) or target (symlinks), its xattrs.
fn v2_tree() -> serde_json::Value {
    use serde_json::json;
    let mut entries: Vec<serde_json::Value> = v2_files()
        .into_iter()
        .map(|(path, size)| {
            let xattrs = if path == V2_XATTR.0 {
                json!({ V2_XATTR.1: V2_XATTR.2 })
            } else {
                json!({})
            };
            json!({"path": path, "kind": "file", "size": size, "xattrs": xattrs})
        })
        .collect();
    entries.push(json!({"path": "sub", "kind": "dir", "xattrs": {}}));
    entries.push(json!({"path": V2_LINK.0, "kind": "symlink", "target": V2_LINK.1, "xattrs": {}}));
    entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    json!({ "entries": entries })
}

/// The sidecar of a v2 volume: git keeps no xattrs, so the generator copied
/// every `user.*` attribute of every backing entry into
/// `VOLUME.xattrs.json`: backing path (relative to the volume) → stored
/// attribute name → value in hex.
type Xattrs = BTreeMap<String, BTreeMap<String, String>>;

fn v2_sidecar(dir: &str) -> Xattrs {
    let text = fs::read_to_string(fixture_v2_dir().join(format!("{dir}.xattrs.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// SHA-256 of every file of volume_v2 (a symlink: of its target's bytes).
const MANIFEST_V2: &[(&str, &str)] = &[
    (
        "aes-file.xattrs.json",
        "2cb70d7609b8e76383a5feefe5b8f2367b1d46d3c51c63c97c54c0d206c00005",
    ),
    (
        "aes-file/.kmsfs.volume.json",
        "6304026046b76e7b1934273c3b4666229c9bddc5a467831877edf6750a4d8deb",
    ),
    (
        "aes-file/tree/.kmsfs.dirid",
        "ebe7b3aafc4b1930facca51e180bf094f9d40466c8a8d1716be4a310726af366",
    ),
    (
        "aes-file/tree/3QLKaRqFGcwLUV9B3A4I07zBuOg-",
        "7a6d89eb0d27b977c7de66b71497f7ef057e8e10d9e953df44638e118dbf242d",
    ),
    (
        "aes-file/tree/HvpaKhPpHk-sonEQKHFOvHdAiA/.kmsfs.dirid",
        "1a97fb10dae140fee80f0d555f26f85aa0acffcbdc34a9c5aa781f6e3af3b094",
    ),
    (
        "aes-file/tree/HvpaKhPpHk-sonEQKHFOvHdAiA/YUcJxuWxzygC7lQd1bNsUwo7fNJljA",
        "d5acf841da217ca8c72c1d742f8eabe9b1c21a970313c1e93580a53e5b52a0c0",
    ),
    (
        "aes-file/tree/JXe00pfdX6-Hxv5cObxg69lC4iM",
        "fdfb128e7e4f54291b1fcb31b3eda6ec882067041d38b0b72e72e959353798e2",
    ),
    (
        "aes-file/tree/L.vho7pBUl3n9wyVNB2RoTQ2-K2eqD4FA3iYxqaryGSkA",
        "a340fd4ecac019b3d95f52a40e7c168a832c06bbb2a9ceec97cf296e8a5dd217",
    ),
    (
        "aes-file/tree/L.vho7pBUl3n9wyVNB2RoTQ2-K2eqD4FA3iYxqaryGSkA.name",
        "be1a3ba41525de7f70c95341d91a13436f8ad9ea83e05037898c6a6abc864a40",
    ),
    (
        "aes-file/tree/L7ixaAgtX3pWU9x4eYa5C7e5oQ",
        "9cc6e6dd7b75ca8c53fea1efb9c593a0bd73fa4c57037fd22d401b41ee94c6e8",
    ),
    (
        "aes-file/tree/O3RTuBeiJ1MkVP11jxBj4RS2huBA",
        "3f276d87674c6a88a50502c2fac95900e9a0532c461cd40a87795ff51824ba04",
    ),
    (
        "aes-file/tree/cjfbQQPFh-tQWM0z5F3uhF9Hs8jykeWG5CY",
        "3492221c685c1cc6150d7b30ccdf3971954c2828e61b7fbb7fc4bc05e6267150",
    ),
    (
        "aes-file/tree/yBkAyB6uAdv-Xxk3FTYUUwqJnAa1UA",
        "621b07e6d33ba767dcf066290761e1e765d8f8a31411c0acc640bcc88112b3ef",
    ),
    (
        "chacha-xattr.xattrs.json",
        "171dc92dad6c03f36a4ae4aca36d936c5cc7b347ae9c961520240e8189b970f4",
    ),
    (
        "chacha-xattr/.kmsfs.volume.json",
        "10e2e8ca6081e2b951288ec805d1bb3b9a8cff5c3b9bf900fdc4f4804e49919b",
    ),
    (
        "chacha-xattr/tree/.kmsfs.dirid",
        "801050401d1fcb2a804d4de195060ee98d6668af392846e6ddbd30209507c5ed",
    ),
    (
        "chacha-xattr/tree/10ttFvbWuGn_XyhdJI5LSzmVIq4",
        "df11093c906b718756fb2ac2559dad464489e462ffc01ec87b45dff69d3b73b9",
    ),
    (
        "chacha-xattr/tree/4r3LTMrRNGB8t0EHp9Kd3wH7HzljCt8rzhk",
        "eca6f83d80e73ec885b5c34847290e0f43a674e863502d8792c4013d83380237",
    ),
    (
        "chacha-xattr/tree/J3Y7VLSTOLLdWHWNBir4FiOVT8yCyg",
        "0482ef8a195c3500b0145547b7ad44192809dd340c6c347d4b3ad04d6533ba37",
    ),
    (
        "chacha-xattr/tree/L.rqG_dCI2XYld1SwixK-cJhv16JDpJpsghHC4-6kKMNM",
        "217c1fabbc6968a3e827633ec404bfc383ac75a2a4c32b3a3a38e1c3c5a421a5",
    ),
    (
        "chacha-xattr/tree/L.rqG_dCI2XYld1SwixK-cJhv16JDpJpsghHC4-6kKMNM.name",
        "aea1bf7422365d895dd52c22c4af9c261bf5e890e9269b208470b8fba90a30d3",
    ),
    (
        "chacha-xattr/tree/Sc-tMrFDx2gIHPoh_kBsdp8JxQ/.kmsfs.dirid",
        "7634a23f72d6838b86980e8c35d3736781a1206773b7e5c8e77e90d63c9203da",
    ),
    (
        "chacha-xattr/tree/Sc-tMrFDx2gIHPoh_kBsdp8JxQ/KsxJQNbp6AFgBV_VVR8YTR72_lXOow",
        "4ddbc90e968de12f58c49b9224ff929552625d578438a62acbcfa211012b6390",
    ),
    (
        "chacha-xattr/tree/YxDurPn0LMWR7SuyDRZGAc6ILw",
        "e8d4fc7c39f74d425831648ce990d96c8eb55a1601cc5b1fea999e043e9a0700",
    ),
    (
        "chacha-xattr/tree/_tLV0jtscVHK2YwSLntx-2xi7F_j",
        "a625ae3ff807e9ea2e7d94c0e1ec15b8ccec84fbaaade8cc32f6566517b80015",
    ),
    (
        "chacha-xattr/tree/fQTO0fprzEd4xukR1CSY-vZ8Eva4",
        "3eb98f3e91092ba99110772dd733b53608047fc5be82150ad53d2d3797c79156",
    ),
    (
        "expected/01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789",
        "6a4239d205133d8402a260719140095ed928157baf8617038b67217d5df2d788",
    ),
    (
        "expected/TREE.json",
        "58c0540a6587445033a7271507584088014899bfd0263bc6ece6ae62fa91066a",
    ),
    (
        "expected/block",
        "9141107b6ed1422839ed97f4674de82ae742ec2f8556c3df948da06930f94393",
    ),
    (
        "expected/block_plus",
        "08026c57be31084b60ded63e3101c86365be4d84b87b43bad97b3feb8152e20f",
    ),
    (
        "expected/empty",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "expected/one",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    ),
    (
        "expected/sparse",
        "52f42e83390a1949c60b7770beb113407c0832021f47b72bc44d002ba7aa8c23",
    ),
    (
        "expected/sub/nested",
        "e8fd2c4f3a453f80113979c7496e61e5be565fcfae4e4e79ac26e5c3f9b53d0c",
    ),
    (
        "keystore",
        "3c121caaff1006d222ccba860076b79872a52b4de550cc64bd1675f3b2f62bd1",
    ),
    (
        "keystore.rootkey",
        "67fe9ae8c1f42c91ea1a6b110774a5f5aa0f9b767ce664fefe670cc455cca425",
    ),
];

/// ARN of volume_v2's CMK (alias/kmsfs/default in its own key store).
const CMK_ARN_V2: &str = "arn:aws:kms:local:000000000000:key/8d7a3333-e29b-4675-8ac3-e9ae5e331c03";

/// A LocalKms over a temporary copy of volume_v2's key store.
fn fixture_v2_kms() -> (tempfile::TempDir, Arc<dyn KeyService>) {
    let dir = tempfile::tempdir().unwrap();
    copy_key_store(&fixture_v2_dir(), dir.path());
    let kms = LocalKms::open(
        &dir.path().join("keystore"),
        &RootSecret::KeyFile,
        Arc::new(SystemClock),
    )
    .unwrap();
    (dir, Arc::new(kms))
}

#[test]
fn fixture_v2_is_unchanged() {
    let actual: Vec<(String, String)> = walk(&fixture_v2_dir())
        .iter()
        .map(|(path, bytes)| (path.clone(), sha256_hex(bytes)))
        .collect();
    let pinned: Vec<(String, String)> = MANIFEST_V2
        .iter()
        .map(|(p, h)| (p.to_string(), h.to_string()))
        .collect();
    assert_eq!(actual, pinned, "tests/fixtures/volume_v2 changed");
}

#[test]
fn v2_expected_matches_its_definition() {
    let root = fixture_v2_dir().join("expected");
    for (path, len) in v2_files() {
        let stored = fs::read(root.join(&path)).unwrap();
        assert!(stored == plaintext(&path, len), "expected/{path}");
    }
    let tree: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("TREE.json")).unwrap()).unwrap();
    assert_eq!(tree, v2_tree());
}

/// One entry of a decoded v2 tree.
struct Decoded {
    /// Plaintext path → the manifest entry it gives.
    entries: Vec<serde_json::Value>,
    files: usize,
    names: usize,
    /// Sidecar keys (backing paths) whose xattrs were decoded.
    xattr_paths: Vec<String>,
}

/// Walks the backing directory `stored` (relative to the volume `backing`)
/// whose plaintext path is `plain`, decoding every name with the volume's
/// name keys, every file, link target and xattr, and checking backing sizes.
fn decode_v2_dir(
    volume: &Volume,
    backing: &Path,
    stored: &Path,
    plain: &str,
    xattrs: &Xattrs,
    out: &mut Decoded,
) {
    use serde_json::json;
    let names = volume.names().unwrap();
    let dir = Dir::open_root(&backing.join(stored)).unwrap();
    let id = names.dir_id(&dir).unwrap().unwrap();
    assert_eq!(
        fs::read(backing.join(stored).join(DIR_ID_FILE)).unwrap(),
        id.as_bytes()
    );
    let h = volume.layout.header_len;
    for entry in dir.entries().unwrap() {
        let entry_name = entry.name.to_str().unwrap().to_string();
        let stored_path = stored.join(&entry_name);
        let stored_key = stored_path.to_str().unwrap().to_string();
        match classify(entry_name.as_bytes()) {
            EntryClass::DirId => continue,
            EntryClass::LongSide => {
                // Its entry must exist beside it; it is decoded with it.
                let of = entry_name.strip_suffix(".name").unwrap();
                assert!(backing.join(stored).join(of).exists(), "{stored_key}");
                continue;
            }
            EntryClass::Foreign => panic!("{stored_key}: not a v2 name"),
            EntryClass::Short | EntryClass::Long => {}
        }
        let name = names
            .decode(&dir, Some(&id), &entry.name)
            .unwrap_or_else(|| panic!("{stored_key} does not decrypt"))
            .into_string()
            .unwrap();
        // Encoding the plaintext name again gives the same entry.
        let again = names.encode(Some(&id), OsStr::new(&name)).unwrap();
        assert_eq!(again.as_os_str(), entry.name.as_os_str());
        assert_eq!(again.is_long(), name.len() > 175, "{name}");
        out.names += 1;
        let path = if plain.is_empty() {
            name.clone()
        } else {
            format!("{plain}/{name}")
        };
        let mut attrs = serde_json::Map::new();
        if let Some(stored_attrs) = xattrs.get(&stored_key) {
            out.xattr_paths.push(stored_key.clone());
            for (attr, value) in stored_attrs {
                if attr == HEADER_ATTR {
                    continue;
                }
                let attr_name = names.decode_xattr_name(attr.as_bytes()).unwrap();
                let value = names
                    .decode_xattr_value(OsStr::new(attr), &unhex(value))
                    .unwrap();
                attrs.insert(
                    String::from_utf8(attr_name).unwrap(),
                    String::from_utf8(value).unwrap().into(),
                );
            }
        }
        let full = backing.join(&stored_path);
        let meta = fs::symlink_metadata(&full).unwrap();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&full).unwrap();
            assert_eq!(target.as_os_str().as_encoded_bytes()[0], b'~');
            let target = names.decode_link(target.as_os_str()).unwrap();
            out.entries.push(json!({"path": path, "kind": "symlink",
                "target": target.to_str().unwrap(), "xattrs": attrs}));
        } else if meta.is_dir() {
            out.entries
                .push(json!({"path": path, "kind": "dir", "xattrs": attrs}));
            decode_v2_dir(volume, backing, &stored_path, &path, xattrs, out);
        } else {
            let file = File::open(&full).unwrap();
            let header = match volume.config.header {
                HeaderPlacement::File => volume.read_header(&file).unwrap().unwrap(),
                HeaderPlacement::Xattr => {
                    let value = &xattrs[&stored_key][HEADER_ATTR];
                    FileHeader::decode(&unhex(value)).unwrap()
                }
            };
            assert_eq!(header.version, FormatVersion::V2, "{path}");
            // Slot A only, generation 1 (no file was re-wrapped).
            assert!(header.slots[1].is_none(), "{path}");
            assert_eq!(header.active().unwrap().generation, 1, "{path}");
            assert_eq!(header.suite, volume.suite, "{path}");
            let key = unwrap(volume, header).unwrap();
            let content = volume.content(&key);
            let size = content.plain_size(&file).unwrap();
            let got = content.read(&file, 0, size as usize + 4096).unwrap();
            let expected = fs::read(fixture_v2_dir().join("expected").join(&path)).unwrap();
            assert!(got == expected, "{path}: plaintext differs");
            // Backing size, version 2: H + 28 for an empty file, else as v1.
            let (q, r) = (size / 4096, size % 4096);
            let formula = if size == 0 {
                h + 28
            } else {
                h + 4124 * q + if r > 0 { r + 28 } else { 0 }
            };
            assert_eq!(meta.len(), formula, "{path}");
            assert_eq!(volume.layout.backing_len(size), meta.len(), "{path}");
            out.files += 1;
            out.entries
                .push(json!({"path": path, "kind": "file", "size": size,
                "xattrs": attrs}));
        }
    }
}

/// The library reads the committed v2 fixture: every name, file, link
/// target and xattr decodes to what expected/ and expected/TREE.json say.
#[test]
fn library_reads_the_v2_fixture() {
    let (_store, kms) = fixture_v2_kms();
    let manifest = v2_tree();
    let (mut files, mut names) = (0, 0);
    for (v, (dir, suite, placement)) in VOLUMES.into_iter().enumerate() {
        let backing = fixture_v2_dir().join(dir);
        let config = VolumeConfig::load(&backing).unwrap();
        assert_eq!(config.format_version, 2);
        assert!(config.encrypted_names());
        assert_eq!(config.key_id, CMK_ARN_V2);
        // aes-file was made before the CMK's rotation, chacha-xattr after.
        let version = v as u32 + 1;
        assert_eq!(config.name_key.as_ref().unwrap().key_version, version);
        let volume = Volume::new(config, kms.clone()).unwrap();
        assert_eq!((volume.suite, volume.config.header), (suite, placement));
        assert_eq!(volume.layout.version, FormatVersion::V2);
        // The backing root holds the config and the tree, nothing else.
        let mut top: Vec<String> = fs::read_dir(&backing)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, [".kmsfs.volume.json", "tree"], "{dir}");
        let xattrs = v2_sidecar(dir);
        let mut out = Decoded {
            entries: Vec::new(),
            files: 0,
            names: 0,
            xattr_paths: Vec::new(),
        };
        decode_v2_dir(&volume, &backing, Path::new("tree"), "", &xattrs, &mut out);
        out.entries
            .sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        assert_eq!(
            serde_json::json!({ "entries": out.entries }),
            manifest,
            "{dir}"
        );
        // Every sidecar entry belongs to a decoded backing entry.
        out.xattr_paths.sort();
        assert_eq!(out.xattr_paths, xattrs.keys().cloned().collect::<Vec<_>>());
        // Every file's data key is under the same CMK version as the name key.
        for (path, attrs) in &xattrs {
            if let Some(header) = attrs.get(HEADER_ATTR) {
                let header = FileHeader::decode(&unhex(header)).unwrap();
                assert_eq!(header.active().unwrap().key_version, version, "{path}");
            }
        }
        files += out.files;
        names += out.names;
    }
    assert_eq!((files, names), (14, 18));
}

/// Backing sizes of the v2 fixture (file / xattr header), literally.
#[test]
fn v2_backing_sizes_follow_the_format() {
    let (_store, kms) = fixture_v2_kms();
    let literal: BTreeMap<&str, [u64; 2]> = BTreeMap::from([
        ("empty", [1052, 28]),
        ("one", [1053, 29]),
        ("block", [5148, 4124]),
        ("block_plus", [6080, 5056]),
        ("sparse", [9400, 8376]),
        ("sub/nested", [1152, 128]),
        ("long", [1352, 328]),
    ]);
    for (v, (dir, _, _)) in VOLUMES.into_iter().enumerate() {
        let backing = fixture_v2_dir().join(dir);
        let volume = Volume::new(VolumeConfig::load(&backing).unwrap(), kms.clone()).unwrap();
        let tree = backing.join("tree");
        let stored = volume
            .names()
            .unwrap()
            .stored_path(&Dir::open_root(&tree).unwrap(), Path::new(""))
            .unwrap();
        assert_eq!(stored, PathBuf::new());
        for (path, len) in v2_files() {
            let rel = volume
                .names()
                .unwrap()
                .stored_path(&Dir::open_root(&tree).unwrap(), Path::new(&path))
                .unwrap();
            let backing_len = fs::metadata(tree.join(&rel)).unwrap().len();
            let key = if path == v2_long_name() {
                "long"
            } else {
                &path
            };
            assert_eq!(backing_len, literal[key][v], "{dir}/{path}");
            assert_eq!(volume.layout.backing_len(len as u64), backing_len);
            if path == "sparse" {
                let h = volume.layout.header_len as usize;
                let bytes = fs::read(tree.join(&rel)).unwrap();
                assert!(bytes[h + 4124..h + 8248].iter().all(|&b| b == 0), "hole");
                assert!(bytes[h..h + 4124].iter().any(|&b| b != 0));
            }
        }
        // The long name: a 45-character entry and its 50-character side file
        // holding the 288-character encoding.
        let rel = volume
            .names()
            .unwrap()
            .stored_path(&Dir::open_root(&tree).unwrap(), Path::new(&v2_long_name()))
            .unwrap();
        let entry = rel.to_str().unwrap();
        assert!(entry.starts_with("L.") && entry.len() == 45, "{entry}");
        let side = fs::read_to_string(tree.join(format!("{entry}.name"))).unwrap();
        assert_eq!(side.len(), 288);
        assert_eq!(
            format!(
                "L.{}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    Sha256::digest(side.as_bytes())
                )
            ),
            entry
        );
    }
}

/// The independent Python decoder decrypts the v2 fixture (names, links,
/// xattrs, contents). Skipped, with a note, without python3 and
/// `cryptography`.
#[test]
fn python_decoder_decrypts_the_v2_fixture() {
    let probe = Command::new("python3")
        .args([
            "-c",
            "from cryptography.hazmat.primitives.ciphers.aead import AESSIV",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!(
                "note: python3 with the cryptography package (AES-SIV) not found; skipping the independent v2 decoder"
            );
            return;
        }
    }
    let script = fixture_v2_dir().with_file_name("decode_volume_v2.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(fixture_v2_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "decoder failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("OK: 14 files, 18 names decrypted"),
        "unexpected decoder output:\n{stdout}\n{stderr}"
    );
}

/// A store protected by its root key file; never a prompt.
struct KeyFileOnly;

impl kmsfs_volume::RootSecretSource for KeyFileOnly {
    fn root_secret(&self, _store: &Path) -> RootSecret<'_> {
        RootSecret::KeyFile
    }
}

/// Creates the plaintext tree of a v2 volume through the library, as the
/// mount does (dir id, encoded name, side file, create, header, content).
fn write_v2_tree(volume: &Volume, backing: &Path, caller: &Caller) {
    use std::os::fd::AsFd;
    let names = volume.names().unwrap();
    let tree = volume.config.open_tree(backing).unwrap();
    let root_id = names.dir_id(&tree).unwrap().unwrap();
    let create = |dir: &Dir, id: &DirId, name: &str, path: &str, len: usize| {
        let entry = names.encode(Some(id), OsStr::new(name)).unwrap();
        names.prepare(dir, &entry).unwrap();
        let file = dir.create_file(entry.as_os_str(), 0o644).unwrap();
        let key = volume.create_key(caller, &file).unwrap();
        let content = volume.content(&key);
        let data = plaintext(path, len);
        if path == "sparse" {
            // Block 0, then block 2: block 1 is never written (a hole).
            content.write(&file, 0, &data[..BLOCK_SIZE]).unwrap();
            content.write(&file, 8192, &data[8192..]).unwrap();
        } else {
            content.write(&file, 0, &data).unwrap();
        }
        if path == V2_XATTR.0 {
            let attr = names.encode_xattr_name(OsStr::new(V2_XATTR.1)).unwrap();
            let value = names.encode_xattr_value(&attr, V2_XATTR.2.as_bytes());
            kmsfs_sys::fsetxattr(file.as_fd(), attr.to_str().unwrap(), &value, 0).unwrap();
        }
        file.sync_all().unwrap();
    };
    for (path, len) in v2_files() {
        if !path.contains('/') {
            create(&tree, &root_id, &path, &path, len);
        }
    }
    let sub = names.encode(Some(&root_id), OsStr::new("sub")).unwrap();
    names.prepare(&tree, &sub).unwrap();
    tree.mkdir(sub.as_os_str(), 0o755).unwrap();
    let sub_dir = tree.open_dir(sub.as_os_str()).unwrap();
    names.init_dir(&sub_dir).unwrap();
    let sub_id = names.dir_id(&sub_dir).unwrap().unwrap();
    create(&sub_dir, &sub_id, "nested", "sub/nested", 100);
    let link = names.encode(Some(&root_id), OsStr::new(V2_LINK.0)).unwrap();
    let target = names.encode_link(OsStr::new(V2_LINK.1)).unwrap();
    names.prepare(&tree, &link).unwrap();
    tree.symlink(&target, link.as_os_str()).unwrap();
}

/// Every `user.*` xattr of every entry below `backing` (symlinks have none).
fn collect_xattrs(backing: &Path, dir: &Path, out: &mut Xattrs) {
    use std::os::fd::AsFd;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let file = File::open(&path).unwrap();
        let list = kmsfs_sys::flistxattr(file.as_fd()).unwrap();
        let mut attrs = BTreeMap::new();
        for name in list.split(|&b| b == 0).filter(|n| n.starts_with(b"user.")) {
            let name = std::str::from_utf8(name).unwrap();
            let value = kmsfs_sys::fgetxattr(file.as_fd(), name).unwrap();
            attrs.insert(name.to_string(), hex(&value));
        }
        let rel = path.strip_prefix(backing).unwrap().to_str().unwrap();
        if !attrs.is_empty() {
            out.insert(rel.to_string(), attrs);
        }
        if meta.is_dir() {
            collect_xattrs(backing, &path, out);
        }
    }
}

/// Builds tests/fixtures/volume_v2 with the current code. Run once; the
/// result is committed and pinned by MANIFEST_V2.
#[test]
#[ignore = "writes tests/fixtures/volume_v2; only for making a new fixture"]
fn generate_fixture_v2() {
    use kmsfs_kms::local::CreateKeyInput;
    use kmsfs_volume::config::{DEFAULT_KEY_ALIAS, KeyServiceConfig};
    use kmsfs_volume::create::{VolumeSpec, create_volume};

    let root = fixture_v2_dir();
    assert!(!root.exists(), "{} exists: remove it first", root.display());
    fs::create_dir_all(root.join("expected/sub")).unwrap();
    for (path, len) in v2_files() {
        fs::write(root.join("expected").join(&path), plaintext(&path, len)).unwrap();
    }
    fs::write(
        root.join("expected/TREE.json"),
        serde_json::to_string_pretty(&v2_tree()).unwrap() + "\n",
    )
    .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let store_path = tmp.path().join("keystore");
    let local =
        Arc::new(LocalKms::open(&store_path, &RootSecret::KeyFile, Arc::new(SystemClock)).unwrap());
    let caller = Caller::current();
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Id": "kmsfs-format-test-vectors",
        "Statement": [{
            "Sid": "Test vectors: anyone may use this key",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string();
    let info = local
        .create_key(
            &caller,
            CreateKeyInput {
                description: "kmsfs format test vectors (tests/fixtures/volume_v2)".into(),
                policy: Some(policy),
                ..CreateKeyInput::default()
            },
        )
        .unwrap();
    local
        .create_alias(&caller, DEFAULT_KEY_ALIAS, &info.key_id.to_string())
        .unwrap();
    let kms: Arc<dyn KeyService> = local.clone();

    for (v, (dir, suite, placement)) in VOLUMES.into_iter().enumerate() {
        if v == 1 {
            // The second volume is made after a rotation: its name key and
            // data keys are under key version 2.
            let (_, version) = local
                .rotate_key_on_demand(&caller, &info.key_id.to_string())
                .unwrap();
            assert_eq!(version, 2);
        }
        let backing = root.join(dir);
        let spec = VolumeSpec {
            key_service: KeyServiceConfig::Embedded {
                keystore: store_path.clone(),
            },
            key_id: Some(info.arn.clone()),
            cipher: suite,
            header: placement,
            encrypted_names: true,
        };
        let mut config = create_volume(&backing, &spec, &KeyFileOnly).unwrap().config;
        // Informative, as in volume_v1: the tests open a copy of the store.
        config.key_service = KeyServiceConfig::Embedded {
            keystore: "tests/fixtures/volume_v2/keystore".into(),
        };
        config.save(&backing).unwrap();
        let volume = Volume::new(VolumeConfig::load(&backing).unwrap(), kms.clone()).unwrap();
        write_v2_tree(&volume, &backing, &caller);
        let mut xattrs = Xattrs::new();
        collect_xattrs(&backing, &backing, &mut xattrs);
        fs::write(
            root.join(format!("{dir}.xattrs.json")),
            serde_json::to_string_pretty(&xattrs).unwrap() + "\n",
        )
        .unwrap();
    }

    drop(kms);
    drop(local);
    for name in ["keystore", "keystore.rootkey"] {
        fs::copy(tmp.path().join(name), root.join(name)).unwrap();
    }

    println!("const MANIFEST_V2: &[(&str, &str)] = &[");
    for (path, bytes) in walk(&root) {
        println!("    (\"{path}\", \"{}\"),", sha256_hex(&bytes));
    }
    println!("];");
    println!("const CMK_ARN_V2: &str = \"{}\";", info.arn);
}
