//! One function per fuzz target of `fuzz/` (cargo-fuzz, nightly): each
//! feeds arbitrary bytes to one parser of untrusted input and checks what is
//! cheap to check (no panic; decode → encode → decode gives the same value;
//! encrypt → decrypt gives the input back). The libFuzzer targets and the
//! stable test `tests/corpus.rs`, which replays every committed corpus file,
//! call the same functions.
//!
//! Fixed keys stand in for a volume's: the seeds were made with them, so the
//! fuzzer starts from authentic ciphertext and reaches past authentication.
//! A panic (including a failed `assert!`) is a finding.

pub mod seeds;

use std::collections::BTreeMap;

use kmsfs_format::cipher::{CipherSuite, DataKey, new_aead};
use kmsfs_format::content::{FileContent, Layout, MemIo};
use kmsfs_format::header::{FileHeader, FormatVersion};
use kmsfs_format::names::{self, DirId, NameKeys};
use kmsfs_kms::blob::{self, BlobHeader, EncryptionContext};
use kmsfs_kms::material::KeyMaterial;
use kmsfs_kms::protocol::Operation;
use kmsfs_kms::{api, sigv4, store};
use kmsfs_volume::VolumeConfig;
use kmsfs_volume::rotate::RotationState;
use serde_json::Value;

/// The body of one fuzz target.
pub type Body = fn(&[u8]);

/// Every target: its name (the folder of its corpus and the file of its
/// libFuzzer target) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("file_header", file_header),
    ("content_blocks", content_blocks),
    ("ciphertext_blob", ciphertext_blob),
    ("key_store", key_store),
    ("volume_config", volume_config),
    ("rotation_state", rotation_state),
    ("names", names),
    ("kms_json_request", kms_json_request),
    ("sigv4_headers", sigv4_headers),
];

/// The data key of `content_blocks` and the name key of `names` (as in the
/// format tests and tests/fixtures/gen_content_v2.py).
pub const FIXED_KEY: [u8; 32] = [0x07; 32];
/// The file id of `content_blocks`.
pub const FIXED_FILE_ID: [u8; 16] = [0x11; 16];
/// The directory id of `names`.
pub const FIXED_DIR: DirId = DirId([0x11; 16]);
/// The attribute a `names` xattr value belongs to.
pub const XATTR_STORED_NAME: &str = "user.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The root keys of the two committed fixture key stores.
const ROOT_KEY_FILES: [&[u8]; 2] = [
    include_bytes!("../../../tests/fixtures/volume_v1/keystore.rootkey"),
    include_bytes!("../../../tests/fixtures/volume_v2/keystore.rootkey"),
];

fn root_key(index: usize) -> KeyMaterial {
    let file = ROOT_KEY_FILES[index % 2];
    KeyMaterial::from_slice(&file[8..40]).expect("the fixture root key files hold 32 key bytes")
}

fn fixed_material() -> KeyMaterial {
    KeyMaterial::from_slice(&FIXED_KEY).expect("32 bytes")
}

/// `FileHeader::decode`; a decoded header re-encodes to one that decodes
/// equal, and a re-wrap of it keeps the old active slot.
pub fn file_header(data: &[u8]) {
    let Ok(header) = FileHeader::decode(data) else {
        return;
    };
    let encoded = header.encode().expect("a decoded header encodes");
    let again = FileHeader::decode(&encoded).expect("a re-encoded header decodes");
    assert_eq!(again, header);
    let candidates = header.candidates();
    assert_eq!(candidates.first().copied(), header.active());
    let active = header
        .active()
        .expect("decode refuses a header without a key");
    if let Ok((next, slot)) = header.with_rewrapped("alias/fuzz", 9, b"blob") {
        assert_ne!(Some(slot), header.active_index());
        let next = FileHeader::decode(&next.encode().expect("a re-wrapped header encodes"))
            .expect("a re-wrapped header decodes");
        assert_eq!(next.slots[1 - slot].as_ref(), Some(active));
        let new = next.active().expect("the new slot is active");
        assert_eq!(new.generation, active.generation + 1);
        assert_eq!(new.key_id, "alias/fuzz");
    }
}

