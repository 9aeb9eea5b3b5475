//! Format version 2: encryption of file and directory names, symlink targets
//! and `user.*` extended attributes. Pure: no I/O; the caller reads and
//! writes the directory id files, side files, links and attributes.
//!
//! docs/FORMAT.md, "Names, symlink targets and extended attributes (format
//! version 2)", is the normative description; this is a summary.
//!
//! * Keys: [`NameKeys::derive`] expands the volume's 32-byte name key with
//!   HKDF-SHA256 (no salt) into four independent 64-byte AES-256-SIV keys
//!   (RFC 5297, CMAC-based), one per purpose, with the info strings
//!   `kmsfs v2 names`, `kmsfs v2 symlink targets`, `kmsfs v2 xattr names`
//!   and `kmsfs v2 xattr values`.
//! * Names: deterministic AES-SIV with one associated-data component, the
//!   16-byte [`DirId`] of the directory holding the entry (stored in that
//!   directory's [`DIR_ID_FILE`]). The 16-byte synthetic IV followed by the
//!   ciphertext is encoded as URL-safe base64 without padding. An encoding of
//!   at most 255 characters is the entry name itself ([`BackingName::Short`];
//!   plaintext names of up to [`MAX_SHORT_NAME`] = 175 bytes). A longer one is
//!   stored in a side file `L.<h>.name` next to an entry `L.<h>`, where `<h>`
//!   is base64url(SHA-256(encoding)) ([`BackingName::Long`]).
//!   Decoding is strict (no padding, no non-zero trailing bits), so every
//!   ciphertext has exactly one spelling.
//! * Symlink targets: `~` followed by escape(nonce ‖ AES-SIV(targets key,
//!   AD = [nonce], target)) with a fresh random 16-byte nonce; the escape
//!   maps 0x00 → 0x01 0x01 and 0x01 → 0x01 0x02 so the stored target holds
//!   no NUL. The marker `~` makes a stored target recognisable; a plaintext
//!   (version 1) target, even one that starts with `~`, fails
//!   authentication and is reported as [`NameError::Corrupt`], never
//!   returned as a target.
//! * `user.*` attribute names: `user.` + base64url(AES-SIV(xattr-names key,
//!   no associated data at all (an empty AD list), rest)), where `rest` is
//!   the part after `user.`. Deterministic, so a lookup by name works; the
//!   same attribute name has the same stored name on every file of the
//!   volume.
//! * Attribute values: nonce ‖ AES-SIV(xattr-values key, AD = [stored
//!   attribute name, nonce], value) with a fresh random 16-byte nonce. The
//!   value is bound to its attribute's name, not to the file: a value copied
//!   to the same attribute of another file of the volume still decrypts.
//!
//! Errors ([`NameError`]) carry no name bytes and no key bytes.

use std::fmt;

use aes_siv::KeyInit;
use aes_siv::siv::Aes256Siv;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cipher::{DataKey, fill_random};

/// Name of the file in every backing directory that holds its [`DirId`]
/// (exactly 16 bytes).
pub const DIR_ID_FILE: &str = ".kmsfs.dirid";
/// Length of a [`DirId`] in bytes.
pub const DIR_ID_LEN: usize = 16;
/// Length of one AES-256-SIV key (a CMAC key and a CTR key, 32 bytes each).
pub const SIV_KEY_LEN: usize = 64;
/// Length of the synthetic IV (the tag) AES-SIV prepends to a ciphertext.
pub const SIV_TAG_LEN: usize = 16;
/// Length of the random nonce of symlink targets and attribute values.
pub const RANDOM_NONCE_LEN: usize = 16;
/// Longest plaintext name (and longest backing entry name), in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest plaintext name whose encoding fits in one entry name.
pub const MAX_SHORT_NAME: usize = 175;
/// Longest symlink target Linux stores (PATH_MAX − 1), plaintext or stored.
pub const MAX_LINK_LEN: usize = 4095;
/// Longest full plaintext `user.*` attribute name that can be encrypted
/// (`user.` and 171 bytes; the stored name is then 255 bytes).
pub const MAX_XATTR_NAME: usize = 176;
/// Largest attribute value Linux stores (XATTR_SIZE_MAX).
pub const XATTR_SIZE_MAX: usize = 65536;
/// Largest plaintext attribute value: [`XATTR_SIZE_MAX`] minus the nonce
/// and the tag. [`NameKeys::encrypt_xattr_value`] does not check it; the
/// caller refuses a longer value (E2BIG) before encrypting.
pub const MAX_XATTR_VALUE: usize = XATTR_SIZE_MAX - RANDOM_NONCE_LEN - SIV_TAG_LEN;

/// Marker byte that starts every stored (encrypted) symlink target.
pub const LINK_MARKER: u8 = b'~';
/// Prefix of long-name entries and their side files.
pub const LONG_PREFIX: &str = "L.";
/// Suffix of the side file of a long-name entry.
pub const SIDE_SUFFIX: &str = ".name";
/// Length of a long-name entry: `L.` + 43 base64url characters.
pub const LONG_ENTRY_LEN: usize = 2 + 43;
/// Shortest possible short entry: the encoding of a tag and one byte.
pub const MIN_SHORT_ENTRY: usize = 23;

const XATTR_USER: &[u8] = b"user.";
const LINK_ATTEMPTS: usize = 16;

const INFO_NAMES: &[u8] = b"kmsfs v2 names";
const INFO_LINKS: &[u8] = b"kmsfs v2 symlink targets";
const INFO_XATTR_NAMES: &[u8] = b"kmsfs v2 xattr names";
const INFO_XATTR_VALUES: &[u8] = b"kmsfs v2 xattr values";

