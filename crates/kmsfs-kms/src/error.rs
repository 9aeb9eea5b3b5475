//! Errors of the key service, named after the AWS KMS exceptions they mirror.
//!
//! Every variant carries a one-line, human-readable reason. None of them may
//! ever hold key material or a plaintext data key: the messages are built only
//! from identifiers, states and sizes.

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
    /// The key store itself could not be read, authenticated or written.
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Internal(String),
}

impl KmsError {
    /// The AWS exception name, as printed by the AWS CLI and sent in `__type`.
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
            KmsError::InvalidImportToken(_) => "InvalidImportTokenException",
            KmsError::ExpiredImportToken(_) => "ExpiredImportTokenException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::Store(_) => "KMSInternalException",
            KmsError::Internal(_) => "KMSInternalException",
        }
    }

    /// The reason, without the exception name.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

pub type Result<T, E = KmsError> = std::result::Result<T, E>;
