//! The cryptography of asymmetric and HMAC keys, all of it from RustCrypto
//! crates (`rsa`, `p256`, `p384`, `p521`, `k256`, `hmac`, `sha2`, `sha1`):
//! key generation, the public half as DER SubjectPublicKeyInfo, signatures
//! over a digest, RSAES-OAEP, ECDH and HMAC.
//!
//! Private material travels as bytes in zeroizing buffers: PKCS#8 DER for
//! RSA and ECC keys, the raw key for HMAC keys (what the store keeps, see
//! `model::Key::private_material`). It is parsed afresh for each operation,
//! so no long-lived parsed key needs its own zeroizing.
//!
//! Signatures are computed over a digest the caller has made (or been
//! given, for MessageType DIGEST), so RAW and DIGEST share one path. RSA-PSS
//! uses MGF1 with the message hash and a salt as long as the digest, as AWS
//! does; ECDSA signatures are DER-encoded (RFC 3279), as AWS returns them.

use hmac::{KeyInit, Mac};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::{Pkcs1v15Sign, Pss};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::error::{KmsError, Result};
use crate::keyspec::{Hash, KeySpec, MacAlgorithm, RsaEncryption, SigningAlgorithm};

/// A new private key (PKCS#8 DER) or HMAC key of `spec`.
pub fn generate(spec: KeySpec) -> Result<Zeroizing<Vec<u8>>> {
    let mut rng = rand::rng();
    let encoding = |e: &dyn std::fmt::Display| {
        KmsError::Internal(format!("cannot encode a new {spec} private key: {e}"))
    };
    macro_rules! ecc {
        ($curve:ident) => {{
            let secret =
                <$curve::SecretKey as p256::elliptic_curve::Generate>::generate_from_rng(&mut rng);
            let der = secret.to_pkcs8_der().map_err(|e| encoding(&e))?;
            Ok(Zeroizing::new(der.as_bytes().to_vec()))
        }};
    }
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            let bits = spec.rsa_bits().unwrap_or(2048);
            let key = rsa::PrivateKey::new(&mut rng, bits)
                .map_err(|e| KmsError::Internal(format!("RSA key generation failed: {e}")))?;
            let der = key.to_pkcs8_der().map_err(|e| encoding(&e))?;
            Ok(Zeroizing::new(der.as_bytes().to_vec()))
        }
        KeySpec::EccNistP256 => ecc!(p256),
        KeySpec::EccNistP384 => ecc!(p384),
        KeySpec::EccNistP521 => ecc!(p521),
        KeySpec::EccSecgP256k1 => ecc!(k256),
        KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => {
            // AWS's HMAC keys are as long as their hash's output.
            let len = spec.mac_algorithm().map_or(32, |a| a.hash().output_len());
            let mut key = Zeroizing::new(vec![0u8; len]);
            rand::fill(&mut key[..]);
            Ok(key)
        }
        KeySpec::SymmetricDefault => Err(KmsError::Internal(
            "SYMMETRIC_DEFAULT material is not made here".into(),
        )),
    }
}

fn unreadable(spec: KeySpec) -> KmsError {
    // Never the parser's message: it could quote the bytes it choked on.
    KmsError::Internal(format!("the stored {spec} private key is unreadable"))
}

fn rsa_key(spec: KeySpec, der: &[u8]) -> Result<rsa::PrivateKey> {
    rsa::PrivateKey::from_pkcs8_der(der).map_err(|_| unreadable(spec))
}

/// The DER SubjectPublicKeyInfo of a private key (GetPublicKey).
pub fn public_key_der(spec: KeySpec, private: &[u8]) -> Result<Vec<u8>> {
    let encoding = |e: &dyn std::fmt::Display| {
        KmsError::Internal(format!("cannot encode the {spec} public key: {e}"))
    };
    macro_rules! ecc {
        ($curve:ident) => {{
            let secret =
                $curve::SecretKey::from_pkcs8_der(private).map_err(|_| unreadable(spec))?;
            let der = secret
                .public_key()
                .to_public_key_der()
                .map_err(|e| encoding(&e))?;
            Ok(der.as_bytes().to_vec())
        }};
    }
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            let der = rsa_key(spec, private)?
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| encoding(&e))?;
            Ok(der.as_bytes().to_vec())
        }
        KeySpec::EccNistP256 => ecc!(p256),
        KeySpec::EccNistP384 => ecc!(p384),
        KeySpec::EccNistP521 => ecc!(p521),
        KeySpec::EccSecgP256k1 => ecc!(k256),
        _ => Err(KmsError::Internal(format!(
            "{spec} keys have no public key"
        ))),
    }
}

