//! Errors of the key service, named after the AWS KMS exceptions they mirror
//! (the names themselves, both ways, are in `protocol::exception`).
//!
//! Every variant carries a one-line, human-readable reason, because that is
//! what the AWS wire carries (`{"__type", "message"}`); failures of the key
//! store also carry their cause ([`StoreError`]). None of them may ever hold
//! key material or a plaintext data key: the messages are built only from
//! identifiers, paths, states and sizes, and no variant takes bytes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum KmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    InvalidCiphertext(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidAliasName(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    #[error("{0}")]
    InvalidImportToken(String),
    #[error("{0}")]
    ExpiredImportToken(String),
    #[error("{0}")]
    InvalidKeyUsage(String),
    #[error("{0}")]
    IncorrectKey(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// Verify: the signature is not valid for the message and key.
    #[error("{0}")]
    KmsInvalidSignature(String),
    /// VerifyMac: the MAC is not valid for the message and key.
    #[error("{0}")]
    KmsInvalidMac(String),
    /// A tag that AWS does not accept (reserved `aws:` prefix, too many).
    #[error("{0}")]
    Tag(String),
    /// A pagination marker kmsfs did not issue for this listing.
    #[error("{0}")]
    InvalidMarker(String),
    /// kmsfs has no custom key stores, so every store id is unknown.
    #[error("{0}")]
    CustomKeyStoreNotFound(String),
    /// A grant token kmsfs did not issue (or not of this shape).
    #[error("{0}")]
    InvalidGrantToken(String),
    /// A grant id that names no grant of the key.
    #[error("{0}")]
    InvalidGrantId(String),
    /// A principal that is not an ARN of the shape the member needs.
    #[error("{0}")]
    InvalidArn(String),
    /// A DryRun request that would have succeeded.
    #[error("{0}")]
    DryRunOperation(String),
    /// The key store itself could not be read, authenticated or written.
    #[error(transparent)]
    Store(StoreError),
    #[error("{0}")]
    Internal(String),
}

impl KmsError {
    /// A failure of the key store without an underlying I/O error.
    pub fn store(context: impl Into<String>) -> KmsError {
        KmsError::Store(StoreError::new(context))
    }

    /// The reason, without the exception name.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Why the key store could not be used: what was being done to which file,
/// and the I/O error beneath when there is one. The message includes the
/// I/O error's text (it is what clients see on the wire); `source()` gives
/// the error itself, for callers that look at its kind.
#[derive(Debug)]
pub struct StoreError {
    context: String,
    source: Option<std::io::Error>,
}

impl StoreError {
    pub fn new(context: impl Into<String>) -> StoreError {
        StoreError {
            context: context.into(),
            source: None,
        }
    }

    /// `context` ("cannot read the key store /path") failed with `source`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError {
            context: context.into(),
            source: Some(source),
        }
    }

    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.source.as_ref()
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(e) => write!(f, "{}: {e}", self.context),
            None => f.write_str(&self.context),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<&str> for StoreError {
    fn from(context: &str) -> StoreError {
        StoreError::new(context)
    }
}

impl From<String> for StoreError {
    fn from(context: String) -> StoreError {
        StoreError::new(context)
    }
}

pub type Result<T, E = KmsError> = std::result::Result<T, E>;