/// The content layer over arbitrary bytes. First byte: bit 0 format version
/// (v1, v2), bit 1 suite (AES-GCM, ChaCha20-Poly1305), bit 2 the mode, bits
/// 3..8 a parameter `n`; the rest is `body`.
///
/// - read mode: `body` is a backing file without header (key [`FIXED_KEY`],
///   file id [`FIXED_FILE_ID`]); reads the whole file and a window at
///   `n * 700`, which must agree with each other and with `plain_size`;
/// - write mode: `body` is plaintext written at `n * 700` into a new file,
///   which must read back as zeros and `body`, then is truncated to `n *
///   300` and must read back as that prefix (zero-extended).
pub fn content_blocks(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let version = if flags & 1 == 0 {
        FormatVersion::V1
    } else {
        FormatVersion::V2
    };
    let suite = if flags & 2 == 0 {
        CipherSuite::Aes256Gcm
    } else {
        CipherSuite::ChaCha20Poly1305
    };
    let n = u64::from(flags >> 3);
    let aead = new_aead(suite, &FIXED_KEY);
    let content = FileContent {
        aead: &*aead,
        file_id: FIXED_FILE_ID,
        layout: Layout {
            header_len: 0,
            version,
        },
    };
    if flags & 4 == 0 {
        let io = MemIo::new(body.to_vec());
        let size = content.plain_size(&io);
        let all = content.read(&io, 0, usize::MAX);
        if let (Ok(size), Ok(all)) = (&size, &all) {
            assert_eq!(all.len() as u64, *size);
        }
        let offset = n * 700;
        let window = content.read(&io, offset, 5000);
        if let (Ok(all), Ok(window)) = (&all, &window) {
            let from = (offset as usize).min(all.len());
            let to = (from + 5000).min(all.len());
            assert_eq!(window[..], all[from..to]);
        }
        if all.is_ok() {
            // Every block of the file authenticated, so a window can only
            // succeed too.
            assert!(window.is_ok(), "{window:?}");
        }
        return;
    }
    let io = MemIo::new(Vec::new());
    content.seal_empty(&io).expect("an empty file seals");
    let offset = n * 700;
    content
        .write(&io, offset, body)
        .expect("writing to memory succeeds");
    let mut expected = vec![0u8; offset as usize];
    expected.extend_from_slice(body);
    if body.is_empty() {
        expected.clear();
    }
    let back = content
        .read(&io, 0, usize::MAX)
        .expect("written data reads");
    assert_eq!(back, expected);
    let new_size = n * 300;
    content
        .truncate(&io, new_size)
        .expect("truncating in memory succeeds");
    expected.resize(new_size as usize, 0);
    let back = content
        .read(&io, 0, usize::MAX)
        .expect("truncated data reads");
    assert_eq!(back, expected);
    assert_eq!(
        content.plain_size(&io).expect("size after truncate"),
        new_size
    );
}

/// The encryption context of `ciphertext_blob` (that of
/// tests/fixtures/blob_v1.hex).
fn blob_context() -> EncryptionContext {
    BTreeMap::from([("purpose".to_string(), "test".to_string())])
}

/// `blob::parse_header` and `blob::open` under [`FIXED_KEY`]; a blob that
/// opens re-seals to the same bytes. Then `data` as a plaintext: sealed, it
/// parses and opens back to `data`.
pub fn ciphertext_blob(data: &[u8]) {
    let material = fixed_material();
    let ctx = blob_context();
    if let Ok(header) = blob::parse_header(data)
        && let Ok(plain) = blob::open(&material, &header, data, &ctx)
    {
        assert_eq!(blob::seal(&material, &header, &plain, &ctx), data);
    }
    if data.is_empty() || data.len() > blob::MAX_PLAINTEXT {
        return;
    }
    let header = BlobHeader {
        key_id: uuid::Uuid::from_bytes([0x0b; 16]),
        key_version: 3,
        nonce: [0x11; 12],
    };
    let sealed = blob::seal(&material, &header, data, &ctx);
    let parsed = blob::parse_header(&sealed).expect("a sealed blob parses");
    assert_eq!(parsed, header);
    let plain = blob::open(&material, &parsed, &sealed, &ctx).expect("a sealed blob opens");
    assert_eq!(&plain[..], data);
}

