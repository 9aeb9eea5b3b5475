//! Errors of the EBS simulation, one variant per EC2 error code.
//!
//! [`EbsError::code`] is the `<Code>` of EC2's error XML (and the name the
//! AWS CLI prints); the message is what follows it. A failure of the key
//! service keeps the KMS exception's meaning under EC2's `KMS.` prefix, the
//! form AWS services use to pass a KMS refusal on (`KMS.DisabledException`).

use kmsfs_kms::KmsError;

#[derive(Debug, thiserror::Error)]
pub enum EbsError {
    #[error("{0}")]
    MissingParameter(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidParameterCombination(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidParameterDependency(String),
    #[error("{0}")]
    InvalidAction(String),
    #[error("The volume '{0}' does not exist.")]
    VolumeNotFound(String),
    #[error("The snapshot '{0}' does not exist.")]
    SnapshotNotFound(String),
    #[error("The instance ID '{0}' does not exist")]
    InstanceNotFound(String),
    #[error("{0}")]
    AttachmentNotFound(String),
    #[error("{0}")]
    IncorrectState(String),
    #[error("{0}")]
    VolumeInUse(String),
    #[error("{0}")]
    InvalidVolumeZoneMismatch(String),
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRunOperation,
    #[error("{0}")]
    UnauthorizedOperation(String),
    /// The key service refused or failed; `exception` is the KMS exception
    /// name (`DisabledException`, `NotFoundException`, …).
    #[error("{message}")]
    Kms {
        exception: &'static str,
        message: String,
    },
    /// The pool (its files, its state) cannot be read or written.
    #[error("{0}")]
    Storage(String),
    #[error("{0}")]
    Internal(String),
}

impl EbsError {
    /// The EC2 error code.
    pub fn code(&self) -> String {
        let code = match self {
            EbsError::MissingParameter(_) => "MissingParameter",
            EbsError::InvalidParameterValue(_) => "InvalidParameterValue",
            EbsError::InvalidParameterCombination(_) => "InvalidParameterCombination",
            EbsError::InvalidParameter(_) => "InvalidParameter",
            EbsError::InvalidParameterDependency(_) => "InvalidParameterDependency",
            EbsError::InvalidAction(_) => "InvalidAction",
            EbsError::VolumeNotFound(_) => "InvalidVolume.NotFound",
            EbsError::SnapshotNotFound(_) => "InvalidSnapshot.NotFound",
            EbsError::InstanceNotFound(_) => "InvalidInstanceID.NotFound",
            EbsError::AttachmentNotFound(_) => "InvalidAttachment.NotFound",
            EbsError::IncorrectState(_) => "IncorrectState",
            EbsError::VolumeInUse(_) => "VolumeInUse",
            EbsError::InvalidVolumeZoneMismatch(_) => "InvalidVolume.ZoneMismatch",
            EbsError::DryRunOperation => "DryRunOperation",
            EbsError::UnauthorizedOperation(_) => "UnauthorizedOperation",
            EbsError::Kms { exception, .. } => return format!("KMS.{exception}"),
            EbsError::Storage(_) | EbsError::Internal(_) => "InternalError",
        };
        code.to_owned()
    }

    /// The HTTP status EC2 answers with: 412 for a dry run that would have
    /// succeeded, 500 for our own failures, 400 for the caller's.
    pub fn http_status(&self) -> u16 {
        match self {
            EbsError::DryRunOperation => 412,
            EbsError::UnauthorizedOperation(_) => 403,
            EbsError::Storage(_) | EbsError::Internal(_) => 500,
            _ => 400,
        }
    }

    pub(crate) fn storage(what: impl std::fmt::Display, e: impl std::fmt::Display) -> EbsError {
        EbsError::Storage(format!("{what}: {e}"))
    }
}

impl From<KmsError> for EbsError {
    fn from(e: KmsError) -> EbsError {
        let exception = match &e {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::Validation(_) => "ValidationException",
            _ => "KMSInternalException",
        };
        EbsError::Kms {
            exception,
            message: e.to_string(),
        }
    }
}

pub type Result<T, E = EbsError> = std::result::Result<T, E>;
