//! `kmsfs kms …`: the AWS KMS command line, flag for flag. Each subcommand
//! becomes one typed request of `kmsfs_kms::protocol`, sent as JSON to
//! `api::handle` (embedded store) or an endpoint; the JSON response is
//! shaped, queried and printed as the AWS CLI would.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{CliError, open_local_kms};
use crate::awscli::{self, OutputFormat};
use kmsfs_kms::protocol::*;
use kmsfs_kms::{Caller, EncryptionContext, api};

mod asymmetric;
mod grants;
mod multi_region;

#[derive(Debug, Args)]
pub(crate) struct KmsArgs {
    /// Output format, as the AWS CLI's --output.
    #[arg(long, global = true, default_value = "json")]
    pub output: OutputFormat,
    /// A JMESPath-style query applied to the response (AWS CLI --query).
    #[arg(long, global = true)]
    pub query: Option<String>,
    /// The region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's
    /// region in the AWS config file; else the store's default region).
    /// Keys live in the region they were created in.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// The AWS config profile whose region applies (else AWS_PROFILE).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Send the request to this KMS endpoint (e.g. `kmsfs kms serve`) instead
    /// of the embedded store, signed with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    #[command(subcommand)]
    pub command: KmsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KmsCommand {
    /// Serves the key store over the AWS KMS JSON protocol (HTTP, SigV4; or a Unix socket).
    Serve(super::serve::ServeArgs),
    /// Creates a customer master key (CMK).
    CreateKey {
        #[arg(long)]
        description: Option<String>,
        /// AWS_KMS (material made here) or EXTERNAL (material imported later).
        #[arg(long)]
        origin: Option<String>,
        #[arg(long)]
        key_usage: Option<String>,
        #[arg(long)]
        key_spec: Option<String>,
        #[arg(long)]
        customer_master_key_spec: Option<String>,
        /// TagKey=k,TagValue=v … or a JSON list.
        #[arg(long, num_args = 1..)]
        tags: Vec<String>,
        /// Key policy document (JSON text or file://PATH).
        #[arg(long)]
        policy: Option<String>,
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
        /// A multi-Region primary key (id mrk-…), for replicate-key.
        #[arg(long)]
        multi_region: bool,
    },
    /// Shows a key's metadata.
    DescribeKey {
        #[arg(long)]
        key_id: String,
    },
    /// Lists the keys in the store.
    ListKeys {
        /// The most entries to return (AWS's `Limit`).
        #[arg(long)]
        limit: Option<u32>,
        /// The `NextMarker` of the previous page.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Creates an alias (alias/NAME) for a key.
    CreateAlias {
        #[arg(long)]
        alias_name: String,
        #[arg(long)]
        target_key_id: String,
    },
    /// Points an existing alias at another key.
    UpdateAlias {
        #[arg(long)]
        alias_name: String,
        #[arg(long)]
        target_key_id: String,
    },
    /// Deletes an alias (not its key).
    DeleteAlias {
        #[arg(long)]
        alias_name: String,
    },
    /// Lists aliases, optionally only those of one key.
    ListAliases {
        #[arg(long)]
        key_id: Option<String>,
        /// The most entries to return (AWS's `Limit`).
        #[arg(long)]
        limit: Option<u32>,
        /// The `NextMarker` of the previous page.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Enables a disabled key.
    EnableKey {
        #[arg(long)]
        key_id: String,
    },
    /// Disables a key: it can no longer encrypt or decrypt.
    DisableKey {
        #[arg(long)]
        key_id: String,
    },
    /// Schedules a key's destruction after 7..30 days (default 30).
    ScheduleKeyDeletion {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        pending_window_in_days: Option<u32>,
    },
    /// Cancels a scheduled deletion; the key is left Disabled.
    CancelKeyDeletion {
        #[arg(long)]
        key_id: String,
    },
    /// Turns on automatic rotation (every 90..2560 days, default 365).
    EnableKeyRotation {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        rotation_period_in_days: Option<u32>,
    },
    /// Turns off automatic rotation.
    DisableKeyRotation {
        #[arg(long)]
        key_id: String,
    },
    /// Shows whether automatic rotation is on and when it is next due.
    GetKeyRotationStatus {
        #[arg(long)]
        key_id: String,
    },
    /// Rotates a key now: new encryptions use a new key version; old versions still decrypt.
    RotateKeyOnDemand {
        #[arg(long)]
        key_id: String,
    },
    /// Lists a key's rotations with their dates.
    ListKeyRotations {
        #[arg(long)]
        key_id: String,
        /// ALL_KEY_MATERIAL or ROTATIONS_ONLY.
        #[arg(long)]
        include_key_material: Option<String>,
        /// The most entries to return (AWS's `Limit`).
        #[arg(long)]
        limit: Option<u32>,
        /// The `NextMarker` of the previous page.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Encrypts up to 4096 bytes under a key.
    Encrypt {
        #[arg(long)]
        key_id: String,
        /// fileb://PATH, file://PATH or base64.
        #[arg(long)]
        plaintext: String,
        /// k=v,k2=v2 or a JSON object.
        #[arg(long)]
        encryption_context: Option<String>,
        #[arg(long)]
        encryption_algorithm: Option<String>,
        /// Check permissions and input only: answers DryRunOperationException if the call would succeed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Decrypts a ciphertext blob; the blob names its key.
    Decrypt {
        #[arg(long)]
        ciphertext_blob: String,
        #[arg(long)]
        encryption_context: Option<String>,
        /// Optional: refuse unless the blob was made with this key.
        #[arg(long)]
        key_id: Option<String>,
        #[arg(long)]
        encryption_algorithm: Option<String>,
        /// Check permissions and input only: answers DryRunOperationException if the call would succeed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Decrypts and re-encrypts under another key (or the current version of the same key).
    ReEncrypt {
        #[arg(long)]
        ciphertext_blob: String,
        #[arg(long)]
        destination_key_id: String,
        #[arg(long)]
        source_key_id: Option<String>,
        #[arg(long)]
        source_encryption_context: Option<String>,
        #[arg(long)]
        destination_encryption_context: Option<String>,
        #[arg(long)]
        source_encryption_algorithm: Option<String>,
        #[arg(long)]
        destination_encryption_algorithm: Option<String>,
        /// Check permissions and input only: answers DryRunOperationException if the call would succeed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Returns a new data key in plaintext and wrapped by a key.
    GenerateDataKey {
        #[arg(long)]
        key_id: String,
        /// AES_256 or AES_128.
        #[arg(long)]
        key_spec: Option<String>,
        #[arg(long)]
        number_of_bytes: Option<u32>,
        #[arg(long)]
        encryption_context: Option<String>,
        /// Check permissions and input only: answers DryRunOperationException if the call would succeed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Returns a new data key wrapped by a key, without its plaintext.
    GenerateDataKeyWithoutPlaintext {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        key_spec: Option<String>,
        #[arg(long)]
        number_of_bytes: Option<u32>,
        #[arg(long)]
        encryption_context: Option<String>,
        /// Check permissions and input only: answers DryRunOperationException if the call would succeed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Prints a key's policy.
    GetKeyPolicy {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        policy_name: Option<String>,
    },
    /// Replaces a key's policy.
    PutKeyPolicy {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        policy: String,
        #[arg(long)]
        policy_name: Option<String>,
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
    },
    /// Returns an RSA public key and import token for importing key material (EXTERNAL keys).
    GetParametersForImport {
        #[arg(long)]
        key_id: String,
        /// RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1.
        #[arg(long)]
        wrapping_algorithm: String,
        /// RSA_2048, RSA_3072 or RSA_4096.
        #[arg(long)]
        wrapping_key_spec: String,
    },
    /// Imports 32 bytes of key material, encrypted to the wrapping key, into an EXTERNAL key.
    ImportKeyMaterial {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        import_token: String,
        #[arg(long)]
        encrypted_key_material: String,
        #[arg(long)]
        expiration_model: Option<String>,
    },
    #[command(flatten)]
    Asymmetric(asymmetric::AsymmetricCommand),
    #[command(flatten)]
    Grants(grants::GrantCommand),
    #[command(flatten)]
    MultiRegion(multi_region::MultiRegionCommand),
    /// Destroys the imported key material of an EXTERNAL key (it becomes PendingImport).
    DeleteImportedKeyMaterial {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        key_material_id: Option<String>,
    },
    /// Replaces a key's description.
    UpdateKeyDescription {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        description: String,
    },
    /// Lists the names of a key's policies (always `default`).
    ListKeyPolicies {
        #[arg(long)]
        key_id: String,
        /// The most entries to return (AWS's `Limit`).
        #[arg(long)]
        limit: Option<u32>,
        /// The `NextMarker` of the previous page.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Shows the last cryptographic use of a key.
    GetKeyLastUsage {
        #[arg(long)]
        key_id: String,
    },
    /// Adds tags to a key, or changes the values of tags it has.
    TagResource {
        #[arg(long)]
        key_id: String,
        /// TagKey=k,TagValue=v … or a JSON list.
        #[arg(long, num_args = 1.., required = true)]
        tags: Vec<String>,
    },
    /// Removes tags from a key.
    UntagResource {
        #[arg(long)]
        key_id: String,
        #[arg(long, num_args = 1.., required = true)]
        tag_keys: Vec<String>,
    },
    /// Lists a key's tags, sorted by tag key.
    ListResourceTags {
        #[arg(long)]
        key_id: String,
        /// The most entries to return (AWS's `Limit`).
        #[arg(long)]
        limit: Option<u32>,
        /// The `NextMarker` of the previous page.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Returns random bytes (base64), 1..1024 of them.
    GenerateRandom {
        #[arg(long)]
        number_of_bytes: Option<u32>,
        #[arg(long)]
        custom_key_store_id: Option<String>,
    },
    /// Refused: kmsfs has no CloudHSM or external key stores.
    CreateCustomKeyStore {
        #[arg(long)]
        custom_key_store_name: String,
        /// AWS_CLOUDHSM or EXTERNAL_KEY_STORE.
        #[arg(long)]
        custom_key_store_type: Option<String>,
        #[arg(long)]
        cloud_hsm_cluster_id: Option<String>,
        #[arg(long)]
        xks_proxy_uri_endpoint: Option<String>,
        #[arg(long)]
        xks_proxy_uri_path: Option<String>,
        #[arg(long)]
        xks_proxy_connectivity: Option<String>,
    },
    /// Lists the custom key stores: none in kmsfs.
    DescribeCustomKeyStores {
        #[arg(long)]
        custom_key_store_id: Option<String>,
        #[arg(long)]
        custom_key_store_name: Option<String>,
        /// The most entries to return (AWS's `Limit`).
        #[arg(long)]
        limit: Option<u32>,
        /// The `NextMarker` of the previous page.
        #[arg(long)]
        marker: Option<String>,
    },
    /// CustomKeyStoreNotFoundException: kmsfs has no custom key stores.
    ConnectCustomKeyStore {
        #[arg(long)]
        custom_key_store_id: String,
    },
    /// CustomKeyStoreNotFoundException: kmsfs has no custom key stores.
    DisconnectCustomKeyStore {
        #[arg(long)]
        custom_key_store_id: String,
    },
    /// CustomKeyStoreNotFoundException: kmsfs has no custom key stores.
    UpdateCustomKeyStore {
        #[arg(long)]
        custom_key_store_id: String,
        #[arg(long)]
        new_custom_key_store_name: Option<String>,
    },
    /// CustomKeyStoreNotFoundException: kmsfs has no custom key stores.
    DeleteCustomKeyStore {
        #[arg(long)]
        custom_key_store_id: String,
    },
}

fn usage(e: &awscli::ArgError, cli: &str) -> CliError {
    CliError::Usage(e.with_param(cli))
}

fn text_arg(arg: &str, cli: &str) -> Result<String, CliError> {
    awscli::read_text_arg(arg).map_err(|e| usage(&e, cli))
}

/// A secret binary argument (fileb://, file:// or base64).
fn plaintext_arg(arg: &str, cli: &str) -> Result<Plaintext, CliError> {
    Ok(Plaintext(Zeroizing::new(
        awscli::read_blob_arg(arg).map_err(|e| usage(&e, cli))?,
    )))
}

/// A binary argument that is not secret.
fn blob_arg(arg: &str, cli: &str) -> Result<Blob, CliError> {
    Ok(Blob(
        awscli::read_blob_arg(arg).map_err(|e| usage(&e, cli))?,
    ))
}

/// An encryption context argument (k=v,k2=v2 or JSON); absent is empty.
fn context_arg(arg: Option<&String>, cli: &str) -> Result<EncryptionContext, CliError> {
    match arg {
        Some(arg) => awscli::parse_string_map(arg).map_err(|e| usage(&e, cli)),
        None => Ok(EncryptionContext::new()),
    }
}

/// One typed request as the AWS operation name and its JSON body (the
/// embedded store and the endpoint both take JSON).
fn wire<R: KmsRequest>(request: R) -> Result<(&'static str, Value), CliError> {
    let body = serde_json::to_value(&request)
        .map_err(|e| CliError::Usage(format!("cannot encode the {} request: {e}", R::OPERATION)))?;
    Ok((R::OPERATION.name(), body))
}

/// The AWS operation name and JSON request of a subcommand.
fn request(cmd: &KmsCommand) -> Result<(&'static str, Value), CliError> {
    use KmsCommand::*;
    match cmd {
        Serve(_) => Err(CliError::Usage("serve is not an API operation".into())),
        Asymmetric(command) => command.request(),
        Grants(command) => command.request(),
        MultiRegion(command) => command.request(),
        CreateKey {
            description,
            origin,
            key_usage,
            key_spec,
            customer_master_key_spec,
            tags,
            policy,
            bypass_policy_lockout_safety_check,
            multi_region,
        } => {
            let policy = policy
                .as_deref()
                .map(|p| text_arg(p, "--policy"))
                .transpose()?;
            let tags = tags_arg(tags)?;
            wire(CreateKeyRequest {
                description: description.clone(),
                origin: origin.clone(),
                key_usage: key_usage.clone(),
                key_spec: key_spec.clone(),
                customer_master_key_spec: customer_master_key_spec.clone(),
                tags,
                policy,
                bypass_policy_lockout_safety_check: *bypass_policy_lockout_safety_check,
                custom_key_store_id: None,
                // Left out unless set, as the AWS CLI sends it.
                multi_region: multi_region.then_some(true),
            })
        }
        DescribeKey { key_id } => wire(DescribeKeyRequest::new(key_id)),
        ListKeys { limit, marker } => wire(ListKeysRequest {
            limit: *limit,
            marker: marker.clone(),
        }),
        CreateAlias {
            alias_name,
            target_key_id,
        } => wire(CreateAliasRequest {
            alias_name: alias_name.clone(),
            target_key_id: target_key_id.clone(),
        }),
        UpdateAlias {
            alias_name,
            target_key_id,
        } => wire(UpdateAliasRequest {
            alias_name: alias_name.clone(),
            target_key_id: target_key_id.clone(),
        }),
        DeleteAlias { alias_name } => wire(DeleteAliasRequest {
            alias_name: alias_name.clone(),
        }),
        ListAliases {
            key_id,
            limit,
            marker,
        } => wire(ListAliasesRequest {
            key_id: key_id.clone(),
            limit: *limit,
            marker: marker.clone(),
        }),
        EnableKey { key_id } => wire(EnableKeyRequest::new(key_id)),
        DisableKey { key_id } => wire(DisableKeyRequest::new(key_id)),
        ScheduleKeyDeletion {
            key_id,
            pending_window_in_days,
        } => wire(ScheduleKeyDeletionRequest {
            key_id: key_id.clone(),
            pending_window_in_days: *pending_window_in_days,
        }),
        CancelKeyDeletion { key_id } => wire(CancelKeyDeletionRequest::new(key_id)),
        EnableKeyRotation {
            key_id,
            rotation_period_in_days,
        } => wire(EnableKeyRotationRequest {
            key_id: key_id.clone(),
            rotation_period_in_days: *rotation_period_in_days,
        }),
        DisableKeyRotation { key_id } => wire(DisableKeyRotationRequest::new(key_id)),
        GetKeyRotationStatus { key_id } => wire(GetKeyRotationStatusRequest::new(key_id)),
        RotateKeyOnDemand { key_id } => wire(RotateKeyOnDemandRequest::new(key_id)),
        ListKeyRotations {
            key_id,
            include_key_material,
            limit,
            marker,
        } => wire(ListKeyRotationsRequest {
            key_id: key_id.clone(),
            include_key_material: include_key_material.clone(),
            limit: *limit,
            marker: marker.clone(),
        }),
        Encrypt {
            key_id,
            plaintext,
            encryption_context,
            encryption_algorithm,
            dry_run,
        } => wire(EncryptRequest {
            key_id: key_id.clone(),
            plaintext: plaintext_arg(plaintext, "--plaintext")?,
            encryption_context: context_arg(encryption_context.as_ref(), "--encryption-context")?,
            encryption_algorithm: encryption_algorithm.clone(),
            dry_run: *dry_run,
        }),
        Decrypt {
            ciphertext_blob,
            encryption_context,
            key_id,
            encryption_algorithm,
            dry_run,
        } => wire(DecryptRequest {
            ciphertext_blob: blob_arg(ciphertext_blob, "--ciphertext-blob")?,
            encryption_context: context_arg(encryption_context.as_ref(), "--encryption-context")?,
            key_id: key_id.clone(),
            encryption_algorithm: encryption_algorithm.clone(),
            dry_run: *dry_run,
        }),
        ReEncrypt {
            ciphertext_blob,
            destination_key_id,
            source_key_id,
            source_encryption_context,
            destination_encryption_context,
            source_encryption_algorithm,
            destination_encryption_algorithm,
            dry_run,
        } => wire(ReEncryptRequest {
            ciphertext_blob: blob_arg(ciphertext_blob, "--ciphertext-blob")?,
            destination_key_id: destination_key_id.clone(),
            source_key_id: source_key_id.clone(),
            source_encryption_context: context_arg(
                source_encryption_context.as_ref(),
                "--source-encryption-context",
            )?,
            destination_encryption_context: context_arg(
                destination_encryption_context.as_ref(),
                "--destination-encryption-context",
            )?,
            source_encryption_algorithm: source_encryption_algorithm.clone(),
            destination_encryption_algorithm: destination_encryption_algorithm.clone(),
            dry_run: *dry_run,
        }),
        GenerateDataKey {
            key_id,
            key_spec,
            number_of_bytes,
            encryption_context,
            dry_run,
        } => wire(GenerateDataKeyRequest {
            key_id: key_id.clone(),
            key_spec: key_spec.clone(),
            number_of_bytes: *number_of_bytes,
            encryption_context: context_arg(encryption_context.as_ref(), "--encryption-context")?,
            dry_run: *dry_run,
        }),
        GenerateDataKeyWithoutPlaintext {
            key_id,
            key_spec,
            number_of_bytes,
            encryption_context,
            dry_run,
        } => wire(GenerateDataKeyWithoutPlaintextRequest {
            key_id: key_id.clone(),
            key_spec: key_spec.clone(),
            number_of_bytes: *number_of_bytes,
            encryption_context: context_arg(encryption_context.as_ref(), "--encryption-context")?,
            dry_run: *dry_run,
        }),
        GetKeyPolicy {
            key_id,
            policy_name,
        } => wire(GetKeyPolicyRequest {
            key_id: key_id.clone(),
            policy_name: policy_name.clone(),
        }),
        PutKeyPolicy {
            key_id,
            policy,
            policy_name,
            bypass_policy_lockout_safety_check,
        } => wire(PutKeyPolicyRequest {
            key_id: key_id.clone(),
            policy: text_arg(policy, "--policy")?,
            policy_name: policy_name.clone(),
            bypass_policy_lockout_safety_check: *bypass_policy_lockout_safety_check,
        }),
        GetParametersForImport {
            key_id,
            wrapping_algorithm,
            wrapping_key_spec,
        } => wire(GetParametersForImportRequest {
            key_id: key_id.clone(),
            wrapping_algorithm: wrapping_algorithm.clone(),
            wrapping_key_spec: wrapping_key_spec.clone(),
        }),
        ImportKeyMaterial {
            key_id,
            import_token,
            encrypted_key_material,
            expiration_model,
        } => wire(ImportKeyMaterialRequest {
            key_id: key_id.clone(),
            import_token: blob_arg(import_token, "--import-token")?,
            encrypted_key_material: blob_arg(encrypted_key_material, "--encrypted-key-material")?,
            expiration_model: expiration_model.clone(),
        }),
        DeleteImportedKeyMaterial {
            key_id,
            key_material_id,
        } => wire(DeleteImportedKeyMaterialRequest {
            key_id: key_id.clone(),
            key_material_id: key_material_id.clone(),
        }),
        UpdateKeyDescription {
            key_id,
            description,
        } => wire(UpdateKeyDescriptionRequest {
            key_id: key_id.clone(),
            description: description.clone(),
        }),
        ListKeyPolicies {
            key_id,
            limit,
            marker,
        } => wire(ListKeyPoliciesRequest {
            key_id: key_id.clone(),
            limit: *limit,
            marker: marker.clone(),
        }),
        GetKeyLastUsage { key_id } => wire(GetKeyLastUsageRequest {
            key_id: key_id.clone(),
        }),
        TagResource { key_id, tags } => wire(TagResourceRequest {
            key_id: key_id.clone(),
            tags: tags_arg(tags)?,
        }),
        UntagResource { key_id, tag_keys } => wire(UntagResourceRequest {
            key_id: key_id.clone(),
            tag_keys: tag_keys.clone(),
        }),
        ListResourceTags {
            key_id,
            limit,
            marker,
        } => wire(ListResourceTagsRequest {
            key_id: key_id.clone(),
            limit: *limit,
            marker: marker.clone(),
        }),
        GenerateRandom {
            number_of_bytes,
            custom_key_store_id,
        } => wire(GenerateRandomRequest {
            number_of_bytes: *number_of_bytes,
            custom_key_store_id: custom_key_store_id.clone(),
            recipient: None,
        }),
        CreateCustomKeyStore {
            custom_key_store_name,
            custom_key_store_type,
            cloud_hsm_cluster_id,
            xks_proxy_uri_endpoint,
            xks_proxy_uri_path,
            xks_proxy_connectivity,
        } => wire(CreateCustomKeyStoreRequest {
            custom_key_store_name: custom_key_store_name.clone(),
            custom_key_store_type: custom_key_store_type.clone(),
            cloud_hsm_cluster_id: cloud_hsm_cluster_id.clone(),
            xks_proxy_uri_endpoint: xks_proxy_uri_endpoint.clone(),
            xks_proxy_uri_path: xks_proxy_uri_path.clone(),
            xks_proxy_connectivity: xks_proxy_connectivity.clone(),
        }),
        DescribeCustomKeyStores {
            custom_key_store_id,
            custom_key_store_name,
            limit,
            marker,
        } => wire(DescribeCustomKeyStoresRequest {
            custom_key_store_id: custom_key_store_id.clone(),
            custom_key_store_name: custom_key_store_name.clone(),
            limit: *limit,
            marker: marker.clone(),
        }),
        ConnectCustomKeyStore {
            custom_key_store_id,
        } => wire(ConnectCustomKeyStoreRequest {
            custom_key_store_id: custom_key_store_id.clone(),
        }),
        DisconnectCustomKeyStore {
            custom_key_store_id,
        } => wire(DisconnectCustomKeyStoreRequest {
            custom_key_store_id: custom_key_store_id.clone(),
        }),
        UpdateCustomKeyStore {
            custom_key_store_id,
            new_custom_key_store_name,
        } => wire(UpdateCustomKeyStoreRequest {
            custom_key_store_id: custom_key_store_id.clone(),
            new_custom_key_store_name: new_custom_key_store_name.clone(),
        }),
        DeleteCustomKeyStore {
            custom_key_store_id,
        } => wire(DeleteCustomKeyStoreRequest {
            custom_key_store_id: custom_key_store_id.clone(),
        }),
    }
}

/// A `--tags` argument: TagKey=k,TagValue=v … or a JSON list.
fn tags_arg(tags: &[String]) -> Result<Vec<Tag>, CliError> {
    if tags.is_empty() {
        return Ok(vec![]);
    }
    Ok(awscli::parse_tags(tags)
        .map_err(|e| usage(&e, "--tags"))?
        .into_iter()
        .map(|(tag_key, tag_value)| Tag { tag_key, tag_value })
        .collect())
}

/// Fields the AWS CLI shows as ISO 8601 dates rather than epoch seconds.
const TIMESTAMP_FIELDS: &[&str] = &[
    "CreationDate",
    "DeletionDate",
    "LastUpdatedDate",
    "NextRotationDate",
    "RotationDate",
    "ParametersValidTo",
    "ValidTo",
    "OnDemandRotationStartDate",
    "TrackingStartDate",
    "KeyCreationDate",
    "Timestamp",
];

fn iso_timestamps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, field) in m.iter_mut() {
                if TIMESTAMP_FIELDS.contains(&k.as_str()) {
                    if let Some(d) = field
                        .as_i64()
                        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                    {
                        *field =
                            Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::Micros, false));
                    }
                } else {
                    iso_timestamps(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(iso_timestamps),
        _ => {}
    }
}

pub(crate) fn run(args: &KmsArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    if let KmsCommand::Serve(serve) = &args.command {
        return super::serve::serve(serve, keystore);
    }
    let (operation, request) = request(&args.command)?;
    let region = awscli::resolve_region(args.region.as_deref(), args.profile.as_deref());
    let mut response = if let Some(url) = &args.endpoint_url {
        let region = region.unwrap_or_else(kmsfs_kms::remote::env_region);
        kmsfs_kms::remote::KmsClient::new(url, kmsfs_kms::remote::Credentials::from_env(), &region)
            .and_then(|c| c.call(operation, &request))
            .map_err(|e| CliError::Service(operation, e))?
    } else {
        let kms = open_local_kms(keystore, Arc::new(kmsfs_kms::clock::SystemClock))?;
        let caller = Caller::current().in_region(region);
        api::handle(&kms, &caller, operation, &request)
            .map_err(|e| CliError::Service(operation, e))?
    };
    if response.as_object().is_some_and(Map::is_empty) {
        return Ok(());
    }
    iso_timestamps(&mut response);
    if let Some(q) = &args.query {
        response = awscli::apply_query(&response, q).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    print!("{}", awscli::render(&response, args.output));
    Ok(())
}