/// A store file header as `KeyStore` writes it for a key-file root key,
/// with a fixed nonce.
fn store_header() -> [u8; store::STORE_HEADER_LEN] {
    let mut h = [0u8; store::STORE_HEADER_LEN];
    h[0..8].copy_from_slice(&store::STORE_MAGIC);
    h[8..10].copy_from_slice(&store::STORE_VERSION.to_be_bytes());
    h[10] = 1;
    h[40..52].copy_from_slice(&[0x22; 12]);
    h
}

fn seal_store(json: &[u8], root: &KeyMaterial) -> Vec<u8> {
    let header = store_header();
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&root.seal(&[0x22; 12], &header, json));
    bytes
}

/// The key store file parser (header, then unseal and JSON). First byte 0
/// or 1: the rest is a store file, opened under the root key of fixture
/// volume_v1 or volume_v2. Otherwise the rest is the store's JSON, sealed
/// under the v2 root key first so the fuzzer reaches the JSON. A store that
/// opens re-seals and re-opens to the same JSON.
///
/// No Argon2 runs: the parser only reads the Argon2 parameters; deriving a
/// passphrase root key from them is a separate step (`derive_root`).
pub fn key_store(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let root = root_key(usize::from(mode));
    let parsed = if mode < 2 {
        store::parse_store_bytes(rest, &root)
    } else {
        store::parse_store_bytes(&seal_store(rest, &root), &root)
    };
    let Ok(parsed) = parsed else {
        return;
    };
    let json = serde_json::to_vec(&parsed).expect("store data encodes");
    let again = store::parse_store_bytes(&seal_store(&json, &root), &root)
        .expect("re-sealed store data opens");
    assert_eq!(
        serde_json::to_value(&again).expect("store data encodes"),
        serde_json::to_value(&parsed).expect("store data encodes")
    );
}

/// `VolumeConfig::parse`; an accepted config re-encodes to one that parses
/// equal.
pub fn volume_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = VolumeConfig::parse(text) else {
        return;
    };
    let _ = config.header_len();
    let _ = config.encrypted_names();
    let text = serde_json::to_string_pretty(&config).expect("a config encodes");
    assert_eq!(VolumeConfig::parse(&text), Ok(config));
}

/// `RotationState::parse`; an accepted state re-encodes to one that parses
/// equal.
pub fn rotation_state(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(state) = RotationState::parse(text) else {
        return;
    };
    let text = serde_json::to_string_pretty(&state).expect("a state encodes");
    let again = RotationState::parse(&text).expect("a re-encoded state parses");
    assert_eq!(
        serde_json::to_value(&again).expect("a state encodes"),
        serde_json::to_value(&state).expect("a state encodes")
    );
}

