//! AEAD cipher suites behind one object-safe trait, plus data-key and nonce
//! helpers.
//!
//! Everything cryptographic is delegated to the RustCrypto `aes-gcm` and
//! `chacha20poly1305` crates; this module only adapts their generic API to a
//! small fixed-size interface (32-byte keys, 12-byte nonces, 16-byte tags) so
//! the rest of the filesystem can pick a suite at runtime from the file
//! header.

use std::fmt;
use std::str::FromStr;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use rand::TryRng;
use zeroize::{ZeroizeOnDrop, Zeroizing};

/// Data-key length in bytes (both suites use 256-bit keys).
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes (96-bit nonces for both suites).
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;

/// The AEAD algorithm used for a file's content. The discriminant is the
/// on-disk suite id stored in the file header, so it must never change.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    Aes256Gcm = 1,
    ChaCha20Poly1305 = 2,
}

impl CipherSuite {
    /// All suites, for iteration in tests and CLI help.
    pub const ALL: [CipherSuite; 2] = [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305];

    /// On-disk identifier.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Inverse of [`CipherSuite::id`]; `None` for unknown ids (e.g. a file
    /// written by a newer version).
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(CipherSuite::Aes256Gcm),
            2 => Some(CipherSuite::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Stable human-readable name (used in configuration files).
    pub fn name(self) -> &'static str {
        match self {
            CipherSuite::Aes256Gcm => "aes-256-gcm",
            CipherSuite::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Returned by `CipherSuite::from_str` for an unrecognised name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cipher suite {0:?} (expected \"aes-256-gcm\" or \"chacha20-poly1305\")")]
pub struct UnknownSuite(pub String);

impl FromStr for CipherSuite {
    type Err = UnknownSuite;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CipherSuite::ALL
            .into_iter()
            .find(|suite| suite.name() == s)
            .ok_or_else(|| UnknownSuite(s.to_owned()))
    }
}

/// Authentication failed: wrong key, wrong nonce/AAD, or tampered data.
/// Deliberately carries no detail so nothing about the data can leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("AEAD authentication failed")]
pub struct AuthError;

/// A keyed AEAD instance. Object-safe so the suite can be chosen at runtime.
///
/// The detached (slice-based) methods are the primitives: the content layer
/// seals many blocks into one pre-sized buffer and would otherwise need a
/// `Vec` per block. The `*_in_place` variants are conveniences on top.
pub trait BlockAead: Send + Sync {
    /// Which suite this instance implements.
    fn suite(&self) -> CipherSuite;

    /// Encrypts `buf` in place and returns the tag.
    ///
    /// # Panics
    /// Only if `buf` exceeds the algorithm's message-length limit (about
    /// 64 GiB for AES-GCM, 256 GiB for ChaCha20-Poly1305). Callers encrypt
    /// 4 KiB blocks or small key blobs, so this is a programming error, never
    /// a data-dependent failure.
    fn seal_detached(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN];

    /// Verifies `tag` and decrypts `buf` in place. On failure `buf` is left
    /// unchanged (the tag is checked before anything is decrypted), so a
    /// caller may try the same ciphertext again under other associated data
    /// (the content layer's v2 final-flag fallback relies on this; the
    /// `failed_open_leaves_the_buffer_unchanged` test pins it for both
    /// suites).
    fn open_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthError>;

    /// Encrypts `buf` in place and appends the tag.
    fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) {
        let tag = self.seal_detached(nonce, aad, buf);
        buf.extend_from_slice(&tag);
    }

    /// Verifies and strips the trailing tag, decrypting `buf` in place.
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), AuthError> {
        let ct_len = buf.len().checked_sub(TAG_LEN).ok_or(AuthError)?;
        let (ct, tag) = buf.split_at_mut(ct_len);
        // `tag` is exactly TAG_LEN long by construction of `ct_len`.
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| AuthError)?;
        self.open_detached(nonce, aad, ct, tag)?;
        buf.truncate(ct_len);
        Ok(())
    }
}