/// The digest of `message` with `hash`.
pub fn digest(hash: Hash, message: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha224 => sha2::Sha224::digest(message).to_vec(),
        Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
        Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
    }
}

fn rsa_scheme_sign(
    key: &rsa::PrivateKey,
    algorithm: SigningAlgorithm,
    digest: &[u8],
) -> rsa::Result<Vec<u8>> {
    use SigningAlgorithm::*;
    let mut rng = rand::rng();
    match algorithm {
        RsassaPssSha256 => key.sign_with_rng(&mut rng, Pss::<sha2::Sha256>::new(), digest),
        RsassaPssSha384 => key.sign_with_rng(&mut rng, Pss::<sha2::Sha384>::new(), digest),
        RsassaPssSha512 => key.sign_with_rng(&mut rng, Pss::<sha2::Sha512>::new(), digest),
        RsassaPkcs1V15Sha256 => key.sign(Pkcs1v15Sign::new::<sha2::Sha256>(), digest),
        RsassaPkcs1V15Sha384 => key.sign(Pkcs1v15Sign::new::<sha2::Sha384>(), digest),
        RsassaPkcs1V15Sha512 => key.sign(Pkcs1v15Sign::new::<sha2::Sha512>(), digest),
        EcdsaSha256 | EcdsaSha384 | EcdsaSha512 => Err(rsa::Error::InvalidPaddingScheme),
    }
}

fn rsa_scheme_verify(
    key: &rsa::PublicKey,
    algorithm: SigningAlgorithm,
    digest: &[u8],
    signature: &[u8],
) -> bool {
    use SigningAlgorithm::*;
    match algorithm {
        RsassaPssSha256 => key.verify(Pss::<sha2::Sha256>::new(), digest, signature),
        RsassaPssSha384 => key.verify(Pss::<sha2::Sha384>::new(), digest, signature),
        RsassaPssSha512 => key.verify(Pss::<sha2::Sha512>::new(), digest, signature),
        RsassaPkcs1V15Sha256 => key.verify(Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature),
        RsassaPkcs1V15Sha384 => key.verify(Pkcs1v15Sign::new::<sha2::Sha384>(), digest, signature),
        RsassaPkcs1V15Sha512 => key.verify(Pkcs1v15Sign::new::<sha2::Sha512>(), digest, signature),
        EcdsaSha256 | EcdsaSha384 | EcdsaSha512 => return false,
    }
    .is_ok()
}

/// Signs `digest` (the algorithm's hash of the message) with the private
/// key. The caller has checked that the algorithm belongs to the spec.
pub fn sign(
    spec: KeySpec,
    private: &[u8],
    algorithm: SigningAlgorithm,
    digest: &[u8],
) -> Result<Vec<u8>> {
    let failed =
        |e: &dyn std::fmt::Display| KmsError::Internal(format!("{algorithm} signing failed: {e}"));
    macro_rules! ecc {
        ($curve:ident) => {{
            use $curve::ecdsa::signature::hazmat::PrehashSigner;
            let secret =
                $curve::SecretKey::from_pkcs8_der(private).map_err(|_| unreadable(spec))?;
            let key = $curve::ecdsa::SigningKey::from(secret);
            let signature: $curve::ecdsa::Signature =
                key.sign_prehash(digest).map_err(|e| failed(&e))?;
            Ok(signature.to_der().as_bytes().to_vec())
        }};
    }
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            rsa_scheme_sign(&rsa_key(spec, private)?, algorithm, digest).map_err(|e| failed(&e))
        }
        KeySpec::EccNistP256 => ecc!(p256),
        KeySpec::EccNistP384 => ecc!(p384),
        KeySpec::EccNistP521 => ecc!(p521),
        KeySpec::EccSecgP256k1 => ecc!(k256),
        _ => Err(KmsError::Internal(format!("{spec} keys do not sign"))),
    }
}

