//! The ciphertext blob returned by Encrypt / GenerateDataKey and accepted by
//! Decrypt / ReEncrypt. Byte layout (docs/FORMAT.md, "Ciphertext blob"):
//!
//! ```text
//! offset size  field
//!      0    2  magic "KB"
//!      2    1  format version (1)
//!      3   16  CMK key id (UUID, binary)
//!     19    4  key version (u32, big-endian; 1 = original material)
//!     23   12  nonce
//!     35    n  ciphertext (n = plaintext length, 1..=4096)
//!   35+n   16  AES-256-GCM tag
//! ```
//!
//! The AAD is the 35-byte prefix followed by the canonical encoding of the
//! encryption context, so neither the key reference nor the context can be
//! changed without Decrypt failing. The blob names its key and version in the
//! clear (as AWS blobs do), which is what lets Decrypt work without --key-id.

use std::collections::BTreeMap;

use uuid::Uuid;
use zeroize::Zeroizing;

use super::error::{KmsError, Result};
use super::material::{KeyMaterial, NONCE_LEN, TAG_LEN};

pub const MAGIC: [u8; 2] = *b"KB";
pub const VERSION: u8 = 1;
pub const PREFIX_LEN: usize = 2 + 1 + 16 + 4 + NONCE_LEN;
pub const MAX_PLAINTEXT: usize = 4096;

pub type EncryptionContext = BTreeMap<String, String>;

/// The clear-text fields of a blob, readable without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    pub key_id: Uuid,
    pub key_version: u32,
    pub nonce: [u8; NONCE_LEN],
}

impl BlobHeader {
    fn encode(&self) -> [u8; PREFIX_LEN] {
        let mut out = [0u8; PREFIX_LEN];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3..19].copy_from_slice(self.key_id.as_bytes());
        out[19..23].copy_from_slice(&self.key_version.to_be_bytes());
        out[23..35].copy_from_slice(&self.nonce);
        out
    }
}

/// Canonical encoding of an encryption context, used only as AAD: the pair
/// count, then each pair in byte order of the key, every string prefixed by
/// its u32 big-endian length. Length prefixes make the encoding unambiguous
/// ("a=bc" and "ab=c" differ).
pub fn encode_context(ctx: &EncryptionContext) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(ctx.len() as u32).to_be_bytes());
    for (k, v) in ctx {
        for s in [k, v] {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

fn aad(prefix: &[u8; PREFIX_LEN], ctx: &EncryptionContext) -> Vec<u8> {
    let mut aad = prefix.to_vec();
    aad.extend_from_slice(&encode_context(ctx));
    aad
}

/// Reads the clear-text header of a blob, checking only its shape.
pub fn parse_header(blob: &[u8]) -> Result<BlobHeader> {
    let invalid = || {
        KmsError::InvalidCiphertext(
            "The ciphertext blob is not a kmsfs ciphertext (bad length, magic or version)".into(),
        )
    };
    if blob.len() < PREFIX_LEN + 1 + TAG_LEN || blob.len() > PREFIX_LEN + MAX_PLAINTEXT + TAG_LEN {
        return Err(invalid());
    }
    if blob[0..2] != MAGIC || blob[2] != VERSION {
        return Err(invalid());
    }
    let key_id = Uuid::from_slice(&blob[3..19]).map_err(|_| invalid())?;
    let key_version = u32::from_be_bytes([blob[19], blob[20], blob[21], blob[22]]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[23..35]);
    Ok(BlobHeader {
        key_id,
        key_version,
        nonce,
    })
}

/// Seals `plaintext` under one version of a CMK.
pub fn seal(
    material: &KeyMaterial,
    header: &BlobHeader,
    plaintext: &[u8],
    ctx: &EncryptionContext,
) -> Vec<u8> {
    let prefix = header.encode();
    let mut blob = prefix.to_vec();
    blob.extend_from_slice(&material.seal(&header.nonce, &aad(&prefix, ctx), plaintext));
    blob
}

/// Opens a blob whose header was already parsed and whose key version's
/// material the caller looked up.
pub fn open(
    material: &KeyMaterial,
    header: &BlobHeader,
    blob: &[u8],
    ctx: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>> {
    let prefix = header.encode();
    material
        .open(&header.nonce, &aad(&prefix, ctx), &blob[PREFIX_LEN..])
        .ok_or_else(|| {
            KmsError::InvalidCiphertext(
                "The ciphertext failed authentication: it was altered, or the encryption context differs"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_header() -> BlobHeader {
        BlobHeader {
            key_id: Uuid::parse_str("0b7e5a2c-1d3f-4e5a-9b8c-7d6e5f4a3b2c").unwrap(),
            key_version: 3,
            nonce: [0x11; NONCE_LEN],
        }
    }

    #[test]
    fn golden_bytes() {
        // Fixed key, nonce and plaintext: the exact bytes may never change
        // without a new format version.
        let material = KeyMaterial::from_slice(&[7u8; 32]).unwrap();
        let mut ctx = EncryptionContext::new();
        ctx.insert("purpose".into(), "test".into());
        let blob = seal(&material, &fixed_header(), b"kmsfs", &ctx);
        let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            &hex[..70],
            "4b42010b7e5a2c1d3f4e5a9b8c7d6e5f4a3b2c00000003111111111111111111111111"
        );
        assert_eq!(blob.len(), PREFIX_LEN + 5 + TAG_LEN);
        assert_eq!(
            hex,
            include_str!("../../../tests/fixtures/blob_v1.hex").trim(),
            "ciphertext blob encoding changed"
        );
        assert_eq!(
            open(&material, &fixed_header(), &blob, &ctx)
                .unwrap()
                .as_slice(),
            b"kmsfs"
        );
    }

    #[test]
    fn context_and_tamper_are_detected() {
        let material = KeyMaterial::random();
        let header = fixed_header();
        let mut ctx = EncryptionContext::new();
        ctx.insert("a".into(), "bc".into());
        let blob = seal(&material, &header, b"secret", &ctx);
        let mut other = EncryptionContext::new();
        other.insert("ab".into(), "c".into());
        assert!(matches!(
            open(&material, &header, &blob, &other),
            Err(KmsError::InvalidCiphertext(_))
        ));
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let outcome = parse_header(&bad).and_then(|h| open(&material, &h, &bad, &ctx));
            assert!(outcome.is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn shape_checks() {
        assert!(parse_header(b"short").is_err());
        let material = KeyMaterial::random();
        let mut blob = seal(&material, &fixed_header(), b"x", &EncryptionContext::new());
        assert_eq!(parse_header(&blob).unwrap(), fixed_header());
        blob[2] = 2;
        assert!(parse_header(&blob).is_err());
    }
}
