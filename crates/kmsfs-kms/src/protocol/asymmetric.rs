//! The operations of asymmetric and HMAC keys: GetPublicKey, Sign, Verify,
//! GenerateMac, VerifyMac, GenerateDataKeyPair,
//! GenerateDataKeyPairWithoutPlaintext, DeriveSharedSecret. Members named
//! as botocore's KMS model names them; messages are [`Plaintext`] (AWS marks
//! them sensitive), private keys and shared secrets too.
//!
//! `GrantTokens` is checked once for every operation (`api::check_grant_tokens`) and not needed after: a grant is in force at once.
//! `Recipient` (Nitro Enclaves attestation) is read so that it can be
//! refused rather than silently ignored.

use serde::{Deserialize, Serialize};

use super::values::{self, Blob, Plaintext};
use super::{KmsRequest, Operation};
use crate::blob::EncryptionContext;

/// Anything a client sends as `Recipient`; kmsfs refuses it.
pub type Recipient = serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetPublicKeyRequest {
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetPublicKeyResponse {
    /// The key's ARN.
    pub key_id: String,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Blob,
    pub customer_master_key_spec: String,
    pub key_spec: String,
    pub key_usage: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub encryption_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signing_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_agreement_algorithms: Vec<String>,
}

impl KmsRequest for GetPublicKeyRequest {
    const OPERATION: Operation = Operation::GetPublicKey;
    type Response = GetPublicKeyResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignRequest {
    pub key_id: String,
    pub message: Plaintext,
    /// RAW (default) or DIGEST.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    pub signing_algorithm: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignResponse {
    /// The key's ARN.
    pub key_id: String,
    pub signature: Blob,
    #[serde(default)]
    pub signing_algorithm: String,
}

impl KmsRequest for SignRequest {
    const OPERATION: Operation = Operation::Sign;
    type Response = SignResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyRequest {
    pub key_id: String,
    pub message: Plaintext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    pub signature: Blob,
    pub signing_algorithm: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyResponse {
    /// The key's ARN.
    pub key_id: String,
    /// Always true: an invalid signature is KMSInvalidSignatureException.
    pub signature_valid: bool,
    #[serde(default)]
    pub signing_algorithm: String,
}

impl KmsRequest for VerifyRequest {
    const OPERATION: Operation = Operation::Verify;
    type Response = VerifyResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateMacRequest {
    pub message: Plaintext,
    pub key_id: String,
    pub mac_algorithm: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateMacResponse {
    pub mac: Blob,
    #[serde(default)]
    pub mac_algorithm: String,
    /// The key's ARN.
    pub key_id: String,
}

impl KmsRequest for GenerateMacRequest {
    const OPERATION: Operation = Operation::GenerateMac;
    type Response = GenerateMacResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyMacRequest {
    pub message: Plaintext,
    pub key_id: String,
    pub mac_algorithm: String,
    pub mac: Blob,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyMacResponse {
    /// The key's ARN.
    pub key_id: String,
    /// Always true: an invalid MAC is KMSInvalidMacException.
    pub mac_valid: bool,
    #[serde(default)]
    pub mac_algorithm: String,
}

impl KmsRequest for VerifyMacRequest {
    const OPERATION: Operation = Operation::VerifyMac;
    type Response = VerifyMacResponse;
}

/// The members GenerateDataKeyPair and its WithoutPlaintext twin share.
macro_rules! data_key_pair_request {
    ($(#[$doc:meta])* $name:ident => $op:ident, $response:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            #[serde(
                default,
                deserialize_with = "values::context",
                skip_serializing_if = "EncryptionContext::is_empty"
            )]
            pub encryption_context: EncryptionContext,
            /// The symmetric key that encrypts the private key.
            pub key_id: String,
            pub key_pair_spec: String,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub grant_tokens: Vec<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub recipient: Option<Recipient>,
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub dry_run: bool,
        }

        impl KmsRequest for $name {
            const OPERATION: Operation = Operation::$op;
            type Response = $response;
        }
    };
}

data_key_pair_request!(GenerateDataKeyPairRequest => GenerateDataKeyPair, GenerateDataKeyPairResponse);
data_key_pair_request!(
    GenerateDataKeyPairWithoutPlaintextRequest => GenerateDataKeyPairWithoutPlaintext,
    GenerateDataKeyPairWithoutPlaintextResponse
);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyPairResponse {
    pub private_key_ciphertext_blob: Blob,
    /// PKCS#8 DER.
    pub private_key_plaintext: Plaintext,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Blob,
    /// The ARN of the key that encrypted the private key.
    pub key_id: String,
    #[serde(default)]
    pub key_pair_spec: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyPairWithoutPlaintextResponse {
    pub private_key_ciphertext_blob: Blob,
    pub public_key: Blob,
    pub key_id: String,
    #[serde(default)]
    pub key_pair_spec: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeriveSharedSecretRequest {
    pub key_id: String,
    /// ECDH.
    pub key_agreement_algorithm: String,
    /// The peer's DER SubjectPublicKeyInfo.
    pub public_key: Blob,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Recipient>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeriveSharedSecretResponse {
    /// The key's ARN.
    pub key_id: String,
    pub shared_secret: Plaintext,
    #[serde(default)]
    pub key_agreement_algorithm: String,
    #[serde(default)]
    pub key_origin: String,
}

impl KmsRequest for DeriveSharedSecretRequest {
    const OPERATION: Operation = Operation::DeriveSharedSecret;
    type Response = DeriveSharedSecretResponse;
}