/// Why a name, target or attribute could not be encrypted or decrypted.
/// Deliberately without detail: no name bytes, no key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a valid plaintext name, target or attribute name (empty, `.`,
    /// `..`, contains `/` or NUL, or lacks the `user.` prefix).
    #[error("invalid name")]
    Invalid,
    /// Valid, but too long to encrypt within the backing limits.
    #[error("name too long")]
    TooLong,
    /// The stored form is malformed or fails authentication.
    #[error("corrupt encrypted name")]
    Corrupt,
}

impl NameError {
    /// The errno a filesystem operation reports for this error:
    /// EINVAL, ENAMETOOLONG or EIO.
    pub fn errno(&self) -> i32 {
        use nix::errno::Errno;
        match self {
            NameError::Invalid => Errno::EINVAL as i32,
            NameError::TooLong => Errno::ENAMETOOLONG as i32,
            NameError::Corrupt => Errno::EIO as i32,
        }
    }
}

/// The random identifier of one backing directory; the associated data of
/// every name encrypted in it. Not secret (it is stored in plaintext).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirId(pub [u8; DIR_ID_LEN]);

impl DirId {
    /// A new id from the OS CSPRNG.
    pub fn random() -> Self {
        let mut id = [0u8; DIR_ID_LEN];
        fill_random(&mut id);
        DirId(id)
    }

    /// Parses the content of a [`DIR_ID_FILE`]: exactly 16 bytes.
    pub fn decode(bytes: &[u8]) -> Result<DirId, NameError> {
        let id: [u8; DIR_ID_LEN] = bytes.try_into().map_err(|_| NameError::Corrupt)?;
        Ok(DirId(id))
    }

    /// The 16 bytes to write into the [`DIR_ID_FILE`].
    pub fn as_bytes(&self) -> &[u8; DIR_ID_LEN] {
        &self.0
    }
}

/// The backing form of one encrypted name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackingName {
    /// The encoding is the directory entry's name.
    Short(String),
    /// The entry `entry` (`L.` + base64url(SHA-256(`encoded`))) and beside it
    /// the file `side_file` (`entry` + `.name`), whose content is `encoded`
    /// (ASCII, no newline).
    Long {
        entry: String,
        side_file: String,
        encoded: String,
    },
}

impl BackingName {
    /// The directory entry name, in both cases.
    pub fn entry(&self) -> &str {
        match self {
            BackingName::Short(encoded) => encoded,
            BackingName::Long { entry, .. } => entry,
        }
    }
}

/// What a backing directory entry is, judged by its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryClass {
    /// An encoded name (only base64url characters, at least 23 of them).
    Short,
    /// A long-name entry: `L.` + 43 base64url characters.
    Long,
    /// The side file of a long-name entry: a [`EntryClass::Long`] name +
    /// `.name`.
    LongSide,
    /// The directory id file, [`DIR_ID_FILE`].
    DirId,
    /// Anything else: not written by kmsfs v2 (hidden from the mount).
    Foreign,
}

fn is_b64url(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_long_entry(entry: &[u8]) -> bool {
    entry.len() == LONG_ENTRY_LEN
        && entry.starts_with(LONG_PREFIX.as_bytes())
        && is_b64url(&entry[LONG_PREFIX.len()..])
}

/// Classifies a backing directory entry name.
pub fn classify(entry: &[u8]) -> EntryClass {
    if entry == DIR_ID_FILE.as_bytes() {
        EntryClass::DirId
    } else if is_long_entry(entry) {
        EntryClass::Long
    } else if entry
        .strip_suffix(SIDE_SUFFIX.as_bytes())
        .is_some_and(is_long_entry)
    {
        EntryClass::LongSide
    } else if entry.len() >= MIN_SHORT_ENTRY && is_b64url(entry) {
        EntryClass::Short
    } else {
        EntryClass::Foreign
    }
}

/// The side file name of a long-name entry (`entry` + `.name`).
pub fn side_file_of(entry: &str) -> String {
    format!("{entry}{SIDE_SUFFIX}")
}

fn long_entry_for(encoded: &str) -> String {
    let digest = Sha256::digest(encoded.as_bytes());
    format!("{LONG_PREFIX}{}", URL_SAFE_NO_PAD.encode(digest))
}

/// Whether `encoded` (a side file's content) belongs to the long-name entry
/// `entry`, i.e. `entry` is `L.` + base64url(SHA-256(`encoded`)).
pub fn long_entry_matches(entry: &str, encoded: &str) -> bool {
    long_entry_for(encoded) == entry
}

/// Whether a stored attribute name is one kmsfs v2 encrypted: `user.`
/// followed by at least 23 base64url characters. `user.kmsfs.header` is not.
pub fn is_encrypted_xattr_name(stored: &[u8]) -> bool {
    stored
        .strip_prefix(XATTR_USER)
        .is_some_and(|rest| rest.len() >= MIN_SHORT_ENTRY && is_b64url(rest))
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != b"."
        && name != b".."
        && !name.iter().any(|&b| b == b'/' || b == 0)
}

fn valid_link(target: &[u8]) -> bool {
    !target.is_empty() && target.len() <= MAX_LINK_LEN && !target.contains(&0)
}

/// 0x00 → 0x01 0x01, 0x01 → 0x01 0x02, every other byte literal.
fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            0x00 => out.extend_from_slice(&[0x01, 0x01]),
            0x01 => out.extend_from_slice(&[0x01, 0x02]),
            _ => out.push(b),
        }
    }
}

fn unescape(bytes: &[u8]) -> Result<Vec<u8>, NameError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        match b {
            0x00 => return Err(NameError::Corrupt),
            0x01 => match it.next() {
                Some(0x01) => out.push(0x00),
                Some(0x02) => out.push(0x01),
                _ => return Err(NameError::Corrupt),
            },
            _ => out.push(b),
        }
    }
    Ok(out)
}

