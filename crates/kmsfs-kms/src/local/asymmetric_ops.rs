//! The operations of asymmetric and HMAC keys on the embedded store:
//! GetPublicKey, Sign, Verify, GenerateMac, VerifyMac, DeriveSharedSecret,
//! GenerateDataKeyPair(WithoutPlaintext), and RSAES-OAEP for Encrypt,
//! Decrypt and ReEncrypt. The cryptography itself is in `asymmetric.rs`.
//!
//! Each call is checked in AWS's order: the request's own members (lengths
//! and enum values), then the key (it exists, the policy allows the
//! action, its state allows use), then the key's usage and spec against
//! the operation and algorithm, then the members that depend on the
//! algorithm (a digest's length); only then DryRun
//! (DryRunOperationException) or the work. Every call is audited.

use zeroize::Zeroizing;

use super::{LocalKms, Trail, check};
use crate::asymmetric;
use crate::blob::{EncryptionContext, MAX_PLAINTEXT};
use crate::error::{KmsError, Result};
use crate::keyspec::{KeySpec, KeyUsage, MacAlgorithm, RsaEncryption, SigningAlgorithm};
use crate::material::SecretBytes;
use crate::model::{Key, Origin};
use crate::policy::Caller;
use crate::protocol::Operation;
use crate::protocol::operation::{RE_ENCRYPT_FROM, RE_ENCRYPT_TO};

/// Symmetric encryption (the kmsfs blob, data keys) needs a
/// SYMMETRIC_DEFAULT key: any other is an InvalidKeyUsageException.
pub(super) fn require_symmetric_encryption(key: &Key, arn: &str) -> Result<()> {
    if key.key_spec.is_symmetric_default() {
        return Ok(());
    }
    let hint = if key.key_spec.is_rsa() && key.key_usage == KeyUsage::EncryptDecrypt {
        " (use EncryptionAlgorithm RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256 with this key)"
    } else {
        ""
    };
    Err(KmsError::InvalidKeyUsage(format!(
        "{arn} has KeySpec {} and KeyUsage {}: it is not valid for the SYMMETRIC_DEFAULT encryption algorithm or data keys{hint}.",
        key.key_spec, key.key_usage
    )))
}

/// A message member (Sign, Verify, GenerateMac, VerifyMac): 1..=4096 bytes.
fn check_message(message: &[u8]) -> Result<()> {
    if message.is_empty() || message.len() > MAX_PLAINTEXT {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length between 1 and {MAX_PLAINTEXT} (it has {})",
            message.len()
        )));
    }
    Ok(())
}

/// Sign and Verify's MessageType: true for DIGEST, false for RAW (the
/// default). EXTERNAL_MU is for ML-DSA keys, which kmsfs lacks.
fn is_digest(message_type: Option<&str>) -> Result<bool> {
    match message_type {
        None | Some("RAW") => Ok(false),
        Some("DIGEST") => Ok(true),
        Some("EXTERNAL_MU") => Err(KmsError::InvalidKeyUsage(
            "MessageType EXTERNAL_MU is valid only with ML-DSA keys, which kmsfs does not implement."
                .into(),
        )),
        Some(other) => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]"
        ))),
    }
}

/// Names in AWS's SigningAlgorithmSpec that kmsfs has no key for: valid
/// requests, refused by every key as incompatible.
const OTHER_SIGNING_ALGORITHMS: &[&str] = &[
    "SM2DSA",
    "ML_DSA_SHAKE_256",
    "ED25519_SHA_512",
    "ED25519_PH_SHA_512",
];

/// A SigningAlgorithm: Some(algorithm), or None for an AWS name that no
/// kmsfs key supports; anything else is not a valid value.
fn signing_algorithm(name: &str) -> Result<Option<SigningAlgorithm>> {
    if let Some(a) = SigningAlgorithm::from_name(name) {
        return Ok(Some(a));
    }
    if OTHER_SIGNING_ALGORITHMS.contains(&name) {
        return Ok(None);
    }
    let all: Vec<&str> = SigningAlgorithm::ALL
        .iter()
        .map(|a| a.as_str())
        .chain(OTHER_SIGNING_ALGORITHMS.iter().copied())
        .collect();
    Err(KmsError::Validation(format!(
        "1 validation error detected: Value '{name}' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        all.join(", ")
    )))
}

