//! Key material import for EXTERNAL-origin keys, as AWS does it: the service
//! hands out an RSA public wrapping key; the caller encrypts 32 bytes of
//! material to it with RSAES-OAEP; the service unwraps them with the private
//! half, which never leaves the sealed store.

use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::{PrivateKey, pkcs8::DecodePrivateKey};
use zeroize::Zeroizing;

use super::error::{KmsError, Result};
use super::material::KeyMaterial;

/// Returns (PKCS#8 DER private key, DER SubjectPublicKeyInfo).
pub(crate) fn generate_wrapping_key(bits: usize) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    let mut rng = rand::rng();
    let private = PrivateKey::new(&mut rng, bits)
        .map_err(|e| KmsError::Internal(format!("RSA key generation failed: {e}")))?;
    let private_der = private
        .to_pkcs8_der()
        .map_err(|e| KmsError::Internal(format!("RSA key encoding failed: {e}")))?;
    let public_der = private
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| KmsError::Internal(format!("RSA key encoding failed: {e}")))?;
    Ok((
        Zeroizing::new(private_der.as_bytes().to_vec()),
        public_der.as_bytes().to_vec(),
    ))
}

pub(crate) fn unwrap_material(
    private_der: &[u8],
    algorithm: &str,
    encrypted: &[u8],
) -> Result<KeyMaterial> {
    let private = PrivateKey::from_pkcs8_der(private_der)
        .map_err(|e| KmsError::Internal(format!("stored wrapping key is unreadable: {e}")))?;
    let plain = match algorithm {
        "RSAES_OAEP_SHA_1" => private.oaep_decrypt::<sha1::Sha1>(encrypted),
        _ => private.oaep_decrypt::<sha2::Sha256>(encrypted),
    }
    .map(Zeroizing::new)
    .map_err(|_| {
        KmsError::InvalidCiphertext(
            "The encrypted key material could not be unwrapped with the import wrapping key."
                .into(),
        )
    })?;
    KeyMaterial::from_slice(&plain).ok_or_else(|| {
        KmsError::IncorrectKeyMaterial(format!(
            "Imported key material must be 32 bytes (256-bit symmetric key), not {}",
            plain.len()
        ))
    })
}