/// Whether `signature` is a valid signature of `digest` under the key's
/// public half. A signature that does not even parse is simply invalid.
pub fn verify(
    spec: KeySpec,
    private: &[u8],
    algorithm: SigningAlgorithm,
    digest: &[u8],
    signature: &[u8],
) -> Result<bool> {
    macro_rules! ecc {
        ($curve:ident) => {{
            use $curve::ecdsa::signature::hazmat::PrehashVerifier;
            let secret =
                $curve::SecretKey::from_pkcs8_der(private).map_err(|_| unreadable(spec))?;
            let key = $curve::ecdsa::VerifyingKey::from(secret.public_key());
            Ok($curve::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| key.verify_prehash(digest, &s).is_ok()))
        }};
    }
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            let public = rsa_key(spec, private)?.to_public_key();
            Ok(rsa_scheme_verify(&public, algorithm, digest, signature))
        }
        KeySpec::EccNistP256 => ecc!(p256),
        KeySpec::EccNistP384 => ecc!(p384),
        KeySpec::EccNistP521 => ecc!(p521),
        KeySpec::EccSecgP256k1 => ecc!(k256),
        _ => Err(KmsError::Internal(format!("{spec} keys do not verify"))),
    }
}

/// RSAES-OAEP encryption (MGF1 with the same hash, empty label). The
/// caller has checked the plaintext against `RsaEncryption::max_plaintext`.
pub fn rsa_encrypt(
    spec: KeySpec,
    private: &[u8],
    algorithm: RsaEncryption,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let public = rsa_key(spec, private)?.to_public_key();
    match algorithm {
        RsaEncryption::OaepSha1 => public.oaep_encrypt::<sha1::Sha1>(plaintext),
        RsaEncryption::OaepSha256 => public.oaep_encrypt::<sha2::Sha256>(plaintext),
    }
    .map_err(|e| KmsError::Internal(format!("{} encryption failed: {e}", algorithm.as_str())))
}

/// RSAES-OAEP decryption; a ciphertext that does not decrypt is an
/// InvalidCiphertextException, without saying why (no padding oracle).
pub fn rsa_decrypt(
    spec: KeySpec,
    private: &[u8],
    algorithm: RsaEncryption,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let key = rsa_key(spec, private)?;
    match algorithm {
        RsaEncryption::OaepSha1 => key.oaep_decrypt::<sha1::Sha1>(ciphertext),
        RsaEncryption::OaepSha256 => key.oaep_decrypt::<sha2::Sha256>(ciphertext),
    }
    .map(Zeroizing::new)
    .map_err(|_| {
        KmsError::InvalidCiphertext(format!(
            "The ciphertext cannot be decrypted with this key and {}.",
            algorithm.as_str()
        ))
    })
}

/// ECDH between the key and a peer's public key (DER SubjectPublicKeyInfo
/// on the same curve): the shared secret is the x-coordinate of the shared
/// point, as AWS returns it (and as NIST SP 800-56A's Z is).
pub fn derive_shared_secret(
    spec: KeySpec,
    private: &[u8],
    peer_der: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    use rsa::pkcs8::DecodePublicKey;
    let bad_peer = || {
        KmsError::Validation(format!(
            "PublicKey must be a DER-encoded X.509 SubjectPublicKeyInfo of a point on the curve of {spec}"
        ))
    };
    macro_rules! ecc {
        ($curve:ident) => {{
            let secret =
                $curve::SecretKey::from_pkcs8_der(private).map_err(|_| unreadable(spec))?;
            let peer = $curve::PublicKey::from_public_key_der(peer_der).map_err(|_| bad_peer())?;
            let shared = $curve::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
            Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
        }};
    }
    match spec {
        KeySpec::EccNistP256 => ecc!(p256),
        KeySpec::EccNistP384 => ecc!(p384),
        KeySpec::EccNistP521 => ecc!(p521),
        _ => Err(KmsError::Internal(format!(
            "{spec} keys do not derive shared secrets"
        ))),
    }
}