/// Adapter from a RustCrypto AEAD with 96-bit nonces and 128-bit tags to
/// [`BlockAead`]. The `ZeroizeOnDrop` bound makes it a compile error to use a
/// cipher built without its `zeroize` feature, so key schedules are always
/// wiped when the box is dropped.
struct Suite<A> {
    inner: A,
    suite: CipherSuite,
}

impl<A> BlockAead for Suite<A>
where
    A: AeadInOut<NonceSize = U12, TagSize = U16> + ZeroizeOnDrop + Send + Sync,
{
    fn suite(&self) -> CipherSuite {
        self.suite
    }

    fn seal_detached(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce: Array<u8, U12> = Array::from(*nonce);
        let tag = self
            .inner
            .encrypt_inout_detached(&nonce, aad, buf.into())
            // Only fails for messages beyond the algorithm's length limit;
            // see the trait docs.
            .expect("AEAD message length limit exceeded");
        tag.into()
    }

    fn open_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthError> {
        let nonce: Array<u8, U12> = Array::from(*nonce);
        let tag: Array<u8, U16> = Array::from(*tag);
        self.inner
            .decrypt_inout_detached(&nonce, aad, buf.into(), &tag)
            .map_err(|_| AuthError)
    }
}

/// Builds a keyed AEAD for `suite`. The instance is boxed so the expanded key
/// schedule lives at one heap address for its whole life and is zeroized
/// there on drop (a transient copy made during construction on the stack
/// cannot be wiped by us; that is a limitation shared by all Rust code using
/// these crates).
pub fn new_aead(suite: CipherSuite, key: &[u8; KEY_LEN]) -> Box<dyn BlockAead> {
    let key: &Array<u8, _> = key.into();
    match suite {
        CipherSuite::Aes256Gcm => Box::new(Suite {
            inner: Aes256Gcm::new(key),
            suite,
        }),
        CipherSuite::ChaCha20Poly1305 => Box::new(Suite {
            inner: ChaCha20Poly1305::new(key),
            suite,
        }),
    }
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
/// If the OS RNG is unavailable. There is no safe fallback for key or nonce
/// generation, and this never depends on on-disk data, so aborting the
/// operation is the only correct behaviour.
pub fn fill_random(buf: &mut [u8]) {
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .expect("operating system random number generator failed");
}

/// A fresh random 96-bit nonce. With random nonces the AES-GCM birthday bound
/// (~2^32 seals per key for a 2^-32 collision risk) applies per data key;
/// since every file has its own data key this is far out of reach.
pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    nonce
}

/// Returned when a data key of the wrong length is supplied (e.g. a key
/// service returned an unexpected plaintext). Holds only the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("data key must be {KEY_LEN} bytes, got {got}")]
pub struct KeyLengthError {
    pub got: usize,
}

