//! AWS KMS itself as a key service, through the AWS SDK for Rust
//! (`aws-sdk-kms`, cargo feature `aws-kms`, off by default): HTTPS, the
//! standard credential chain (environment, profiles, SSO-less web identity,
//! instance and container metadata) and region chain (AWS_REGION, profile).
//! An endpoint URL may override where requests go (moto in the tests).
//!
//! The `caller` argument is not sent: AWS knows the caller by its
//! credentials. AWS ciphertext blobs are opaque, so key versions are
//! reported as 1 (AWS rotation keeps old backing keys and is invisible to
//! clients).

use std::collections::HashMap;

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState as AwsKeyState};
use zeroize::Zeroizing;

use super::blob::EncryptionContext;
use super::error::{KmsError, Result};
use super::policy::Caller;
use super::protocol::exception::error_from_exception;
use super::remote::Credentials;
use super::{DataKeyPair, Decrypted, KeyDescription, KeyService, KeyState, Wrapped};

pub struct AwsKms {
    client: aws_sdk_kms::Client,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKms").finish_non_exhaustive()
    }
}

fn sdk_error<E>(e: aws_sdk_kms::error::SdkError<E>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e.code() {
        Some(code) => error_from_exception(code, e.message().unwrap_or_default().to_string()),
        None => KmsError::Internal(format!(
            "AWS KMS request failed: {}",
            DisplayErrorContext(&e)
        )),
    }
}

fn context(ctx: &EncryptionContext) -> Option<HashMap<String, String>> {
    (!ctx.is_empty()).then(|| ctx.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn missing(what: &str) -> KmsError {
    KmsError::Internal(format!("AWS KMS answered no {what}"))
}

impl AwsKms {
    /// A client by the standard AWS chains; `region` and `endpoint_url`
    /// override them when given.
    pub fn new(region: Option<&str>, endpoint_url: Option<&str>) -> Result<AwsKms> {
        AwsKms::with_credentials(region, endpoint_url, None)
    }

    /// `new`, with fixed credentials instead of the credential chain when
    /// given (a test server such as moto, without touching the environment).
    pub fn with_credentials(
        region: Option<&str>,
        endpoint_url: Option<&str>,
        credentials: Option<&Credentials>,
    ) -> Result<AwsKms> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| KmsError::Internal(format!("cannot start the AWS SDK runtime: {e}")))?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        if let Some(u) = endpoint_url {
            loader = loader.endpoint_url(u);
        }
        if let Some(c) = credentials {
            loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
                c.access_key_id.as_str(),
                c.secret_access_key.as_str(),
                c.session_token.clone(),
                None,
                "kmsfs",
            ));
        }
        let config = runtime.block_on(loader.load());
        if config.region().is_none() {
            return Err(KmsError::Validation(
                "no AWS region: set AWS_REGION or name one in the volume config".into(),
            ));
        }
        Ok(AwsKms {
            client: aws_sdk_kms::Client::new(&config),
            runtime,
        })
    }
}

impl KeyService for AwsKms {
    fn generate_data_key(
        &self,
        _caller: &Caller,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<DataKeyPair> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .generate_data_key()
                    .key_id(key_id)
                    .key_spec(DataKeySpec::Aes256)
                    .set_encryption_context(context(ctx))
                    .send(),
            )
            .map_err(sdk_error)?;
        Ok(DataKeyPair {
            key_arn: out.key_id().ok_or_else(|| missing("KeyId"))?.to_string(),
            key_version: 1,
            plaintext: Zeroizing::new(
                out.plaintext()
                    .ok_or_else(|| missing("Plaintext"))?
                    .as_ref()
                    .to_vec(),
            ),
            ciphertext_blob: out
                .ciphertext_blob()
                .ok_or_else(|| missing("CiphertextBlob"))?
                .as_ref()
                .to_vec(),
        })
    }

    fn decrypt(&self, _caller: &Caller, blob: &[u8], ctx: &EncryptionContext) -> Result<Decrypted> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .decrypt()
                    .ciphertext_blob(Blob::new(blob))
                    .set_encryption_context(context(ctx))
                    .send(),
            )
            .map_err(sdk_error)?;
        Ok(Decrypted {
            key_arn: out.key_id().ok_or_else(|| missing("KeyId"))?.to_string(),
            key_version: 1,
            plaintext: Zeroizing::new(
                out.plaintext()
                    .ok_or_else(|| missing("Plaintext"))?
                    .as_ref()
                    .to_vec(),
            ),
        })
    }

    fn re_encrypt(
        &self,
        _caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
        destination_key_id: &str,
    ) -> Result<Wrapped> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .re_encrypt()
                    .ciphertext_blob(Blob::new(blob))
                    .set_source_encryption_context(context(ctx))
                    .destination_key_id(destination_key_id)
                    .set_destination_encryption_context(context(ctx))
                    .send(),
            )
            .map_err(sdk_error)?;
        Ok(Wrapped {
            key_arn: out.key_id().ok_or_else(|| missing("KeyId"))?.to_string(),
            key_version: 1,
            ciphertext_blob: out
                .ciphertext_blob()
                .ok_or_else(|| missing("CiphertextBlob"))?
                .as_ref()
                .to_vec(),
        })
    }

    fn describe_key(&self, _caller: &Caller, key_id: &str) -> Result<KeyDescription> {
        let out = self
            .runtime
            .block_on(self.client.describe_key().key_id(key_id).send())
            .map_err(sdk_error)?;
        let meta = out.key_metadata().ok_or_else(|| missing("KeyMetadata"))?;
        let state = match meta.key_state() {
            Some(AwsKeyState::Enabled) => KeyState::Enabled,
            Some(AwsKeyState::PendingDeletion) => KeyState::PendingDeletion,
            Some(AwsKeyState::PendingImport) => KeyState::PendingImport,
            Some(AwsKeyState::PendingReplicaDeletion) => KeyState::PendingReplicaDeletion,
            // Disabled, and the states kmsfs has no name for (Creating,
            // Unavailable, …): none of them can be used.
            _ => KeyState::Disabled,
        };
        Ok(KeyDescription {
            key_arn: meta.arn().ok_or_else(|| missing("Arn"))?.to_string(),
            state,
            current_version: (state == KeyState::Enabled).then_some(1),
        })
    }
}