fn mac_algorithm(name: &str) -> Result<MacAlgorithm> {
    MacAlgorithm::from_name(name).ok_or_else(|| {
        KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'macAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512]"
        ))
    })
}

/// An RSA encryption algorithm name, if it is one (Encrypt, Decrypt and
/// ReEncrypt take this path only then).
pub fn rsa_encryption(name: Option<&str>) -> Option<RsaEncryption> {
    name.and_then(RsaEncryption::from_name)
}

/// The spec of GenerateDataKeyPair's KeyPairSpec.
fn parse_key_pair_spec(name: &str) -> Result<KeySpec> {
    match KeySpec::parse(name) {
        Ok(spec) if spec.is_asymmetric() => Ok(spec),
        Err(e @ KmsError::UnsupportedOperation(_)) => Err(e),
        _ => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'keyPairSpec' failed to satisfy constraint: Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, SM2, ECC_NIST_EDWARDS25519]"
        ))),
    }
}

fn no_context(ctx: &EncryptionContext) -> Result<()> {
    if ctx.is_empty() {
        Ok(())
    } else {
        Err(KmsError::Validation(
            "EncryptionContext is not supported with asymmetric KMS keys: the RSAES_OAEP algorithms take none."
                .into(),
        ))
    }
}

/// A key that passed the checks every use makes, its material copied out
/// so that the cryptography runs without the store's lock.
struct UsableKey {
    arn: String,
    spec: KeySpec,
    usage: KeyUsage,
    origin: Origin,
    material: SecretBytes,
}

impl UsableKey {
    /// AWS's InvalidKeyUsageException when the key's usage is not `usage`.
    fn require_usage(&self, usage: KeyUsage, op: &str) -> Result<()> {
        if self.usage == usage {
            return Ok(());
        }
        Err(KmsError::InvalidKeyUsage(format!(
            "{} key usage is {} which is not valid for {op}.",
            self.arn, self.usage
        )))
    }

    fn incompatible(&self, algorithm: &str) -> KmsError {
        KmsError::InvalidKeyUsage(format!(
            "Algorithm {algorithm} is incompatible with key spec {} of {}.",
            self.spec, self.arn
        ))
    }

    /// The signing algorithm, if the key supports it.
    fn signing(&self, name: &str, algorithm: Option<SigningAlgorithm>) -> Result<SigningAlgorithm> {
        algorithm
            .filter(|a| self.spec.signing_algorithms().contains(a))
            .ok_or_else(|| self.incompatible(name))
    }

    /// The RSA encryption key: ENCRYPT_DECRYPT usage and an RSA spec.
    fn rsa_encryption(&self, op: &str, algorithm: RsaEncryption) -> Result<usize> {
        self.require_usage(KeyUsage::EncryptDecrypt, op)?;
        self.spec
            .rsa_bits()
            .ok_or_else(|| self.incompatible(algorithm.as_str()))
    }
}

/// The digest a signature covers: the message's hash (RAW), or the
/// message itself (DIGEST), which must be as long as the hash.
fn signed_digest(algorithm: SigningAlgorithm, message: &[u8], digest: bool) -> Result<Vec<u8>> {
    if !digest {
        return Ok(asymmetric::digest(algorithm.hash(), message));
    }
    if message.len() != algorithm.hash().output_len() {
        return Err(KmsError::Validation(format!(
            "Digest is invalid length for algorithm {algorithm}: a DIGEST message must be {} bytes, not {}.",
            algorithm.hash().output_len(),
            message.len()
        )));
    }
    Ok(message.to_vec())
}

/// What GetPublicKey answers.
#[derive(Debug, Clone)]
pub struct PublicKeyInfo {
    pub arn: String,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
}