/// The four AES-256-SIV keys of a volume, derived from its name key.
/// Wiped on drop; `Debug` prints no key bytes.
pub struct NameKeys {
    names: Zeroizing<[u8; SIV_KEY_LEN]>,
    links: Zeroizing<[u8; SIV_KEY_LEN]>,
    xattr_names: Zeroizing<[u8; SIV_KEY_LEN]>,
    xattr_values: Zeroizing<[u8; SIV_KEY_LEN]>,
}

impl fmt::Debug for NameKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NameKeys(<redacted>)")
    }
}

fn siv(key: &[u8; SIV_KEY_LEN]) -> Aes256Siv {
    // The key is exactly the cipher's key size, so this cannot fail.
    Aes256Siv::new_from_slice(key).expect("AES-256-SIV takes a 64-byte key")
}

fn siv_encrypt(key: &[u8; SIV_KEY_LEN], ad: &[&[u8]], plain: &[u8]) -> Vec<u8> {
    // `encrypt` fails only for more than 126 AD components; we pass ≤ 2.
    siv(key)
        .encrypt(ad, plain)
        .expect("AES-SIV with at most two AD components")
}

fn siv_decrypt(key: &[u8; SIV_KEY_LEN], ad: &[&[u8]], sealed: &[u8]) -> Result<Vec<u8>, NameError> {
    if sealed.len() < SIV_TAG_LEN {
        return Err(NameError::Corrupt);
    }
    siv(key).decrypt(ad, sealed).map_err(|_| NameError::Corrupt)
}

impl NameKeys {
    /// Derives the four keys from the volume's name key with HKDF-SHA256
    /// (no salt; one info string per purpose; 64 bytes each).
    pub fn derive(master: &DataKey) -> NameKeys {
        let hk = Hkdf::<Sha256>::new(None, master.as_bytes());
        let expand = |info: &[u8]| {
            let mut okm = Zeroizing::new([0u8; SIV_KEY_LEN]);
            // 64 bytes is far below HKDF-SHA256's limit of 8160.
            hk.expand(info, okm.as_mut_slice())
                .expect("64 bytes is a valid HKDF-SHA256 output length");
            okm
        };
        NameKeys {
            names: expand(INFO_NAMES),
            links: expand(INFO_LINKS),
            xattr_names: expand(INFO_XATTR_NAMES),
            xattr_values: expand(INFO_XATTR_VALUES),
        }
    }

    /// Encrypts the name `plain` of an entry of the directory `dir`.
    /// Deterministic: the same directory and name give the same result.
    pub fn encrypt_name(&self, dir: &DirId, plain: &[u8]) -> Result<BackingName, NameError> {
        if plain.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if !valid_name(plain) {
            return Err(NameError::Invalid);
        }
        let sealed = siv_encrypt(&self.names, &[dir.as_bytes()], plain);
        let encoded = URL_SAFE_NO_PAD.encode(sealed);
        if encoded.len() <= MAX_NAME_LEN {
            return Ok(BackingName::Short(encoded));
        }
        let entry = long_entry_for(&encoded);
        let side_file = side_file_of(&entry);
        Ok(BackingName::Long {
            entry,
            side_file,
            encoded,
        })
    }

