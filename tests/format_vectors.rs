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
//! A change that makes any of these fail changes the on-disk format: it
//! needs a new format version, not a regenerated fixture.
//!
//! Regenerating (only for a deliberate new fixture): remove
//! tests/fixtures/volume_v1, run
//! `cargo test --test format_vectors generate_fixture -- --ignored --nocapture`,
//! then paste the printed manifest and header literals into this file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
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
            if path.is_dir() {
                go(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read(&path).unwrap());
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

/// A LocalKms over a temporary copy of the fixture's key store (opening a
/// store writes an audit log beside it, and the fixture must stay untouched).
fn fixture_kms() -> (tempfile::TempDir, Arc<dyn KeyService>) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["keystore", "keystore.rootkey"] {
        fs::copy(fixture_dir().join(name), dir.path().join(name)).unwrap();
    }
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