/// Encrypted names under [`FIXED_KEY`] as name key. First byte selects:
/// 0 an entry name or side file (classified, then decrypted in
/// [`FIXED_DIR`]), 1 a symlink target, 2 an xattr name, 3 an xattr value,
/// 4 a directory id file; 5..=8 the same four as plaintexts: encrypted,
/// they decrypt back.
pub fn names(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let keys = NameKeys::derive(&DataKey::from_slice(&FIXED_KEY).expect("32 bytes"));
    match which % 9 {
        0 => {
            let class = names::classify(rest);
            if let Ok(entry) = std::str::from_utf8(rest) {
                let plain = keys.decrypt_name(&FIXED_DIR, entry);
                if plain.is_ok() {
                    // Valid names are short entries or side file contents.
                    assert!(!matches!(
                        class,
                        names::EntryClass::DirId | names::EntryClass::LongSide
                    ));
                }
                if let Some(stem) = entry.strip_suffix(names::SIDE_SUFFIX) {
                    let _ = names::long_entry_matches(stem, entry);
                }
            }
        }
        1 => {
            if let Ok(target) = keys.decrypt_link(rest) {
                assert!(!target.is_empty() && !target.contains(&0));
            }
        }
        2 => {
            let encrypted = names::is_encrypted_xattr_name(rest);
            if let Ok(name) = keys.decrypt_xattr_name(rest) {
                assert!(encrypted);
                assert!(name.starts_with(b"user."));
            }
        }
        3 => {
            let _ = keys.decrypt_xattr_value(XATTR_STORED_NAME, rest);
        }
        4 => {
            if let Ok(id) = DirId::decode(rest) {
                assert_eq!(id.as_bytes()[..], rest[..]);
            }
        }
        5 => {
            let Ok(backing) = keys.encrypt_name(&FIXED_DIR, rest) else {
                return;
            };
            let encoded = match &backing {
                names::BackingName::Short(encoded) => {
                    assert_eq!(
                        names::classify(encoded.as_bytes()),
                        names::EntryClass::Short
                    );
                    encoded
                }
                names::BackingName::Long {
                    entry,
                    side_file,
                    encoded,
                } => {
                    assert_eq!(names::classify(entry.as_bytes()), names::EntryClass::Long);
                    assert_eq!(
                        names::classify(side_file.as_bytes()),
                        names::EntryClass::LongSide
                    );
                    assert!(names::long_entry_matches(entry, encoded));
                    encoded
                }
            };
            assert_eq!(keys.decrypt_name(&FIXED_DIR, encoded).as_deref(), Ok(rest));
        }
        6 => {
            if let Ok(stored) = keys.encrypt_link(rest) {
                assert!(stored.len() <= names::MAX_LINK_LEN && !stored.contains(&0));
                assert_eq!(keys.decrypt_link(&stored).as_deref(), Ok(rest));
            }
        }
        7 => {
            if let Ok(stored) = keys.encrypt_xattr_name(rest) {
                assert!(names::is_encrypted_xattr_name(stored.as_bytes()));
                assert_eq!(
                    keys.decrypt_xattr_name(stored.as_bytes()).as_deref(),
                    Ok(rest)
                );
            }
        }
        _ => {
            let stored = keys.encrypt_xattr_value(XATTR_STORED_NAME, rest);
            assert_eq!(
                keys.decrypt_xattr_value(XATTR_STORED_NAME, &stored)
                    .as_deref(),
                Ok(rest)
            );
        }
    }
}

/// A KMS JSON request as the server reads it: first byte selects the
/// operation (index into `Operation::ALL`), the rest is the body. Parsed
/// into the operation's typed request (`api::parse_request`, the first step
/// of `api::handle`); the request re-encoded parses to the same JSON.
pub fn kms_json_request(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let operation = Operation::ALL[usize::from(which) % Operation::ALL.len()].name();
    // As the server: an empty body is no members, anything else is JSON.
    let request: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(_) => return,
        }
    };
    let Ok(typed) = api::parse_request(operation, &request) else {
        return;
    };
    let again = api::parse_request(operation, &typed).expect("a re-encoded request parses");
    assert_eq!(again, typed);
}

/// SigV4: lines of `data` are an `Authorization` header, an `X-Amz-Date`,
/// a query string, then `name: value` headers. A parsed Authorization
/// re-renders to a header that parses equal; a parsed date formats back to
/// the same instant; the canonical request is built from all of them.
pub fn sigv4_headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let authorization = lines.next().unwrap_or_default();
    let amz_date = lines.next().unwrap_or_default();
    let query = lines.next().unwrap_or_default();
    let headers: Vec<(String, String)> = lines
        .map(|line| match line.split_once(':') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (line.to_string(), String::new()),
        })
        .collect();
    let auth = sigv4::Authorization::parse(authorization);
    if let Ok(auth) = &auth {
        assert_eq!(
            sigv4::Authorization::parse(&auth.header_value()).as_ref(),
            Ok(auth)
        );
        let _ = auth.scope();
    }
    // Up to year 9999, the range X-Amz-Date's four-digit year can name.
    if let Some(unix) = sigv4::parse_amz_date(amz_date)
        && (0..=253_402_300_799).contains(&unix)
    {
        let formatted = sigv4::format_amz_date(unix);
        assert_eq!(sigv4::parse_amz_date(&formatted), Some(unix));
    }
    let signed: Vec<String> = match &auth {
        Ok(auth) => auth.signed_headers.clone(),
        Err(_) => headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect(),
    };
    let creq = sigv4::canonical_request("POST", "/", query, &headers, &signed, "UNSIGNED");
    let _ = sigv4::string_to_sign(amz_date, "scope", &creq);
    let _ = sigv4::uri_encode(query, true);
}
