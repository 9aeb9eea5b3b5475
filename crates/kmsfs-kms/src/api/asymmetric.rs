//! The handlers of the asymmetric and HMAC operations, and the RSAES-OAEP
//! paths of Encrypt, Decrypt and ReEncrypt; the algorithm lists of
//! KeyMetadata and GetPublicKey.

use super::Handler;
use crate::error::{KmsError, Result};
use crate::keyspec::{KeySpec, KeyUsage};
use crate::local::{LocalKms, ReEncryptSide, rsa_encryption};
use crate::policy::Caller;
use crate::protocol::crypto::SYMMETRIC_DEFAULT;
use crate::protocol::*;

pub(super) fn encryption_algorithms(spec: KeySpec, usage: KeyUsage) -> Vec<String> {
    if usage != KeyUsage::EncryptDecrypt {
        return vec![];
    }
    spec.encryption_algorithms()
        .iter()
        .map(|a| a.to_string())
        .collect()
}

pub(super) fn signing_algorithms(spec: KeySpec, usage: KeyUsage) -> Vec<String> {
    if usage != KeyUsage::SignVerify {
        return vec![];
    }
    spec.signing_algorithms()
        .iter()
        .map(|a| a.as_str().to_string())
        .collect()
}

pub(super) fn mac_algorithms(spec: KeySpec) -> Vec<String> {
    spec.mac_algorithm()
        .map(|a| a.as_str().to_string())
        .into_iter()
        .collect()
}

pub(super) fn key_agreement_algorithms(usage: KeyUsage) -> Vec<String> {
    if usage == KeyUsage::KeyAgreement {
        vec!["ECDH".into()]
    } else {
        vec![]
    }
}

/// kmsfs runs in no Nitro enclave and cannot check an attestation.
fn refuse_recipient(recipient: &Option<Recipient>) -> Result<()> {
    match recipient {
        None => Ok(()),
        Some(_) => Err(KmsError::UnsupportedOperation(
            "Recipient (Nitro Enclaves attestation) is not supported by kmsfs".into(),
        )),
    }
}

impl Handler for GetPublicKeyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GetPublicKeyResponse> {
        let p = kms.get_public_key(caller, &self.key_id)?;
        Ok(GetPublicKeyResponse {
            key_id: p.arn,
            public_key: p.public_key.into(),
            customer_master_key_spec: p.key_spec.as_str().into(),
            key_spec: p.key_spec.as_str().into(),
            key_usage: p.key_usage.as_str().into(),
            encryption_algorithms: encryption_algorithms(p.key_spec, p.key_usage),
            signing_algorithms: signing_algorithms(p.key_spec, p.key_usage),
            key_agreement_algorithms: key_agreement_algorithms(p.key_usage),
        })
    }
}

impl Handler for SignRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<SignResponse> {
        let (arn, signature) = kms.sign(
            caller,
            &self.key_id,
            &self.message.0,
            self.message_type.as_deref(),
            &self.signing_algorithm,
            self.dry_run,
        )?;
        Ok(SignResponse {
            key_id: arn,
            signature: signature.into(),
            signing_algorithm: self.signing_algorithm,
        })
    }
}

impl Handler for VerifyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<VerifyResponse> {
        let arn = kms.verify(
            caller,
            &self.key_id,
            &self.message.0,
            self.message_type.as_deref(),
            &self.signature.0,
            &self.signing_algorithm,
            self.dry_run,
        )?;
        Ok(VerifyResponse {
            key_id: arn,
            signature_valid: true,
            signing_algorithm: self.signing_algorithm,
        })
    }
}

impl Handler for GenerateMacRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GenerateMacResponse> {
        let (arn, mac) = kms.generate_mac(
            caller,
            &self.key_id,
            &self.message.0,
            &self.mac_algorithm,
            self.dry_run,
        )?;
        Ok(GenerateMacResponse {
            mac: mac.into(),
            mac_algorithm: self.mac_algorithm,
            key_id: arn,
        })
    }
}

impl Handler for VerifyMacRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<VerifyMacResponse> {
        let arn = kms.verify_mac(
            caller,
            &self.key_id,
            &self.message.0,
            &self.mac.0,
            &self.mac_algorithm,
            self.dry_run,
        )?;
        Ok(VerifyMacResponse {
            key_id: arn,
            mac_valid: true,
            mac_algorithm: self.mac_algorithm,
        })
    }
}