/// A new data key pair, its private half sealed under a symmetric key.
pub struct DataKeyPairInfo {
    /// The ARN of the symmetric key that sealed the private key.
    pub arn: String,
    pub key_pair_spec: KeySpec,
    /// PKCS#8 DER.
    pub private_key: Option<Zeroizing<Vec<u8>>>,
    /// The private key, encrypted like any GenerateDataKey data key.
    pub private_key_ciphertext: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for DataKeyPairInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyPairInfo")
            .field("arn", &self.arn)
            .field("key_pair_spec", &self.key_pair_spec)
            .field("private_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One half of ReEncrypt: the symmetric blob, or RSAES-OAEP with a key.
#[derive(Debug, Clone, Copy)]
pub struct ReEncryptSide<'a> {
    pub key_id: Option<&'a str>,
    pub algorithm: Option<RsaEncryption>,
    pub context: &'a EncryptionContext,
}

impl LocalKms {
    /// Resolves `key_id`, checks the policy for `action` and that the key
    /// is usable (Enabled), and copies out its private material.
    fn usable_key(
        &self,
        caller: &Caller,
        action: &str,
        key_id: &str,
        trail: &mut Trail,
    ) -> Result<UsableKey> {
        let store = self.lock()?;
        let data = store.data();
        let (id, arn, key) = super::usable_key(data, caller, key_id, action, None, trail)?;
        // Every operation here but GetPublicKey is a cryptographic use that
        // GetKeyLastUsage reports.
        if action != Operation::GetPublicKey.iam_action() {
            trail.used.push(id);
        }
        let material = match (&key.private_material, key.key_spec) {
            (Some(m), _) => m.clone(),
            // Symmetric keys have no private material; every operation
            // here refuses their usage or spec before touching it.
            (None, KeySpec::SymmetricDefault) => SecretBytes::default(),
            (None, spec) => {
                return Err(KmsError::Internal(format!(
                    "{arn} is a {spec} key without its private material"
                )));
            }
        };
        Ok(UsableKey {
            arn,
            spec: key.key_spec,
            usage: key.key_usage,
            origin: key.origin,
            material,
        })
    }

