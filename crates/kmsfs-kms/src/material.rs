//! Symmetric key material of a CMK version (and of the store's root key), and
//! the one AEAD construction the key service uses with it: AES-256-GCM with a
//! random 96-bit nonce.
//!
//! Material lives only in zeroizing buffers. It serializes (inside the sealed
//! store, never anywhere else) as base64 through a zeroizing intermediate.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

pub const MATERIAL_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// 256 bits of secret key material. Never printed, never exported.
#[derive(Clone)]
pub struct KeyMaterial(Zeroizing<[u8; MATERIAL_LEN]>);

impl KeyMaterial {
    pub fn random() -> Self {
        let mut bytes = Zeroizing::new([0u8; MATERIAL_LEN]);
        rand::fill(&mut bytes[..]);
        KeyMaterial(bytes)
    }

    /// Copies `bytes` (which must be exactly 32 bytes) into a new zeroizing buffer.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != MATERIAL_LEN {
            return None;
        }
        let mut out = Zeroizing::new([0u8; MATERIAL_LEN]);
        out.copy_from_slice(bytes);
        Some(KeyMaterial(out))
    }

    pub fn as_bytes(&self) -> &[u8; MATERIAL_LEN] {
        &self.0
    }

    /// Constant-time equality, for re-imported key material.
    pub fn ct_eq(&self, other: &KeyMaterial) -> bool {
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            diff |= a ^ b;
        }
        diff == 0
    }

    fn cipher(&self) -> Aes256Gcm {
        // The key length is fixed by the type, so this cannot fail.
        Aes256Gcm::new(&(*self.0).into())
    }

    /// AES-256-GCM seal; returns `ciphertext || tag`.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.cipher()
            .encrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only fails for messages beyond GCM's 64 GiB limit, which no caller sends.
            .unwrap_or_default()
    }

    /// AES-256-GCM open of `ciphertext || tag`; `None` when authentication fails.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        self.cipher()
            .decrypt(
                &Nonce::from(*nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

pub fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce[..]);
    nonce
}

impl Serialize for KeyMaterial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(B64.encode(self.0.as_ref()));
        s.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for KeyMaterial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded = Zeroizing::new(String::deserialize(d)?);
        let decoded = Zeroizing::new(
            B64.decode(encoded.as_bytes())
                .map_err(|_| serde::de::Error::custom("key material is not valid base64"))?,
        );
        KeyMaterial::from_slice(&decoded)
            .ok_or_else(|| serde::de::Error::custom("key material has the wrong length"))
    }
}

/// Secret bytes of any length that are kept in the sealed store (an import
/// wrapping key's private half), zeroized on drop and redacted in Debug.
#[derive(Clone, Default)]
pub struct SecretBytes(pub Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(B64.encode(self.0.as_slice()));
        s.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded = Zeroizing::new(String::deserialize(d)?);
        let decoded = B64
            .decode(encoded.as_bytes())
            .map_err(|_| serde::de::Error::custom("secret is not valid base64"))?;
        Ok(SecretBytes(Zeroizing::new(decoded)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = KeyMaterial::random();
        let nonce = random_nonce();
        let sealed = key.seal(&nonce, b"aad", b"hello");
        assert_eq!(sealed.len(), 5 + TAG_LEN);
        assert_eq!(
            key.open(&nonce, b"aad", &sealed).unwrap().as_slice(),
            b"hello"
        );
        assert!(key.open(&nonce, b"other", &sealed).is_none());
        assert!(
            KeyMaterial::random()
                .open(&nonce, b"aad", &sealed)
                .is_none()
        );
    }

    #[test]
    fn debug_never_shows_material() {
        let key = KeyMaterial::from_slice(&[0x41; 32]).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("41") && !shown.contains('A'), "{shown}");
    }

    #[test]
    fn serde_round_trip() {
        let key = KeyMaterial::random();
        let json = serde_json::to_string(&key).unwrap();
        let back: KeyMaterial = serde_json::from_str(&json).unwrap();
        assert!(key.ct_eq(&back));
    }
}