impl Handler for GenerateDataKeyPairRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GenerateDataKeyPairResponse> {
        refuse_recipient(&self.recipient)?;
        let p = kms.generate_data_key_pair(
            caller,
            &self.key_id,
            &self.key_pair_spec,
            &self.encryption_context,
            true,
            self.dry_run,
        )?;
        Ok(GenerateDataKeyPairResponse {
            private_key_ciphertext_blob: p.private_key_ciphertext.into(),
            private_key_plaintext: p.private_key.unwrap_or_default().into(),
            public_key: p.public_key.into(),
            key_id: p.arn,
            key_pair_spec: p.key_pair_spec.as_str().into(),
        })
    }
}

impl Handler for GenerateDataKeyPairWithoutPlaintextRequest {
    fn handle(
        self,
        kms: &LocalKms,
        caller: &Caller,
    ) -> Result<GenerateDataKeyPairWithoutPlaintextResponse> {
        refuse_recipient(&self.recipient)?;
        let p = kms.generate_data_key_pair(
            caller,
            &self.key_id,
            &self.key_pair_spec,
            &self.encryption_context,
            false,
            self.dry_run,
        )?;
        Ok(GenerateDataKeyPairWithoutPlaintextResponse {
            private_key_ciphertext_blob: p.private_key_ciphertext.into(),
            public_key: p.public_key.into(),
            key_id: p.arn,
            key_pair_spec: p.key_pair_spec.as_str().into(),
        })
    }
}

impl Handler for DeriveSharedSecretRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<DeriveSharedSecretResponse> {
        refuse_recipient(&self.recipient)?;
        let (arn, secret, origin) = kms.derive_shared_secret(
            caller,
            &self.key_id,
            &self.key_agreement_algorithm,
            &self.public_key.0,
            self.dry_run,
        )?;
        Ok(DeriveSharedSecretResponse {
            key_id: arn,
            shared_secret: secret.into(),
            key_agreement_algorithm: self.key_agreement_algorithm,
            key_origin: origin.as_str().into(),
        })
    }
}

/// Encrypt with RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256.
pub(super) fn encrypt(
    r: EncryptRequest,
    kms: &LocalKms,
    caller: &Caller,
    algorithm: crate::keyspec::RsaEncryption,
) -> Result<EncryptResponse> {
    let (arn, ciphertext) = kms.encrypt_asymmetric(
        caller,
        &r.key_id,
        &r.plaintext.0,
        algorithm,
        &r.encryption_context,
    )?;
    Ok(EncryptResponse {
        ciphertext_blob: ciphertext.into(),
        key_id: arn,
        encryption_algorithm: algorithm.as_str().into(),
    })
}

pub(super) fn decrypt(
    r: DecryptRequest,
    kms: &LocalKms,
    caller: &Caller,
    algorithm: crate::keyspec::RsaEncryption,
) -> Result<DecryptResponse> {
    let (arn, plaintext) = kms.decrypt_asymmetric(
        caller,
        r.key_id.as_deref(),
        &r.ciphertext_blob.0,
        algorithm,
        &r.encryption_context,
    )?;
    Ok(DecryptResponse {
        key_id: arn,
        plaintext: plaintext.into(),
        encryption_algorithm: algorithm.as_str().into(),
    })
}

/// ReEncrypt where either side is RSAES-OAEP; the other side's algorithm
/// must then be SYMMETRIC_DEFAULT (or absent) or RSAES-OAEP too.
pub(super) fn re_encrypt(
    r: ReEncryptRequest,
    kms: &LocalKms,
    caller: &Caller,
) -> Result<ReEncryptResponse> {
    let source_alg = rsa_encryption(r.source_encryption_algorithm.as_deref());
    let destination_alg = rsa_encryption(r.destination_encryption_algorithm.as_deref());
    if source_alg.is_none() {
        super::require_symmetric(r.source_encryption_algorithm.as_deref())?;
    }
    if destination_alg.is_none() {
        super::require_symmetric(r.destination_encryption_algorithm.as_deref())?;
    }
    let name = |a: Option<crate::keyspec::RsaEncryption>| {
        a.map_or(SYMMETRIC_DEFAULT, |a| a.as_str()).to_string()
    };
    let (source_arn, arn, blob) = kms.re_encrypt_asymmetric(
        caller,
        &r.ciphertext_blob.0,
        ReEncryptSide {
            key_id: r.source_key_id.as_deref(),
            algorithm: source_alg,
            context: &r.source_encryption_context,
        },
        &r.destination_key_id,
        ReEncryptSide {
            key_id: Some(&r.destination_key_id),
            algorithm: destination_alg,
            context: &r.destination_encryption_context,
        },
    )?;
    Ok(ReEncryptResponse {
        ciphertext_blob: blob.into(),
        source_key_id: source_arn,
        key_id: arn,
        source_encryption_algorithm: name(source_alg),
        destination_encryption_algorithm: name(destination_alg),
    })
}
