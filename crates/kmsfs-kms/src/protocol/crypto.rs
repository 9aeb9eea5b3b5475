//! The cryptographic operations: Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey, GenerateDataKeyWithoutPlaintext. Plaintext members are
//! [`Plaintext`]: zeroized, never printed.
//!
//! Responses require only what a client needs (key, blob, plaintext); the
//! informational members default when absent, as other services (moto)
//! leave them out.

use serde::{Deserialize, Serialize};

use super::values::{self, Blob, Plaintext};
use super::{KmsRequest, Operation};
use crate::blob::EncryptionContext;

/// The one encryption algorithm of symmetric keys.
pub const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptRequest {
    pub key_id: String,
    pub plaintext: Plaintext,
    #[serde(
        default,
        deserialize_with = "values::context",
        skip_serializing_if = "EncryptionContext::is_empty"
    )]
    pub encryption_context: EncryptionContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<String>,
    /// Authorize and validate only: answer DryRunOperationException if
    /// the request would have succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptResponse {
    pub ciphertext_blob: Blob,
    /// The ARN of the key that encrypted.
    pub key_id: String,
    #[serde(default)]
    pub encryption_algorithm: String,
}

impl KmsRequest for EncryptRequest {
    const OPERATION: Operation = Operation::Encrypt;
    type Response = EncryptResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptRequest {
    pub ciphertext_blob: Blob,
    #[serde(
        default,
        deserialize_with = "values::context",
        skip_serializing_if = "EncryptionContext::is_empty"
    )]
    pub encryption_context: EncryptionContext,
    /// Refuse unless the blob was made with this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<String>,
    /// Authorize and validate only: answer DryRunOperationException if
    /// the request would have succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptResponse {
    /// The ARN of the key that decrypted.
    pub key_id: String,
    pub plaintext: Plaintext,
    #[serde(default)]
    pub encryption_algorithm: String,
}

impl KmsRequest for DecryptRequest {
    const OPERATION: Operation = Operation::Decrypt;
    type Response = DecryptResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptRequest {
    pub ciphertext_blob: Blob,
    #[serde(
        default,
        deserialize_with = "values::context",
        skip_serializing_if = "EncryptionContext::is_empty"
    )]
    pub source_encryption_context: EncryptionContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_key_id: Option<String>,
    pub destination_key_id: String,
    #[serde(
        default,
        deserialize_with = "values::context",
        skip_serializing_if = "EncryptionContext::is_empty"
    )]
    pub destination_encryption_context: EncryptionContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_encryption_algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_encryption_algorithm: Option<String>,
    /// Authorize and validate only: answer DryRunOperationException if
    /// the request would have succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptResponse {
    pub ciphertext_blob: Blob,
    /// The ARN of the key that decrypted.
    #[serde(default)]
    pub source_key_id: String,
    /// The ARN of the key that encrypted.
    pub key_id: String,
    #[serde(default)]
    pub source_encryption_algorithm: String,
    #[serde(default)]
    pub destination_encryption_algorithm: String,
}

impl KmsRequest for ReEncryptRequest {
    const OPERATION: Operation = Operation::ReEncrypt;
    type Response = ReEncryptResponse;
}

/// The members GenerateDataKey and GenerateDataKeyWithoutPlaintext share.
macro_rules! data_key_request {
    ($(#[$doc:meta])* $name:ident => $op:ident, $response:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            pub key_id: String,
            /// AES_256 or AES_128; exclusive with NumberOfBytes.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub key_spec: Option<String>,
            #[serde(
                default,
                deserialize_with = "values::count",
                skip_serializing_if = "Option::is_none"
            )]
            pub number_of_bytes: Option<u32>,
            #[serde(
                default,
                deserialize_with = "values::context",
                skip_serializing_if = "EncryptionContext::is_empty"
            )]
            pub encryption_context: EncryptionContext,
            /// Authorize and validate only: answer DryRunOperationException
            /// if the request would have succeeded.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub dry_run: bool,
        }

        impl KmsRequest for $name {
            const OPERATION: Operation = Operation::$op;
            type Response = $response;
        }
    };
}

data_key_request!(GenerateDataKeyRequest => GenerateDataKey, GenerateDataKeyResponse);
data_key_request!(
    GenerateDataKeyWithoutPlaintextRequest => GenerateDataKeyWithoutPlaintext,
    GenerateDataKeyWithoutPlaintextResponse
);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyResponse {
    pub ciphertext_blob: Blob,
    pub plaintext: Plaintext,
    /// The ARN of the key that wrapped the data key.
    pub key_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyWithoutPlaintextResponse {
    pub ciphertext_blob: Blob,
    /// The ARN of the key that wrapped the data key.
    pub key_id: String,
}