    /// Decrypts a short entry name, or the content of a long entry's side
    /// file, of the directory `dir`. For a side file the caller first checks
    /// [`long_entry_matches`].
    pub fn decrypt_name(&self, dir: &DirId, encoded: &str) -> Result<Vec<u8>, NameError> {
        let sealed = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| NameError::Corrupt)?;
        let plain = siv_decrypt(&self.names, &[dir.as_bytes()], &sealed)?;
        if !valid_name(&plain) {
            return Err(NameError::Corrupt);
        }
        Ok(plain)
    }

    /// Encrypts a symlink target with a fresh random nonce. The result holds
    /// no NUL and is at most 4095 bytes; a target whose escaped ciphertext
    /// does not fit after 16 fresh nonces is [`NameError::TooLong`].
    pub fn encrypt_link(&self, target: &[u8]) -> Result<Vec<u8>, NameError> {
        if !valid_link(target) {
            return Err(NameError::Invalid);
        }
        for _ in 0..LINK_ATTEMPTS {
            let mut nonce = [0u8; RANDOM_NONCE_LEN];
            fill_random(&mut nonce);
            let stored = self.seal_link(target, &nonce);
            if stored.len() <= MAX_LINK_LEN {
                return Ok(stored);
            }
        }
        Err(NameError::TooLong)
    }

    fn seal_link(&self, target: &[u8], nonce: &[u8; RANDOM_NONCE_LEN]) -> Vec<u8> {
        let sealed = siv_encrypt(&self.links, &[nonce], target);
        let mut stored = Vec::with_capacity(1 + 2 * (RANDOM_NONCE_LEN + sealed.len()));
        stored.push(LINK_MARKER);
        escape(nonce, &mut stored);
        escape(&sealed, &mut stored);
        stored
    }

    /// Decrypts a stored symlink target.
    pub fn decrypt_link(&self, stored: &[u8]) -> Result<Vec<u8>, NameError> {
        let body = stored
            .strip_prefix(&[LINK_MARKER])
            .ok_or(NameError::Corrupt)?;
        let raw = unescape(body)?;
        if raw.len() < RANDOM_NONCE_LEN + SIV_TAG_LEN {
            return Err(NameError::Corrupt);
        }
        let (nonce, sealed) = raw.split_at(RANDOM_NONCE_LEN);
        let target = siv_decrypt(&self.links, &[nonce], sealed)?;
        if !valid_link(&target) {
            return Err(NameError::Corrupt);
        }
        Ok(target)
    }

    /// Encrypts a full `user.*` attribute name; deterministic. Names outside
    /// the `user.` namespace are not encrypted ([`NameError::Invalid`]); the
    /// caller passes them through.
    pub fn encrypt_xattr_name(&self, name: &[u8]) -> Result<String, NameError> {
        let rest = name.strip_prefix(XATTR_USER).ok_or(NameError::Invalid)?;
        if rest.is_empty() || rest.contains(&0) {
            return Err(NameError::Invalid);
        }
        if name.len() > MAX_XATTR_NAME {
            return Err(NameError::TooLong);
        }
        let sealed = siv_encrypt(&self.xattr_names, &[], rest);
        let stored = format!("user.{}", URL_SAFE_NO_PAD.encode(sealed));
        if stored.len() > MAX_NAME_LEN {
            // Unreachable given MAX_XATTR_NAME; kept as the rule itself.
            return Err(NameError::TooLong);
        }
        Ok(stored)
    }

    /// Decrypts a stored attribute name to the full plaintext name
    /// (including `user.`).
    pub fn decrypt_xattr_name(&self, stored: &[u8]) -> Result<Vec<u8>, NameError> {
        if !is_encrypted_xattr_name(stored) {
            return Err(NameError::Corrupt);
        }
        let sealed = URL_SAFE_NO_PAD
            .decode(&stored[XATTR_USER.len()..])
            .map_err(|_| NameError::Corrupt)?;
        let rest = siv_decrypt(&self.xattr_names, &[], &sealed)?;
        if rest.is_empty() || rest.contains(&0) {
            return Err(NameError::Corrupt);
        }
        let mut name = Vec::with_capacity(XATTR_USER.len() + rest.len());
        name.extend_from_slice(XATTR_USER);
        name.extend_from_slice(&rest);
        Ok(name)
    }

    /// Encrypts the value of the attribute stored as `stored_name` with a
    /// fresh random nonce; the result is 32 bytes longer than `value`. The
    /// caller refuses values longer than [`MAX_XATTR_VALUE`] first.
    pub fn encrypt_xattr_value(&self, stored_name: &str, value: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; RANDOM_NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_xattr_value(stored_name, value, &nonce)
    }

    fn seal_xattr_value(
        &self,
        stored_name: &str,
        value: &[u8],
        nonce: &[u8; RANDOM_NONCE_LEN],
    ) -> Vec<u8> {
        let sealed = siv_encrypt(&self.xattr_values, &[stored_name.as_bytes(), nonce], value);
        let mut stored = Vec::with_capacity(RANDOM_NONCE_LEN + sealed.len());
        stored.extend_from_slice(nonce);
        stored.extend_from_slice(&sealed);
        stored
    }

    /// Decrypts the stored value of the attribute stored as `stored_name`.
    pub fn decrypt_xattr_value(
        &self,
        stored_name: &str,
        stored: &[u8],
    ) -> Result<Vec<u8>, NameError> {
        if stored.len() < RANDOM_NONCE_LEN + SIV_TAG_LEN {
            return Err(NameError::Corrupt);
        }
        let (nonce, sealed) = stored.split_at(RANDOM_NONCE_LEN);
        siv_decrypt(&self.xattr_values, &[stored_name.as_bytes(), nonce], sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> NameKeys {
        NameKeys::derive(&DataKey::from_slice(&[0x07; 32]).unwrap())
    }

    const DIR: DirId = DirId([0x11; 16]);

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The 200-byte name of the long test vector: "0123456789" × 20.
    fn long_vector_name() -> Vec<u8> {
        b"0123456789".repeat(20)
    }

    // The fixed vectors below were computed with this module and reproduced
    // independently by tests/fixtures/gen_names_v2.py (Python `cryptography`'s
    // HKDF and AESSIV), which prints the same values.
    const HELLO_ENTRY: &str = "bY1Sb1zSzTU8jCj8FKf6aU-RHUmHjGfzMQ";
    const LONG_ENTRY: &str = "L.uv7HS67mOP1MnbSrLUf2106hz31d5mQ4lvYT9yyXaz8";
    const LONG_ENCODED: &str = concat!(
        "dV7Q16KY2bLIyeFYDzeOoWU4ogZCiW2Gfex1d5k9gFvhA5sjAJyK_rR3b1y83ZrENYH3BbYd8tqCv00NFsVqaxhwR2UiSGS",
        "--qkFv_gMgWWnZNpbHkMEbmKXOU0xsajaWbY_M0iD1BjBQx54CclEQf9AtkkjLPxaKORbeGhBV6gxOXpoaMD9L88r7kvTtlU",
        "wPFjonFOGOnCLO2JjIeb1t72rQGC7jZ9HbVdaI1P_LiUkvlmtdU-ZTOWoDfXjFvmu-ztPZVspueVu43MUrN8Bbhr_SJZGYVqH"
    );
    const COMMENT_XATTR: &str = "user.d7X0Y3bN7YgCNqmD_vKdw9fAp1_VIv4";
    /// `../some/target` with nonce 00 01 02 … 0f (exercises the escape).
    const LINK_STORED_HEX: &str = concat!(
        "7e0101010202030405060708090a0b0c0d0e0f",
        "4a1b9446082fa8c8ca409d4a0942c288f89de850f46e16dbd6ff95225024"
    );
    /// `hello` as the value of `user.comment`, nonce 0x33 × 16.
    const VALUE_STORED_HEX: &str = concat!(
        "33333333333333333333333333333333",
        "9aa78f0e60198126e3e5c1f7e2ce46bb968448522a"
    );

    #[test]
    fn fixed_vectors() {
        let k = keys();
        let hello = k.encrypt_name(&DIR, b"hello.txt").unwrap();
        let long = k.encrypt_name(&DIR, &long_vector_name()).unwrap();
        let xname = k.encrypt_xattr_name(b"user.comment").unwrap();
        let mut nonce = [0u8; 16];
        for (i, b) in nonce.iter_mut().enumerate() {
            *b = i as u8;
        }
        let link = k.seal_link(b"../some/target", &nonce);
        let value = k.seal_xattr_value(&xname, b"hello", &[0x33; 16]);

        assert_eq!(hello, BackingName::Short(HELLO_ENTRY.to_owned()));
        assert_eq!(
            long,
            BackingName::Long {
                entry: LONG_ENTRY.to_owned(),
                side_file: format!("{LONG_ENTRY}.name"),
                encoded: LONG_ENCODED.to_owned(),
            }
        );
        assert_eq!(xname, COMMENT_XATTR);
        assert_eq!(hex(&link), LINK_STORED_HEX);
        assert_eq!(hex(&value), VALUE_STORED_HEX);

        // And the other direction, from the stored forms alone.
        assert_eq!(k.decrypt_name(&DIR, HELLO_ENTRY).unwrap(), b"hello.txt");
        assert_eq!(
            k.decrypt_name(&DIR, LONG_ENCODED).unwrap(),
            long_vector_name()
        );
        assert!(long_entry_matches(LONG_ENTRY, LONG_ENCODED));
        assert_eq!(
            k.decrypt_xattr_name(COMMENT_XATTR.as_bytes()).unwrap(),
            b"user.comment"
        );
        assert_eq!(
            k.decrypt_link(&unhex(LINK_STORED_HEX)).unwrap(),
            b"../some/target"
        );
        assert_eq!(
            k.decrypt_xattr_value(COMMENT_XATTR, &unhex(VALUE_STORED_HEX))
                .unwrap(),
            b"hello"
        );
    }

    /// Every byte except `/` and NUL.
    fn name_byte() -> impl Strategy<Value = u8> {
        any::<u8>().prop_filter("no / or NUL", |&b| b != b'/' && b != 0)
    }

    fn plain_name(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(name_byte(), 1..=max)
            .prop_filter("not . or ..", |n| n != b"." && n != b"..")
    }

    fn link_target() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 1..=4000)
    }

    /// Every variant of `s` with one byte changed: XOR 1 and XOR 0x80 at each
    /// position, and (for text) every other base64url character.
    fn one_byte_changes(s: &[u8]) -> Vec<Vec<u8>> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = Vec::new();
        for i in 0..s.len() {
            for mask in [0x01, 0x80] {
                let mut t = s.to_vec();
                t[i] ^= mask;
                out.push(t);
            }
            for &c in ALPHABET {
                if c != s[i] {
                    let mut t = s.to_vec();
                    t[i] = c;
                    out.push(t);
                }
            }
        }
        out
    }

    #[test]
    fn derived_keys_are_distinct_and_debug_is_redacted() {
        let k = keys();
        let all = [&k.names, &k.links, &k.xattr_names, &k.xattr_values];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.as_slice(), b.as_slice());
            }
        }
        let other = NameKeys::derive(&DataKey::from_slice(&[0x08; 32]).unwrap());
        assert_ne!(k.names.as_slice(), other.names.as_slice());
        let debug = format!("{k:?}");
        assert_eq!(debug, "NameKeys(<redacted>)");
        for key in all {
            assert!(!debug.contains(&hex(&key[..4])));
        }
    }

    #[test]
    fn dir_id_decode() {
        assert_eq!(DirId::decode(&[0x11; 16]).unwrap(), DIR);
        assert_eq!(DirId::decode(DIR.as_bytes()).unwrap(), DIR);
        assert_eq!(DirId::decode(&[0; 15]), Err(NameError::Corrupt));
        assert_eq!(DirId::decode(&[0; 17]), Err(NameError::Corrupt));
        assert_eq!(DirId::decode(&[]), Err(NameError::Corrupt));
        assert_ne!(DirId::random(), DirId::random());
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(NameError::Invalid.errno(), libc_errno::EINVAL);
        assert_eq!(NameError::TooLong.errno(), libc_errno::ENAMETOOLONG);
        assert_eq!(NameError::Corrupt.errno(), libc_errno::EIO);
    }

    /// Linux errno values, written out so the test checks nix's mapping.
    mod libc_errno {
        pub(super) const EINVAL: i32 = 22;
        pub(super) const ENAMETOOLONG: i32 = 36;
        pub(super) const EIO: i32 = 5;
    }

    #[test]
    fn invalid_names_are_refused() {
        let k = keys();
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b", b"\0"] {
            assert_eq!(
                k.encrypt_name(&DIR, bad),
                Err(NameError::Invalid),
                "{bad:?}"
            );
        }
        assert_eq!(k.encrypt_name(&DIR, &[b'a'; 256]), Err(NameError::TooLong));
        assert_eq!(k.encrypt_name(&DIR, &[b'/'; 256]), Err(NameError::TooLong));
        for ok in [&b"..."[..], b".a", b"..a", b" ", b"\xff\xfe"] {
            let enc = k.encrypt_name(&DIR, ok).unwrap();
            assert_eq!(k.decrypt_name(&DIR, enc.entry()).unwrap(), ok);
        }
    }

    #[test]
    fn short_long_boundary() {
        let k = keys();
        for len in [1, 2, 100, MAX_SHORT_NAME] {
            let enc = k.encrypt_name(&DIR, &vec![b'x'; len]).unwrap();
            let BackingName::Short(e) = &enc else {
                panic!("{len} bytes should be short")
            };
            assert!(e.len() <= 255);
            assert_eq!(classify(e.as_bytes()), EntryClass::Short);
        }
        let one = k.encrypt_name(&DIR, b"x").unwrap();
        assert_eq!(one.entry().len(), MIN_SHORT_ENTRY);
        let edge = k.encrypt_name(&DIR, &[b'x'; MAX_SHORT_NAME]).unwrap();
        assert_eq!(edge.entry().len(), 255);
        for len in [MAX_SHORT_NAME + 1, 200, MAX_NAME_LEN] {
            let name = vec![b'y'; len];
            let enc = k.encrypt_name(&DIR, &name).unwrap();
            let BackingName::Long {
                entry,
                side_file,
                encoded,
            } = &enc
            else {
                panic!("{len} bytes should be long")
            };
            assert_eq!(enc.entry(), entry);
            assert_eq!(entry.len(), LONG_ENTRY_LEN);
            assert_eq!(side_file, &side_file_of(entry));
            assert_eq!(classify(entry.as_bytes()), EntryClass::Long);
            assert_eq!(classify(side_file.as_bytes()), EntryClass::LongSide);
            assert!(encoded.len() > 255);
            assert!(long_entry_matches(entry, encoded));
            assert_eq!(k.decrypt_name(&DIR, encoded).unwrap(), name);
        }
        let longest = k.encrypt_name(&DIR, &[b'z'; MAX_NAME_LEN]).unwrap();
        let BackingName::Long { encoded, .. } = longest else {
            panic!()
        };
        assert_eq!(encoded.len(), 362);
    }

    #[test]
    fn classification() {
        let b43 = "A".repeat(43);
        let cases: Vec<(Vec<u8>, EntryClass)> = vec![
            (b".kmsfs.dirid".to_vec(), EntryClass::DirId),
            (format!("L.{b43}").into_bytes(), EntryClass::Long),
            (format!("L.{b43}.name").into_bytes(), EntryClass::LongSide),
            (
                format!("L.{}", "A".repeat(42)).into_bytes(),
                EntryClass::Foreign,
            ),
            (
                format!("L.{}", "A".repeat(44)).into_bytes(),
                EntryClass::Foreign,
            ),
            (
                format!("L.{}=", "A".repeat(42)).into_bytes(),
                EntryClass::Foreign,
            ),
            (format!("L.{b43}.nam").into_bytes(), EntryClass::Foreign),
            (format!("X.{b43}").into_bytes(), EntryClass::Foreign),
            (b"abcdefghijklmnopqrstuvw".to_vec(), EntryClass::Short),
            (b"abcdefghijklmnopqrstuv".to_vec(), EntryClass::Foreign),
            (b"abc-_ABC0123456789xyzXYZ".to_vec(), EntryClass::Short),
            (b"abcdefghijklmnopqrstuv+".to_vec(), EntryClass::Foreign),
            (b"abcdefghijklmnopqrstuv/".to_vec(), EntryClass::Foreign),
            (b"abcdefghijklmnopqrstuvw=".to_vec(), EntryClass::Foreign),
            (b"hello.txt".to_vec(), EntryClass::Foreign),
            (b".kmsfs.dirid2".to_vec(), EntryClass::Foreign),
            (b".".to_vec(), EntryClass::Foreign),
            (b"..".to_vec(), EntryClass::Foreign),
            (b"".to_vec(), EntryClass::Foreign),
            (b"\xffabcdefghijklmnopqrstuvw".to_vec(), EntryClass::Foreign),
        ];
        for (entry, class) in &cases {
            assert_eq!(
                classify(entry),
                *class,
                "{:?}",
                String::from_utf8_lossy(entry)
            );
        }
        assert_eq!(classify(HELLO_ENTRY.as_bytes()), EntryClass::Short);
        assert_eq!(classify(LONG_ENTRY.as_bytes()), EntryClass::Long);
        assert_eq!(side_file_of(LONG_ENTRY), format!("{LONG_ENTRY}.name"));
    }

    #[test]
    fn names_depend_on_the_directory() {
        let k = keys();
        let a = DirId([0x11; 16]);
        let mut b = a;
        b.0[15] ^= 1;
        for name in [b"hello.txt".to_vec(), long_vector_name()] {
            let in_a = k.encrypt_name(&a, &name).unwrap();
            assert_eq!(in_a, k.encrypt_name(&a, &name).unwrap());
            let in_b = k.encrypt_name(&b, &name).unwrap();
            assert_ne!(in_a.entry(), in_b.entry());
            let encoded_a = match &in_a {
                BackingName::Short(e) => e,
                BackingName::Long { encoded, .. } => encoded,
            };
            assert_eq!(k.decrypt_name(&a, encoded_a).unwrap(), name);
            assert_eq!(k.decrypt_name(&b, encoded_a), Err(NameError::Corrupt));
        }
        // Another volume key: another entry, and no decryption.
        let other = NameKeys::derive(&DataKey::from_slice(&[0x08; 32]).unwrap());
        let mine = k.encrypt_name(&a, b"hello.txt").unwrap();
        assert_ne!(other.encrypt_name(&a, b"hello.txt").unwrap(), mine);
        assert_eq!(
            other.decrypt_name(&a, mine.entry()),
            Err(NameError::Corrupt)
        );
    }

    #[test]
    fn tampered_names_are_corrupt() {
        let k = keys();
        for t in one_byte_changes(HELLO_ENTRY.as_bytes()) {
            let t = String::from_utf8_lossy(&t);
            assert_eq!(k.decrypt_name(&DIR, &t), Err(NameError::Corrupt), "{t}");
        }
        for t in one_byte_changes(LONG_ENCODED.as_bytes()) {
            let t = String::from_utf8_lossy(&t);
            assert_eq!(k.decrypt_name(&DIR, &t), Err(NameError::Corrupt));
            assert!(!long_entry_matches(LONG_ENTRY, &t));
        }
        // Truncated, extended, padded, empty, or too short for a tag.
        let h = HELLO_ENTRY;
        for t in [
            &h[..h.len() - 1],
            &h[1..],
            &format!("{h}A"),
            &format!("{h}="),
            "",
            "AAAA",
        ] {
            assert_eq!(k.decrypt_name(&DIR, t), Err(NameError::Corrupt), "{t}");
        }
        // A side file must belong to its entry.
        let other = k.encrypt_name(&DIR, &[b'q'; 200]).unwrap();
        let BackingName::Long { encoded, .. } = other else {
            panic!()
        };
        assert!(!long_entry_matches(LONG_ENTRY, &encoded));
    }

    #[test]
    fn authentic_but_invalid_plaintext_is_corrupt() {
        let k = keys();
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0", &[b'a'; 256]] {
            let sealed = siv_encrypt(&k.names, &[DIR.as_bytes()], bad);
            let encoded = URL_SAFE_NO_PAD.encode(sealed);
            assert_eq!(k.decrypt_name(&DIR, &encoded), Err(NameError::Corrupt));
        }
        for bad in [&b""[..], b"a\0b", &[b'a'; 4096]] {
            let stored = {
                let nonce = [9u8; 16];
                let sealed = siv_encrypt(&k.links, &[&nonce], bad);
                let mut s = vec![LINK_MARKER];
                escape(&nonce, &mut s);
                escape(&sealed, &mut s);
                s
            };
            assert_eq!(k.decrypt_link(&stored), Err(NameError::Corrupt));
        }
        for bad in [&b""[..], b"a\0b"] {
            let stored = format!(
                "user.{}",
                URL_SAFE_NO_PAD.encode(siv_encrypt(&k.xattr_names, &[], bad))
            );
            assert_eq!(
                k.decrypt_xattr_name(stored.as_bytes()),
                Err(NameError::Corrupt)
            );
        }
    }

    #[test]
    fn link_limits_and_validation() {
        let k = keys();
        for bad in [&b""[..], b"a\0b", b"\0", &[b'a'; 4096]] {
            assert_eq!(k.encrypt_link(bad), Err(NameError::Invalid));
        }
        // 4095 + marker + nonce + tag cannot fit in 4095 bytes.
        assert_eq!(k.encrypt_link(&[b'a'; 4095]), Err(NameError::TooLong));
        assert_eq!(k.encrypt_link(&[b'a'; 4063]), Err(NameError::TooLong));
        let a = k.encrypt_link(b"target").unwrap();
        let b = k.encrypt_link(b"target").unwrap();
        assert_ne!(a, b, "a fresh nonce each time");
        assert_eq!(a[0], LINK_MARKER);
        assert_eq!(k.decrypt_link(&a).unwrap(), b"target");
        assert_eq!(k.decrypt_link(&b).unwrap(), b"target");
    }

    #[test]
    fn long_links_round_trip() {
        let k = keys();
        let mut random = vec![0u8; 4000];
        fill_random(&mut random);
        for b in random.iter_mut() {
            if *b == 0 {
                *b = 0x2a;
            }
        }
        // The plaintext does not steer the escape (the ciphertext is
        // pseudorandom), but the escape bytes themselves and 0xff are the
        // obvious worst-case-looking inputs.
        let targets = [random, vec![0x01; 4000], vec![0xff; 4000], vec![b'/'; 4000]];
        for target in targets {
            for _ in 0..8 {
                let stored = k.encrypt_link(&target).unwrap();
                assert!(!stored.contains(&0));
                assert!(stored.len() <= MAX_LINK_LEN, "{}", stored.len());
                assert!(stored.len() >= 1 + 16 + 16 + 4000);
                assert_eq!(k.decrypt_link(&stored).unwrap(), target);
            }
        }
    }

    #[test]
    fn tampered_links_are_corrupt() {
        let k = keys();
        let stored = unhex(LINK_STORED_HEX);
        assert_eq!(k.decrypt_link(&stored).unwrap(), b"../some/target");
        for i in 0..stored.len() {
            for mask in [0x01, 0x02, 0x80, 0xff] {
                let mut t = stored.clone();
                t[i] ^= mask;
                assert_eq!(k.decrypt_link(&t), Err(NameError::Corrupt), "{i} {mask}");
            }
        }
        // Malformed escapes, truncation, and plaintext (v1) targets.
        let mut trailing = stored.clone();
        trailing.push(0x01);
        let mut bad_pair = stored.clone();
        bad_pair.extend_from_slice(&[0x01, 0x03]);
        for t in [
            trailing,
            bad_pair,
            stored[..stored.len() - 1].to_vec(),
            stored[1..].to_vec(),
            vec![LINK_MARKER],
            vec![],
            b"../some/target".to_vec(),
            b"~/some/target".to_vec(),
            b"~aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
        ] {
            assert_eq!(k.decrypt_link(&t), Err(NameError::Corrupt));
        }
    }

    #[test]
    fn xattr_names() {
        let k = keys();
        for bad in [
            &b"security.selinux"[..],
            b"system.posix_acl_access",
            b"trusted.x",
            b"user.",
            b"user",
            b"User.x",
            b"user.a\0",
            b"",
        ] {
            assert_eq!(k.encrypt_xattr_name(bad), Err(NameError::Invalid));
        }
        let mut longest = b"user.".to_vec();
        longest.resize(MAX_XATTR_NAME, b'n');
        let stored = k.encrypt_xattr_name(&longest).unwrap();
        assert_eq!(stored.len(), 255);
        assert_eq!(k.decrypt_xattr_name(stored.as_bytes()).unwrap(), longest);
        longest.push(b'n');
        assert_eq!(k.encrypt_xattr_name(&longest), Err(NameError::TooLong));

        let a = k.encrypt_xattr_name(b"user.comment").unwrap();
        assert_eq!(a, k.encrypt_xattr_name(b"user.comment").unwrap());
        assert_ne!(a, k.encrypt_xattr_name(b"user.comments").unwrap());
        assert!(is_encrypted_xattr_name(a.as_bytes()));
        assert!(!is_encrypted_xattr_name(b"user.kmsfs.header"));
        assert!(!is_encrypted_xattr_name(
            b"security.AAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ));
        assert!(!is_encrypted_xattr_name(b"user.short"));
        assert!(!is_encrypted_xattr_name(b"user."));
        assert_eq!(
            k.decrypt_xattr_name(b"user.kmsfs.header"),
            Err(NameError::Corrupt)
        );
        for t in one_byte_changes(COMMENT_XATTR.as_bytes()) {
            assert_eq!(k.decrypt_xattr_name(&t), Err(NameError::Corrupt));
        }
    }

    #[test]
    fn xattr_values() {
        let k = keys();
        let name = k.encrypt_xattr_name(b"user.comment").unwrap();
        let other = k.encrypt_xattr_name(b"user.other").unwrap();
        for value in [vec![], b"hello".to_vec(), vec![0u8; MAX_XATTR_VALUE]] {
            let stored = k.encrypt_xattr_value(&name, &value);
            assert_eq!(stored.len(), value.len() + 32);
            assert!(stored.len() <= XATTR_SIZE_MAX);
            assert_eq!(k.decrypt_xattr_value(&name, &stored).unwrap(), value);
            assert_eq!(
                k.decrypt_xattr_value(&other, &stored),
                Err(NameError::Corrupt)
            );
            assert_ne!(stored, k.encrypt_xattr_value(&name, &value), "fresh nonce");
        }
        let stored = unhex(VALUE_STORED_HEX);
        for i in 0..stored.len() {
            for mask in [0x01, 0x80] {
                let mut t = stored.clone();
                t[i] ^= mask;
                assert_eq!(k.decrypt_xattr_value(&name, &t), Err(NameError::Corrupt));
            }
        }
        for t in [&stored[..31], &stored[..stored.len() - 1], &[][..]] {
            assert_eq!(k.decrypt_xattr_value(&name, t), Err(NameError::Corrupt));
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert_eq!(
            k.decrypt_xattr_value(&name, &longer),
            Err(NameError::Corrupt)
        );
    }

    proptest! {
        #[test]
        fn prop_names_round_trip(name in plain_name(MAX_NAME_LEN), id in any::<[u8; 16]>()) {
            let k = keys();
            let dir = DirId(id);
            let enc = k.encrypt_name(&dir, &name).unwrap();
            prop_assert_eq!(&enc, &k.encrypt_name(&dir, &name).unwrap());
            match &enc {
                BackingName::Short(e) => {
                    prop_assert!(name.len() <= MAX_SHORT_NAME);
                    prop_assert_eq!(classify(e.as_bytes()), EntryClass::Short);
                    prop_assert_eq!(k.decrypt_name(&dir, e).unwrap(), name);
                }
                BackingName::Long { entry, side_file, encoded } => {
                    prop_assert!(name.len() > MAX_SHORT_NAME);
                    prop_assert_eq!(classify(entry.as_bytes()), EntryClass::Long);
                    prop_assert_eq!(classify(side_file.as_bytes()), EntryClass::LongSide);
                    prop_assert!(long_entry_matches(entry, encoded));
                    prop_assert_eq!(k.decrypt_name(&dir, encoded).unwrap(), name);
                }
            }
        }

        #[test]
        fn prop_short_names_round_trip(name in plain_name(MAX_SHORT_NAME)) {
            let k = keys();
            let enc = k.encrypt_name(&DIR, &name).unwrap();
            prop_assert!(matches!(enc, BackingName::Short(_)));
            prop_assert_eq!(k.decrypt_name(&DIR, enc.entry()).unwrap(), name);
        }

        #[test]
        fn prop_same_name_two_dirs_two_entries(
            name in plain_name(MAX_NAME_LEN),
            a in any::<[u8; 16]>(),
            b in any::<[u8; 16]>(),
        ) {
            prop_assume!(a != b);
            let k = keys();
            let ea = k.encrypt_name(&DirId(a), &name).unwrap();
            let eb = k.encrypt_name(&DirId(b), &name).unwrap();
            prop_assert_ne!(ea.entry(), eb.entry());
        }

        #[test]
        fn prop_links_round_trip(target in link_target()) {
            let k = keys();
            let stored = k.encrypt_link(&target).unwrap();
            prop_assert!(!stored.contains(&0));
            prop_assert!(stored.len() <= MAX_LINK_LEN);
            prop_assert_eq!(k.decrypt_link(&stored).unwrap(), target);
        }

        #[test]
        fn prop_escape_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = Vec::new();
            escape(&bytes, &mut out);
            prop_assert!(!out.contains(&0));
            prop_assert_eq!(unescape(&out).unwrap(), bytes);
        }

        #[test]
        fn prop_xattrs_round_trip(
            rest in proptest::collection::vec(1u8..=255, 1..=MAX_XATTR_NAME - 5),
            value in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let k = keys();
            let mut name = b"user.".to_vec();
            name.extend_from_slice(&rest);
            let stored = k.encrypt_xattr_name(&name).unwrap();
            prop_assert!(stored.len() <= 255);
            prop_assert!(is_encrypted_xattr_name(stored.as_bytes()));
            prop_assert_eq!(k.decrypt_xattr_name(stored.as_bytes()).unwrap(), name);
            let sealed = k.encrypt_xattr_value(&stored, &value);
            prop_assert_eq!(k.decrypt_xattr_value(&stored, &sealed).unwrap(), value);
        }
    }
}