/// A plaintext per-file data key. Wiped from memory on drop; never printed.
/// Not `Clone` so that copies of key material stay explicit and rare.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A new key from the OS CSPRNG.
    pub fn random() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(key.as_mut_slice());
        DataKey(key)
    }

    /// Copies a key from `bytes` (e.g. the plaintext returned by a key
    /// service's Decrypt call). The caller remains responsible for wiping
    /// its own copy.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyLengthError> {
        if bytes.len() != KEY_LEN {
            return Err(KeyLengthError { got: bytes.len() });
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(bytes);
        Ok(DataKey(key))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_ids_names_round_trip() {
        for suite in CipherSuite::ALL {
            assert_eq!(CipherSuite::from_id(suite.id()), Some(suite));
            assert_eq!(suite.name().parse::<CipherSuite>(), Ok(suite));
            assert_eq!(suite.to_string(), suite.name());
        }
        assert_eq!(CipherSuite::Aes256Gcm.id(), 1);
        assert_eq!(CipherSuite::ChaCha20Poly1305.id(), 2);
        assert_eq!(CipherSuite::from_id(0), None);
        assert_eq!(CipherSuite::from_id(3), None);
        assert!("AES-256-GCM".parse::<CipherSuite>().is_err());
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = DataKey::random();
        for suite in CipherSuite::ALL {
            let aead = new_aead(suite, key.as_bytes());
            assert_eq!(aead.suite(), suite);
            let nonce = random_nonce();
            let mut buf = b"hello block".to_vec();
            aead.seal_in_place(&nonce, b"aad", &mut buf);
            assert_eq!(buf.len(), 11 + TAG_LEN);
            assert_ne!(&buf[..11], b"hello block");

            let mut ok = buf.clone();
            aead.open_in_place(&nonce, b"aad", &mut ok).unwrap();
            assert_eq!(ok, b"hello block");

            let mut bad_aad = buf.clone();
            assert_eq!(
                aead.open_in_place(&nonce, b"aaX", &mut bad_aad),
                Err(AuthError)
            );

            let mut flipped = buf.clone();
            flipped[3] ^= 1;
            assert_eq!(
                aead.open_in_place(&nonce, b"aad", &mut flipped),
                Err(AuthError)
            );

            let mut short = vec![0u8; TAG_LEN - 1];
            assert_eq!(
                aead.open_in_place(&nonce, b"aad", &mut short),
                Err(AuthError)
            );
        }
    }

    /// Known-answer tests so a dependency or adapter bug that still round
    /// trips (e.g. swapped nonce/tag handling) is caught.
    #[test]
    fn known_answer_vectors() {
        // AES-256-GCM, NIST GCM test case 13 (zero key, zero IV, empty PT).
        let aead = new_aead(CipherSuite::Aes256Gcm, &[0u8; 32]);
        let tag = aead.seal_detached(&[0u8; 12], b"", &mut []);
        assert_eq!(hex(&tag), "530f8afbc74536b9a963b4f1c4cb738b");
        // NIST GCM test case 14 (zero key, zero IV, 16 zero bytes PT).
        let mut buf = [0u8; 16];
        let tag = aead.seal_detached(&[0u8; 12], b"", &mut buf);
        assert_eq!(hex(&buf), "cea7403d4d606b6e074ec5d3baf39d18");
        assert_eq!(hex(&tag), "d0d1c8a799996bf0265b98b5d48ab919");

        // ChaCha20-Poly1305, RFC 8439 section 2.8.2.
        let key: Vec<u8> = (0x80u8..=0x9f).collect();
        let key: [u8; 32] = key.try_into().unwrap();
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let mut buf = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        let aead = new_aead(CipherSuite::ChaCha20Poly1305, &key);
        let tag = aead.seal_detached(&nonce, &aad, &mut buf);
        assert!(hex(&buf).starts_with("d31a8d34648e60db7b86afbc53ef7ec2"));
        assert_eq!(hex(&tag), "1ae10b594f09e26a7e902ecbd0600691");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn failed_open_leaves_the_buffer_unchanged() {
        let key = DataKey::random();
        for suite in CipherSuite::ALL {
            let aead = new_aead(suite, key.as_bytes());
            let nonce = random_nonce();
            let mut buf = vec![0x5a; 100];
            let tag = aead.seal_detached(&nonce, b"right", &mut buf);
            let sealed = buf.clone();
            assert_eq!(
                aead.open_detached(&nonce, b"wrong", &mut buf, &tag),
                Err(AuthError)
            );
            assert_eq!(buf, sealed, "{suite}");
            aead.open_detached(&nonce, b"right", &mut buf, &tag)
                .unwrap();
            assert_eq!(buf, vec![0x5a; 100]);
        }
    }

    #[test]
    fn data_key_basics() {
        let a = DataKey::random();
        let b = DataKey::random();
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(format!("{a:?}"), "DataKey(<redacted>)");
        assert_eq!(
            DataKey::from_slice(&[1u8; 31]).unwrap_err(),
            KeyLengthError { got: 31 }
        );
        assert!(DataKey::from_slice(&[1u8; 33]).is_err());
        assert_eq!(
            DataKey::from_slice(&[7u8; 32]).unwrap().as_bytes(),
            &[7u8; 32]
        );
        assert_ne!(random_nonce(), random_nonce());
    }
}
