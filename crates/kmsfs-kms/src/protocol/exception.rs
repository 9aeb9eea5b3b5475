//! Key service errors as AWS exceptions, both ways: the `__type` name a
//! server answers for a [`KmsError`], and the [`KmsError`] a client makes of
//! an AWS error answer (from a kmsfs server, AWS KMS or anything between).
//! The message travels unchanged; the HTTP status follows from the name.

use crate::error::KmsError;

/// The exception AWS answers for an internal failure.
pub const INTERNAL: &str = "KMSInternalException";

/// The AWS exception name of an error, as sent in `__type` and printed by
/// the AWS CLI.
pub fn exception_name(e: &KmsError) -> &'static str {
    match e {
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
        KmsError::KmsInvalidSignature(_) => "KMSInvalidSignatureException",
        KmsError::KmsInvalidMac(_) => "KMSInvalidMacException",
        KmsError::Tag(_) => "TagException",
        KmsError::InvalidMarker(_) => "InvalidMarkerException",
        KmsError::CustomKeyStoreNotFound(_) => "CustomKeyStoreNotFoundException",
        KmsError::InvalidGrantToken(_) => "InvalidGrantTokenException",
        KmsError::InvalidGrantId(_) => "InvalidGrantIdException",
        KmsError::InvalidArn(_) => "InvalidArnException",
        KmsError::DryRunOperation(_) => "DryRunOperationException",
        KmsError::Store(_) | KmsError::Internal(_) => INTERNAL,
    }
}

/// The HTTP status AWS answers an exception with: 500 for its internal
/// failure, 400 for every refusal.
pub fn http_status(exception: &str) -> u16 {
    if exception == INTERNAL { 500 } else { 400 }
}

/// The key service error of an AWS error answer. The name may carry a
/// namespace (`com.amazonaws.kms#NotFoundException`). Authentication
/// failures become AccessDenied and exceptions kmsfs has no variant for
/// become Internal, both keeping their name in the message.
pub fn error_from_exception(exception: &str, message: String) -> KmsError {
    let name = exception.rsplit('#').next().unwrap_or(exception);
    match name {
        "NotFoundException" => KmsError::NotFound(message),
        "DisabledException" => KmsError::Disabled(message),
        "KMSInvalidStateException" => KmsError::InvalidState(message),
        "InvalidCiphertextException" => KmsError::InvalidCiphertext(message),
        "AccessDeniedException" => KmsError::AccessDenied(message),
        "ValidationException" => KmsError::Validation(message),
        "AlreadyExistsException" => KmsError::AlreadyExists(message),
        "InvalidAliasNameException" => KmsError::InvalidAliasName(message),
        "MalformedPolicyDocumentException" => KmsError::MalformedPolicyDocument(message),
        "UnsupportedOperationException" => KmsError::UnsupportedOperation(message),
        "IncorrectKeyMaterialException" => KmsError::IncorrectKeyMaterial(message),
        "InvalidImportTokenException" => KmsError::InvalidImportToken(message),
        "ExpiredImportTokenException" => KmsError::ExpiredImportToken(message),
        "InvalidKeyUsageException" => KmsError::InvalidKeyUsage(message),
        "IncorrectKeyException" => KmsError::IncorrectKey(message),
        "LimitExceededException" => KmsError::LimitExceeded(message),
        "KMSInvalidSignatureException" => KmsError::KmsInvalidSignature(message),
        "KMSInvalidMacException" => KmsError::KmsInvalidMac(message),
        "TagException" => KmsError::Tag(message),
        "InvalidMarkerException" => KmsError::InvalidMarker(message),
        "CustomKeyStoreNotFoundException" => KmsError::CustomKeyStoreNotFound(message),
        "InvalidGrantTokenException" => KmsError::InvalidGrantToken(message),
        "InvalidGrantIdException" => KmsError::InvalidGrantId(message),
        "InvalidArnException" => KmsError::InvalidArn(message),
        "DryRunOperationException" => KmsError::DryRunOperation(message),
        INTERNAL => KmsError::Internal(message),
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException" => KmsError::AccessDenied(format!("{name}: {message}")),
        other => KmsError::Internal(format!("{other}: {message}")),
    }
}

// Here rather than in `error.rs`, so that the error type does not depend on
// the protocol that names it (the protocol depends on the error).
impl KmsError {
    /// The AWS exception name, as printed by the AWS CLI and sent in `__type`.
    pub fn code(&self) -> &'static str {
        exception_name(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exception_round_trips() {
        let m = || "m".to_string();
        let all = [
            KmsError::NotFound(m()),
            KmsError::Disabled(m()),
            KmsError::InvalidState(m()),
            KmsError::InvalidCiphertext(m()),
            KmsError::AccessDenied(m()),
            KmsError::Validation(m()),
            KmsError::AlreadyExists(m()),
            KmsError::InvalidAliasName(m()),
            KmsError::MalformedPolicyDocument(m()),
            KmsError::UnsupportedOperation(m()),
            KmsError::IncorrectKeyMaterial(m()),
            KmsError::InvalidImportToken(m()),
            KmsError::ExpiredImportToken(m()),
            KmsError::InvalidKeyUsage(m()),
            KmsError::IncorrectKey(m()),
            KmsError::LimitExceeded(m()),
            KmsError::KmsInvalidSignature(m()),
            KmsError::KmsInvalidMac(m()),
            KmsError::Tag(m()),
            KmsError::InvalidMarker(m()),
            KmsError::CustomKeyStoreNotFound(m()),
            KmsError::InvalidGrantToken(m()),
            KmsError::InvalidGrantId(m()),
            KmsError::InvalidArn(m()),
            KmsError::DryRunOperation(m()),
            KmsError::Internal(m()),
        ];
        for e in all {
            let name = exception_name(&e);
            let back = error_from_exception(&format!("com.amazonaws.kms#{name}"), e.message());
            assert_eq!(exception_name(&back), name);
            assert_eq!(back.message(), "m");
        }
        let e = error_from_exception("InvalidSignatureException", "bad".into());
        assert!(
            matches!(e, KmsError::AccessDenied(ref s) if s == "InvalidSignatureException: bad")
        );
        let e = error_from_exception("ThrottlingException", "slow".into());
        assert!(matches!(e, KmsError::Internal(ref s) if s == "ThrottlingException: slow"));
        assert_eq!(http_status(INTERNAL), 500);
        assert_eq!(http_status("NotFoundException"), 400);
    }
}
