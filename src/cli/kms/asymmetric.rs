//! `kmsfs kms sign|verify|get-public-key|generate-mac|verify-mac|
//! generate-data-key-pair[-without-plaintext]|derive-shared-secret`: the
//! operations of asymmetric and HMAC keys, with the AWS CLI's flags.
//! Binary arguments take `fileb://PATH`, `file://PATH` or base64, as
//! `encrypt --plaintext` does.

use clap::Subcommand;
use serde_json::Value;

use super::{CliError, blob_arg, context_arg, plaintext_arg, wire};
use kmsfs_kms::protocol::*;

#[derive(Debug, Subcommand)]
pub(crate) enum AsymmetricCommand {
    /// Shows the public key (DER SubjectPublicKeyInfo, base64) of an asymmetric key.
    GetPublicKey {
        #[arg(long)]
        key_id: String,
    },
    /// Signs a message (up to 4096 bytes) or its digest with a SIGN_VERIFY key.
    Sign {
        #[arg(long)]
        key_id: String,
        /// fileb://PATH, file://PATH or base64.
        #[arg(long)]
        message: String,
        /// RAW (default) or DIGEST.
        #[arg(long)]
        message_type: Option<String>,
        #[arg(long)]
        signing_algorithm: String,
        /// Check the request without signing (DryRunOperationException).
        #[arg(long)]
        dry_run: bool,
    },
    /// Verifies a signature; an invalid one fails with KMSInvalidSignatureException.
    Verify {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        message: String,
        #[arg(long)]
        message_type: Option<String>,
        /// fileb://PATH, file://PATH or base64.
        #[arg(long)]
        signature: String,
        #[arg(long)]
        signing_algorithm: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Computes the HMAC of a message with a GENERATE_VERIFY_MAC key.
    GenerateMac {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        message: String,
        #[arg(long)]
        mac_algorithm: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Verifies an HMAC; an invalid one fails with KMSInvalidMacException.
    VerifyMac {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        message: String,
        #[arg(long)]
        mac_algorithm: String,
        #[arg(long)]
        mac: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Returns a new key pair: the private key in plaintext and encrypted under a symmetric key.
    GenerateDataKeyPair {
        #[arg(long)]
        key_id: String,
        /// RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521 or ECC_SECG_P256K1.
        #[arg(long)]
        key_pair_spec: String,
        #[arg(long)]
        encryption_context: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Returns a new key pair: the private key only encrypted under a symmetric key.
    GenerateDataKeyPairWithoutPlaintext {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        key_pair_spec: String,
        #[arg(long)]
        encryption_context: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Derives an ECDH shared secret from a KEY_AGREEMENT key and a peer's public key.
    DeriveSharedSecret {
        #[arg(long)]
        key_id: String,
        /// ECDH.
        #[arg(long)]
        key_agreement_algorithm: String,
        /// The peer's DER SubjectPublicKeyInfo: fileb://PATH or base64.
        #[arg(long)]
        public_key: String,
        #[arg(long)]
        dry_run: bool,
    },
}

impl AsymmetricCommand {
    /// The AWS operation name and JSON request.
    pub(super) fn request(&self) -> Result<(&'static str, Value), CliError> {
        use AsymmetricCommand::*;
        match self {
            GetPublicKey { key_id } => wire(GetPublicKeyRequest {
                key_id: key_id.clone(),
                grant_tokens: vec![],
            }),
            Sign {
                key_id,
                message,
                message_type,
                signing_algorithm,
                dry_run,
            } => wire(SignRequest {
                key_id: key_id.clone(),
                message: plaintext_arg(message, "--message")?,
                message_type: message_type.clone(),
                signing_algorithm: signing_algorithm.clone(),
                grant_tokens: vec![],
                dry_run: *dry_run,
            }),
            Verify {
                key_id,
                message,
                message_type,
                signature,
                signing_algorithm,
                dry_run,
            } => wire(VerifyRequest {
                key_id: key_id.clone(),
                message: plaintext_arg(message, "--message")?,
                message_type: message_type.clone(),
                signature: blob_arg(signature, "--signature")?,
                signing_algorithm: signing_algorithm.clone(),
                grant_tokens: vec![],
                dry_run: *dry_run,
            }),
            GenerateMac {
                key_id,
                message,
                mac_algorithm,
                dry_run,
            } => wire(GenerateMacRequest {
                message: plaintext_arg(message, "--message")?,
                key_id: key_id.clone(),
                mac_algorithm: mac_algorithm.clone(),
                grant_tokens: vec![],
                dry_run: *dry_run,
            }),
            VerifyMac {
                key_id,
                message,
                mac_algorithm,
                mac,
                dry_run,
            } => wire(VerifyMacRequest {
                message: plaintext_arg(message, "--message")?,
                key_id: key_id.clone(),
                mac_algorithm: mac_algorithm.clone(),
                mac: blob_arg(mac, "--mac")?,
                grant_tokens: vec![],
                dry_run: *dry_run,
            }),
            GenerateDataKeyPair {
                key_id,
                key_pair_spec,
                encryption_context,
                dry_run,
            } => wire(GenerateDataKeyPairRequest {
                encryption_context: context_arg(
                    encryption_context.as_ref(),
                    "--encryption-context",
                )?,
                key_id: key_id.clone(),
                key_pair_spec: key_pair_spec.clone(),
                grant_tokens: vec![],
                recipient: None,
                dry_run: *dry_run,
            }),
            GenerateDataKeyPairWithoutPlaintext {
                key_id,
                key_pair_spec,
                encryption_context,
                dry_run,
            } => wire(GenerateDataKeyPairWithoutPlaintextRequest {
                encryption_context: context_arg(
                    encryption_context.as_ref(),
                    "--encryption-context",
                )?,
                key_id: key_id.clone(),
                key_pair_spec: key_pair_spec.clone(),
                grant_tokens: vec![],
                recipient: None,
                dry_run: *dry_run,
            }),
            DeriveSharedSecret {
                key_id,
                key_agreement_algorithm,
                public_key,
                dry_run,
            } => wire(DeriveSharedSecretRequest {
                key_id: key_id.clone(),
                key_agreement_algorithm: key_agreement_algorithm.clone(),
                public_key: blob_arg(public_key, "--public-key")?,
                grant_tokens: vec![],
                dry_run: *dry_run,
                recipient: None,
            }),
        }
    }
}