    /// The public key of an asymmetric key (RSA or ECC, any usage).
    pub fn get_public_key(&self, caller: &Caller, key_id: &str) -> Result<PublicKeyInfo> {
        let op = Operation::GetPublicKey;
        self.run(caller, op, Some(key_id), None, |trail| {
            let k = self.usable_key(caller, op.iam_action(), key_id, trail)?;
            if !k.spec.is_asymmetric() {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} has KeySpec {}: it has no public key. GetPublicKey is supported only on asymmetric KMS keys.",
                    k.arn, k.spec
                )));
            }
            Ok(PublicKeyInfo {
                public_key: asymmetric::public_key_der(k.spec, &k.material.0)?,
                arn: k.arn,
                key_spec: k.spec,
                key_usage: k.usage,
            })
        })
    }

    /// Sign: returns the key's ARN and the signature.
    pub fn sign(
        &self,
        caller: &Caller,
        key_id: &str,
        message: &[u8],
        message_type: Option<&str>,
        algorithm: &str,
        dry_run: bool,
    ) -> Result<(String, Vec<u8>)> {
        let op = Operation::Sign;
        let request = check_message(message)
            .and_then(|()| is_digest(message_type))
            .and_then(|digest| Ok((digest, signing_algorithm(algorithm)?)));
        let (digest, parsed) = self.precheck(caller, op, Some(key_id), request)?;
        self.run(caller, op, Some(key_id), None, |trail| {
            let k = self.usable_key(caller, op.iam_action(), key_id, trail)?;
            k.require_usage(KeyUsage::SignVerify, op.name())?;
            let alg = k.signing(algorithm, parsed)?;
            let d = signed_digest(alg, message, digest)?;
            if dry_run {
                return Err(super::dry_run::would_have_succeeded());
            }
            let signature = asymmetric::sign(k.spec, &k.material.0, alg, &d)?;
            Ok((k.arn, signature))
        })
    }

    /// Verify: the key's ARN when the signature is valid,
    /// KMSInvalidSignatureException otherwise (as AWS answers).
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        caller: &Caller,
        key_id: &str,
        message: &[u8],
        message_type: Option<&str>,
        signature: &[u8],
        algorithm: &str,
        dry_run: bool,
    ) -> Result<String> {
        let op = Operation::Verify;
        let request = check_message(message)
            .and_then(|()| check_blob_len("signature", signature))
            .and_then(|()| is_digest(message_type))
            .and_then(|digest| Ok((digest, signing_algorithm(algorithm)?)));
        let (digest, parsed) = self.precheck(caller, op, Some(key_id), request)?;
        self.run(caller, op, Some(key_id), None, |trail| {
            let k = self.usable_key(caller, op.iam_action(), key_id, trail)?;
            k.require_usage(KeyUsage::SignVerify, op.name())?;
            let alg = k.signing(algorithm, parsed)?;
            let d = signed_digest(alg, message, digest)?;
            if dry_run {
                return Err(super::dry_run::would_have_succeeded());
            }
            if asymmetric::verify(k.spec, &k.material.0, alg, &d, signature)? {
                Ok(k.arn)
            } else {
                Err(KmsError::KmsInvalidSignature(format!(
                    "The signature is not valid for this message, key ({}) and {alg}.",
                    k.arn
                )))
            }
        })
    }

    /// The HMAC key and algorithm of a GenerateMac or VerifyMac call.
    fn mac_key(
        &self,
        caller: &Caller,
        op: Operation,
        key_id: &str,
        algorithm: &str,
        trail: &mut Trail,
    ) -> Result<(UsableKey, MacAlgorithm)> {
        let parsed = mac_algorithm(algorithm)?;
        let k = self.usable_key(caller, op.iam_action(), key_id, trail)?;
        k.require_usage(KeyUsage::GenerateVerifyMac, op.name())?;
        if k.spec.mac_algorithm() != Some(parsed) {
            return Err(k.incompatible(algorithm));
        }
        Ok((k, parsed))
    }

    /// GenerateMac: the key's ARN and the MAC.
    pub fn generate_mac(
        &self,
        caller: &Caller,
        key_id: &str,
        message: &[u8],
        algorithm: &str,
        dry_run: bool,
    ) -> Result<(String, Vec<u8>)> {
        let op = Operation::GenerateMac;
        let request = check_message(message).and_then(|()| mac_algorithm(algorithm).map(drop));
        self.precheck(caller, op, Some(key_id), request)?;
        self.run(caller, op, Some(key_id), None, |trail| {
            let (k, alg) = self.mac_key(caller, op, key_id, algorithm, trail)?;
            if dry_run {
                return Err(super::dry_run::would_have_succeeded());
            }
            Ok((k.arn, asymmetric::mac(alg, &k.material.0, message)?))
        })
    }

    /// VerifyMac: the key's ARN when the MAC is valid,
    /// KMSInvalidMacException otherwise (as AWS answers).
    pub fn verify_mac(
        &self,
        caller: &Caller,
        key_id: &str,
        message: &[u8],
        mac: &[u8],
        algorithm: &str,
        dry_run: bool,
    ) -> Result<String> {
        let op = Operation::VerifyMac;
        let request = check_message(message)
            .and_then(|()| check_blob_len("mac", mac))
            .and_then(|()| mac_algorithm(algorithm).map(drop));
        self.precheck(caller, op, Some(key_id), request)?;
        self.run(caller, op, Some(key_id), None, |trail| {
            let (k, alg) = self.mac_key(caller, op, key_id, algorithm, trail)?;
            if dry_run {
                return Err(super::dry_run::would_have_succeeded());
            }
            if asymmetric::verify_mac(alg, &k.material.0, message, mac)? {
                Ok(k.arn)
            } else {
                Err(KmsError::KmsInvalidMac(format!(
                    "The MAC is not valid for this message, key ({}) and {alg}.",
                    k.arn
                )))
            }
        })
    }

    /// DeriveSharedSecret (ECDH): the key's ARN, the shared secret and the
    /// key's origin.
    pub fn derive_shared_secret(
        &self,
        caller: &Caller,
        key_id: &str,
        algorithm: &str,
        peer_public_key: &[u8],
        dry_run: bool,
    ) -> Result<(String, Zeroizing<Vec<u8>>, Origin)> {
        let op = Operation::DeriveSharedSecret;
        let request = if algorithm != "ECDH" {
            Err(KmsError::Validation(format!(
                "1 validation error detected: Value '{algorithm}' at 'keyAgreementAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [ECDH]"
            )))
        } else if peer_public_key.is_empty() || peer_public_key.len() > 8192 {
            Err(KmsError::Validation(format!(
                "1 validation error detected: Value at 'publicKey' failed to satisfy constraint: Member must have length between 1 and 8192 (it has {})",
                peer_public_key.len()
            )))
        } else {
            Ok(())
        };
        self.precheck(caller, op, Some(key_id), request)?;
        self.run(caller, op, Some(key_id), None, |trail| {
            let k = self.usable_key(caller, op.iam_action(), key_id, trail)?;
            k.require_usage(KeyUsage::KeyAgreement, op.name())?;
            // Parse the peer's key before DryRun: a bad key is a validation
            // failure, which DryRun reports as such.
            let secret = asymmetric::derive_shared_secret(k.spec, &k.material.0, peer_public_key)?;
            if dry_run {
                return Err(super::dry_run::would_have_succeeded());
            }
            Ok((k.arn, secret, k.origin))
        })
    }

    /// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a new
    /// key pair of `key_pair_spec`, its private key (PKCS#8 DER) encrypted
    /// under the symmetric key `key_id` as Encrypt would.
    pub fn generate_data_key_pair(
        &self,
        caller: &Caller,
        key_id: &str,
        key_pair_spec: &str,
        ctx: &EncryptionContext,
        with_plaintext: bool,
        dry_run: bool,
    ) -> Result<DataKeyPairInfo> {
        let op = if with_plaintext {
            Operation::GenerateDataKeyPair
        } else {
            Operation::GenerateDataKeyPairWithoutPlaintext
        };
        let spec = self.precheck(caller, op, Some(key_id), parse_key_pair_spec(key_pair_spec))?;
        self.run(caller, op, Some(key_id), Some(ctx), |trail| {
            if dry_run {
                let store = self.lock()?;
                let data = store.data();
                let id = data.resolve(caller.region.as_deref(), key_id)?;
                let arn = data.key_arn(&id);
                trail.key_id = Some(arn.clone());
                let key = data.key(&id)?;
                check(data, key, caller, op.iam_action())?;
                key.require_usable(&arn)?;
                require_symmetric_encryption(key, &arn)?;
                return Err(super::dry_run::would_have_succeeded());
            }
            let private = asymmetric::generate(spec)?;
            let public_key = asymmetric::public_key_der(spec, &private)?;
            let wrapped = self.seal_with(caller, key_id, op.iam_action(), &private, ctx, trail)?;
            Ok(DataKeyPairInfo {
                arn: wrapped.key_arn,
                key_pair_spec: spec,
                private_key: with_plaintext.then_some(private),
                private_key_ciphertext: wrapped.ciphertext_blob,
                public_key,
            })
        })
    }

    /// Encrypt with RSAES-OAEP: the key's ARN and the ciphertext (the bare
    /// RSA ciphertext, as AWS returns it: no kmsfs blob header).
    pub fn encrypt_asymmetric(
        &self,
        caller: &Caller,
        key_id: &str,
        plaintext: &[u8],
        algorithm: RsaEncryption,
        ctx: &EncryptionContext,
    ) -> Result<(String, Vec<u8>)> {
        let op = Operation::Encrypt;
        let request = if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            Err(KmsError::Validation(format!(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and {MAX_PLAINTEXT} (it has {})",
                plaintext.len()
            )))
        } else {
            no_context(ctx)
        };
        self.precheck(caller, op, Some(key_id), request)?;
        self.run(caller, op, Some(key_id), None, |trail| {
            self.rsa_seal(caller, op.iam_action(), key_id, plaintext, algorithm, trail)
        })
    }

    fn rsa_seal(
        &self,
        caller: &Caller,
        action: &str,
        key_id: &str,
        plaintext: &[u8],
        algorithm: RsaEncryption,
        trail: &mut Trail,
    ) -> Result<(String, Vec<u8>)> {
        let k = self.usable_key(caller, action, key_id, trail)?;
        let bits = k.rsa_encryption(Operation::Encrypt.name(), algorithm)?;
        let max = algorithm.max_plaintext(bits);
        if plaintext.len() > max {
            return Err(KmsError::Validation(format!(
                "Plaintext is too long for {} with {}: at most {max} bytes, not {}.",
                algorithm.as_str(),
                k.spec,
                plaintext.len()
            )));
        }
        let ciphertext = asymmetric::rsa_encrypt(k.spec, &k.material.0, algorithm, plaintext)?;
        Ok((k.arn, ciphertext))
    }

    fn rsa_open(
        &self,
        caller: &Caller,
        action: &str,
        key_id: Option<&str>,
        ciphertext: &[u8],
        algorithm: RsaEncryption,
        trail: &mut Trail,
    ) -> Result<(String, Zeroizing<Vec<u8>>)> {
        // Unlike a kmsfs blob, an RSA ciphertext does not name its key.
        let key_id = key_id.ok_or_else(|| {
            KmsError::Validation(format!(
                "KeyId is required to decrypt with the asymmetric algorithm {}.",
                algorithm.as_str()
            ))
        })?;
        let k = self.usable_key(caller, action, key_id, trail)?;
        k.rsa_encryption(Operation::Decrypt.name(), algorithm)?;
        let plaintext = asymmetric::rsa_decrypt(k.spec, &k.material.0, algorithm, ciphertext)?;
        Ok((k.arn, plaintext))
    }

    /// Decrypt with RSAES-OAEP: the key's ARN and the plaintext.
    pub fn decrypt_asymmetric(
        &self,
        caller: &Caller,
        key_id: Option<&str>,
        ciphertext: &[u8],
        algorithm: RsaEncryption,
        ctx: &EncryptionContext,
    ) -> Result<(String, Zeroizing<Vec<u8>>)> {
        let op = Operation::Decrypt;
        self.precheck(caller, op, key_id, no_context(ctx))?;
        self.run(caller, op, key_id, None, |trail| {
            self.rsa_open(
                caller,
                op.iam_action(),
                key_id,
                ciphertext,
                algorithm,
                trail,
            )
        })
    }

    /// ReEncrypt where either side is RSAES-OAEP: returns (source key ARN,
    /// destination key ARN, new ciphertext). The plaintext stays inside.
    pub fn re_encrypt_asymmetric(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        source: ReEncryptSide<'_>,
        destination_key_id: &str,
        destination: ReEncryptSide<'_>,
    ) -> Result<(String, String, Vec<u8>)> {
        let op = Operation::ReEncrypt;
        let request = match (source.algorithm, destination.algorithm) {
            (Some(_), _) => no_context(source.context),
            _ => Ok(()),
        }
        .and_then(|()| match destination.algorithm {
            Some(_) => no_context(destination.context),
            None => Ok(()),
        });
        self.precheck(caller, op, Some(destination_key_id), request)?;
        self.run(
            caller,
            op,
            Some(destination_key_id),
            Some(destination.context),
            |trail| {
                let mut source_trail = Trail::default();
                let (source_arn, plaintext) = match source.algorithm {
                    Some(alg) => self.rsa_open(
                        caller,
                        RE_ENCRYPT_FROM,
                        source.key_id,
                        ciphertext,
                        alg,
                        &mut source_trail,
                    )?,
                    None => {
                        let d = self.open_blob(
                            caller,
                            ciphertext,
                            source.context,
                            source.key_id,
                            RE_ENCRYPT_FROM,
                            &mut source_trail,
                        )?;
                        (d.key_arn, d.plaintext)
                    }
                };
                let (arn, blob) = match destination.algorithm {
                    Some(alg) => self.rsa_seal(
                        caller,
                        RE_ENCRYPT_TO,
                        destination_key_id,
                        &plaintext,
                        alg,
                        trail,
                    )?,
                    None => {
                        let w = self.seal_with(
                            caller,
                            destination_key_id,
                            RE_ENCRYPT_TO,
                            &plaintext,
                            destination.context,
                            trail,
                        )?;
                        (w.key_arn, w.ciphertext_blob)
                    }
                };
                Ok((source_arn, arn, blob))
            },
        )
    }
}

/// Signature and Mac members: 1..=6144 bytes, as AWS's model says.
fn check_blob_len(member: &str, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() || bytes.len() > 6144 {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length between 1 and 6144 (it has {})",
            bytes.len()
        )));
    }
    Ok(())
}
