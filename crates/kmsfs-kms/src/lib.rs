//! The key management service: customer master keys (CMKs) that wrap data
//! keys, modelled on AWS KMS.
//!
//! - [`KeyService`] is the one interface every client uses (the filesystem,
//!   the rotation task); backends are interchangeable behind it.
//! - [`local::LocalKms`] is the embedded backend over a sealed key store file.
//! - [`protocol`] is the AWS KMS JSON protocol as types (operations,
//!   requests, responses, exceptions), shared by every side;
//! - [`api`] dispatches protocol requests onto `LocalKms`, for the CLI and
//!   the server; [`remote::KmsClient`] sends them to an endpoint.

pub mod api;
pub mod asymmetric;
pub(crate) mod audit;
pub mod authn;
#[cfg(feature = "aws-kms")]
pub mod aws;
pub mod blob;
pub mod cache;
pub mod clock;
pub mod error;
pub mod grants;
pub mod iam;
pub(crate) mod import;
pub mod keyspec;
pub mod local;
pub mod material;
pub mod model;
pub mod paging;
pub mod policy;
pub mod protocol;
pub mod remote;
pub mod sigv4;
pub mod store;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub(crate) mod unix_socket;

use zeroize::Zeroizing;

pub use blob::EncryptionContext;
pub use error::KmsError;
pub use model::KeyState;
pub use policy::Caller;

/// A fresh data key: its plaintext (for immediate use, zeroized on drop) and
/// the same key wrapped by a CMK (to store).
pub struct DataKeyPair {
    pub key_arn: String,
    pub key_version: u32,
    pub plaintext: Zeroizing<Vec<u8>>,
    pub ciphertext_blob: Vec<u8>,
}

impl std::fmt::Debug for DataKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyPair")
            .field("key_arn", &self.key_arn)
            .field("key_version", &self.key_version)
            .field("plaintext", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A wrapped (encrypted) payload and the CMK version that wrapped it.
#[derive(Debug, Clone)]
pub struct Wrapped {
    pub key_arn: String,
    pub key_version: u32,
    pub ciphertext_blob: Vec<u8>,
}

pub struct Decrypted {
    pub key_arn: String,
    pub key_version: u32,
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("key_arn", &self.key_arn)
            .field("key_version", &self.key_version)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct KeyDescription {
    pub key_arn: String,
    pub state: KeyState,
    /// The version new encryptions use; None while material is pending import.
    pub current_version: Option<u32>,
}

/// What envelope encryption needs from a key management service. Every call
/// names the caller, whose rights the key policy decides.
pub trait KeyService: Send + Sync {
    /// A new random 256-bit data key, and the same key wrapped by `key_id`.
    fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<DataKeyPair, KmsError>;

    /// Unwraps a blob; the blob names its own key and key version.
    fn decrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Decrypted, KmsError>;

    /// Re-wraps a blob under the current version of `destination_key_id`
    /// without the plaintext leaving the service.
    fn re_encrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
        destination_key_id: &str,
    ) -> Result<Wrapped, KmsError>;

    fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyDescription, KmsError>;
}