/// HMAC of `message` under `key` with the algorithm's hash.
pub fn mac(algorithm: MacAlgorithm, key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    macro_rules! hmac {
        ($hash:ty) => {{
            let mut m = <hmac::Hmac<$hash> as KeyInit>::new_from_slice(key)
                .map_err(|_| KmsError::Internal("the stored HMAC key is unusable".into()))?;
            m.update(message);
            Ok(m.finalize().into_bytes().to_vec())
        }};
    }
    match algorithm {
        MacAlgorithm::HmacSha224 => hmac!(sha2::Sha224),
        MacAlgorithm::HmacSha256 => hmac!(sha2::Sha256),
        MacAlgorithm::HmacSha384 => hmac!(sha2::Sha384),
        MacAlgorithm::HmacSha512 => hmac!(sha2::Sha512),
    }
}

/// Whether `tag` is the HMAC of `message`, compared in constant time.
pub fn verify_mac(algorithm: MacAlgorithm, key: &[u8], message: &[u8], tag: &[u8]) -> Result<bool> {
    macro_rules! hmac {
        ($hash:ty) => {{
            let mut m = <hmac::Hmac<$hash> as KeyInit>::new_from_slice(key)
                .map_err(|_| KmsError::Internal("the stored HMAC key is unusable".into()))?;
            m.update(message);
            Ok(m.verify_slice(tag).is_ok())
        }};
    }
    match algorithm {
        MacAlgorithm::HmacSha224 => hmac!(sha2::Sha224),
        MacAlgorithm::HmacSha256 => hmac!(sha2::Sha256),
        MacAlgorithm::HmacSha384 => hmac!(sha2::Sha384),
        MacAlgorithm::HmacSha512 => hmac!(sha2::Sha512),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flip(bytes: &[u8], i: usize) -> Vec<u8> {
        let mut b = bytes.to_vec();
        b[i] ^= 1;
        b
    }

    #[test]
    fn every_signing_spec_signs_and_verifies_with_each_algorithm() {
        for &spec in KeySpec::ALL {
            let algorithms = spec.signing_algorithms();
            if algorithms.is_empty() {
                continue;
            }
            let private = generate(spec).unwrap();
            for &alg in algorithms {
                let d = digest(alg.hash(), b"message");
                let sig = sign(spec, &private, alg, &d).unwrap();
                assert!(
                    verify(spec, &private, alg, &d, &sig).unwrap(),
                    "{spec} {alg}"
                );
                let other = digest(alg.hash(), b"messagf");
                assert!(
                    !verify(spec, &private, alg, &other, &sig).unwrap(),
                    "{spec} {alg}"
                );
                let last = sig.len() - 1;
                assert!(!verify(spec, &private, alg, &d, &flip(&sig, last)).unwrap());
                assert!(!verify(spec, &private, alg, &d, b"").unwrap());
            }
            // Another key of the same spec does not verify this one's signature.
            let alg = algorithms[0];
            let d = digest(alg.hash(), b"m");
            let sig = sign(spec, &private, alg, &d).unwrap();
            let stranger = generate(spec).unwrap();
            assert!(!verify(spec, &stranger, alg, &d, &sig).unwrap(), "{spec}");
        }
    }

    #[test]
    fn rsa_pss_and_pkcs1_do_not_cross_verify() {
        let spec = KeySpec::Rsa2048;
        let private = generate(spec).unwrap();
        let d = digest(Hash::Sha256, b"m");
        let pss = sign(spec, &private, SigningAlgorithm::RsassaPssSha256, &d).unwrap();
        let pkcs = sign(spec, &private, SigningAlgorithm::RsassaPkcs1V15Sha256, &d).unwrap();
        assert_eq!(pss.len(), 256);
        assert!(
            !verify(
                spec,
                &private,
                SigningAlgorithm::RsassaPkcs1V15Sha256,
                &d,
                &pss
            )
            .unwrap()
        );
        assert!(!verify(spec, &private, SigningAlgorithm::RsassaPssSha256, &d, &pkcs).unwrap());
        // PKCS#1 v1.5 is deterministic, PSS is salted.
        let pkcs2 = sign(spec, &private, SigningAlgorithm::RsassaPkcs1V15Sha256, &d).unwrap();
        let pss2 = sign(spec, &private, SigningAlgorithm::RsassaPssSha256, &d).unwrap();
        assert_eq!(pkcs, pkcs2);
        assert_ne!(pss, pss2);
    }

    #[test]
    fn rsa_oaep_round_trip_and_limits() {
        let spec = KeySpec::Rsa2048;
        let private = generate(spec).unwrap();
        for alg in [RsaEncryption::OaepSha1, RsaEncryption::OaepSha256] {
            let max = alg.max_plaintext(2048);
            let plain = vec![7u8; max];
            let c = rsa_encrypt(spec, &private, alg, &plain).unwrap();
            assert_eq!(c.len(), 256);
            assert_eq!(
                rsa_decrypt(spec, &private, alg, &c).unwrap().as_slice(),
                &plain[..]
            );
            assert!(rsa_encrypt(spec, &private, alg, &vec![7u8; max + 1]).is_err());
            let e = rsa_decrypt(spec, &private, alg, &flip(&c, 10)).unwrap_err();
            assert!(matches!(e, KmsError::InvalidCiphertext(_)));
        }
        let c = rsa_encrypt(spec, &private, RsaEncryption::OaepSha1, b"x").unwrap();
        assert!(rsa_decrypt(spec, &private, RsaEncryption::OaepSha256, &c).is_err());
    }

    #[test]
    fn ecdh_agrees_both_ways() {
        for spec in [
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
        ] {
            let a = generate(spec).unwrap();
            let b = generate(spec).unwrap();
            let a_pub = public_key_der(spec, &a).unwrap();
            let b_pub = public_key_der(spec, &b).unwrap();
            let ab = derive_shared_secret(spec, &a, &b_pub).unwrap();
            let ba = derive_shared_secret(spec, &b, &a_pub).unwrap();
            assert_eq!(ab, ba);
            assert!(!ab.is_empty());
            assert!(matches!(
                derive_shared_secret(spec, &a, b"junk"),
                Err(KmsError::Validation(_))
            ));
        }
        // A point on another curve is refused.
        let p256 = generate(KeySpec::EccNistP256).unwrap();
        let p384_pub = public_key_der(
            KeySpec::EccNistP384,
            &generate(KeySpec::EccNistP384).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            derive_shared_secret(KeySpec::EccNistP256, &p256, &p384_pub),
            Err(KmsError::Validation(_))
        ));
    }

    #[test]
    fn hmac_keys_and_tags() {
        for &spec in KeySpec::ALL.iter().filter(|s| s.is_hmac()) {
            let alg = spec.mac_algorithm().unwrap();
            let key = generate(spec).unwrap();
            assert_eq!(key.len(), alg.hash().output_len());
            let tag = mac(alg, &key, b"message").unwrap();
            assert_eq!(tag.len(), alg.hash().output_len());
            assert!(verify_mac(alg, &key, b"message", &tag).unwrap());
            assert!(!verify_mac(alg, &key, b"messagf", &tag).unwrap());
            assert!(!verify_mac(alg, &key, b"message", &flip(&tag, 0)).unwrap());
            assert!(!verify_mac(alg, &key, b"message", &tag[1..]).unwrap());
        }
        // RFC 4231 test case 2: key "Jefe".
        let tag = mac(
            MacAlgorithm::HmacSha256,
            b"Jefe",
            b"what do ya want for nothing?",
        )
        .unwrap();
        assert_eq!(
            tag[..4],
            [0x5b, 0xdc, 0xc1, 0x46],
            "HMAC-SHA-256 of RFC 4231 case 2"
        );
    }

    #[test]
    fn public_keys_are_spki_der() {
        for &spec in KeySpec::ALL.iter().filter(|s| s.is_ecc()) {
            let der = public_key_der(spec, &generate(spec).unwrap()).unwrap();
            // SEQUENCE { SEQUENCE { id-ecPublicKey, curve }, BIT STRING }
            assert_eq!(der[0], 0x30, "{spec}");
        }
        assert!(public_key_der(KeySpec::Hmac256, &[0; 32]).is_err());
        assert!(matches!(
            sign(KeySpec::EccNistP256, b"not pkcs8", SigningAlgorithm::EcdsaSha256, &[0; 32]),
            Err(KmsError::Internal(ref m)) if !m.contains("not pkcs8")
        ));
    }
}
