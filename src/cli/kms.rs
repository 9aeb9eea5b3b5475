//! `kmsfs kms …`: the AWS KMS command line, flag for flag. Each subcommand
//! becomes one AWS JSON request handed to `kms::api::handle`; the response is
//! shaped, queried and printed as the AWS CLI would.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::awscli::{self, OutputFormat};
use super::{CliError, open_local_kms};
use kmsfs_kms::{Caller, api};

#[derive(Debug, Args)]
pub struct KmsArgs {
    /// Output format, as the AWS CLI's --output.
    #[arg(long, global = true, default_value = "json")]
    pub output: OutputFormat,
    /// A JMESPath-style query applied to the response (AWS CLI --query).
    #[arg(long, global = true)]
    pub query: Option<String>,
    /// Accepted for compatibility with AWS scripts; the embedded store has one region.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Accepted for compatibility with AWS scripts; ignored by the embedded store.
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
pub enum KmsCommand {
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
    },
    /// Shows a key's metadata.
    DescribeKey {
        #[arg(long)]
        key_id: String,
    },
    /// Lists the keys in the store.
    ListKeys,
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
}

/// A JSON request under construction, skipping absent optional fields.
struct Req(Map<String, Value>);

impl Req {
    fn new() -> Req {
        Req(Map::new())
    }
    fn s(mut self, name: &str, v: impl Into<String>) -> Req {
        self.0.insert(name.into(), Value::String(v.into()));
        self
    }
    fn os(self, name: &str, v: Option<impl Into<String>>) -> Req {
        match v {
            Some(v) => self.s(name, v),
            None => self,
        }
    }
    fn n(mut self, name: &str, v: Option<u32>) -> Req {
        if let Some(v) = v {
            self.0.insert(name.into(), json!(v));
        }
        self
    }
    fn flag(mut self, name: &str, v: bool) -> Req {
        if v {
            self.0.insert(name.into(), Value::Bool(true));
        }
        self
    }
    fn blob(self, name: &str, arg: &str, cli: &str) -> Result<Req, CliError> {
        let bytes = Zeroizing::new(awscli::read_blob_arg(arg).map_err(|e| usage(&e, cli))?);
        Ok(self.s(name, B64.encode(bytes.as_slice())))
    }
    fn ctx(mut self, name: &str, arg: Option<&String>, cli: &str) -> Result<Req, CliError> {
        if let Some(arg) = arg {
            let map = awscli::parse_string_map(arg).map_err(|e| usage(&e, cli))?;
            self.0.insert(name.into(), json!(map));
        }
        Ok(self)
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn usage(e: &awscli::ArgError, cli: &str) -> CliError {
    CliError::Usage(e.with_param(cli))
}

fn text_arg(arg: &str, cli: &str) -> Result<String, CliError> {
    awscli::read_text_arg(arg).map_err(|e| usage(&e, cli))
}

/// The AWS operation name and JSON request of a subcommand.
fn request(cmd: &KmsCommand) -> Result<(&'static str, Value), CliError> {
    use KmsCommand::*;
    Ok(match cmd {
        Serve(_) => return Err(CliError::Usage("serve is not an API operation".into())),
        CreateKey {
            description,
            origin,
            key_usage,
            key_spec,
            customer_master_key_spec,
            tags,
            policy,
            bypass_policy_lockout_safety_check,
        } => {
            let mut req = Req::new()
                .os("Description", description.clone())
                .os("Origin", origin.clone())
                .os("KeyUsage", key_usage.clone())
                .os("KeySpec", key_spec.clone())
                .os("CustomerMasterKeySpec", customer_master_key_spec.clone())
                .flag(
                    "BypassPolicyLockoutSafetyCheck",
                    *bypass_policy_lockout_safety_check,
                );
            if let Some(p) = policy {
                req = req.s("Policy", text_arg(p, "--policy")?);
            }
            if !tags.is_empty() {
                let parsed = awscli::parse_tags(tags).map_err(|e| usage(&e, "--tags"))?;
                let list: Vec<Value> = parsed
                    .into_iter()
                    .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
                    .collect();
                req.0.insert("Tags".into(), Value::Array(list));
            }
            ("CreateKey", req.done())
        }
        DescribeKey { key_id } => ("DescribeKey", Req::new().s("KeyId", key_id).done()),
        ListKeys => ("ListKeys", Req::new().done()),
        CreateAlias {
            alias_name,
            target_key_id,
        } => (
            "CreateAlias",
            Req::new()
                .s("AliasName", alias_name)
                .s("TargetKeyId", target_key_id)
                .done(),
        ),
        UpdateAlias {
            alias_name,
            target_key_id,
        } => (
            "UpdateAlias",
            Req::new()
                .s("AliasName", alias_name)
                .s("TargetKeyId", target_key_id)
                .done(),
        ),
        DeleteAlias { alias_name } => ("DeleteAlias", Req::new().s("AliasName", alias_name).done()),
        ListAliases { key_id } => ("ListAliases", Req::new().os("KeyId", key_id.clone()).done()),
        EnableKey { key_id } => ("EnableKey", Req::new().s("KeyId", key_id).done()),
        DisableKey { key_id } => ("DisableKey", Req::new().s("KeyId", key_id).done()),
        ScheduleKeyDeletion {
            key_id,
            pending_window_in_days,
        } => (
            "ScheduleKeyDeletion",
            Req::new()
                .s("KeyId", key_id)
                .n("PendingWindowInDays", *pending_window_in_days)
                .done(),
        ),
        CancelKeyDeletion { key_id } => ("CancelKeyDeletion", Req::new().s("KeyId", key_id).done()),
        EnableKeyRotation {
            key_id,
            rotation_period_in_days,
        } => (
            "EnableKeyRotation",
            Req::new()
                .s("KeyId", key_id)
                .n("RotationPeriodInDays", *rotation_period_in_days)
                .done(),
        ),
        DisableKeyRotation { key_id } => {
            ("DisableKeyRotation", Req::new().s("KeyId", key_id).done())
        }
        GetKeyRotationStatus { key_id } => {
            ("GetKeyRotationStatus", Req::new().s("KeyId", key_id).done())
        }
        RotateKeyOnDemand { key_id } => ("RotateKeyOnDemand", Req::new().s("KeyId", key_id).done()),
        ListKeyRotations { key_id } => ("ListKeyRotations", Req::new().s("KeyId", key_id).done()),
        Encrypt {
            key_id,
            plaintext,
            encryption_context,
            encryption_algorithm,
        } => (
            "Encrypt",
            Req::new()
                .s("KeyId", key_id)
                .blob("Plaintext", plaintext, "--plaintext")?
                .ctx(
                    "EncryptionContext",
                    encryption_context.as_ref(),
                    "--encryption-context",
                )?
                .os("EncryptionAlgorithm", encryption_algorithm.clone())
                .done(),
        ),
        Decrypt {
            ciphertext_blob,
            encryption_context,
            key_id,
            encryption_algorithm,
        } => (
            "Decrypt",
            Req::new()
                .blob("CiphertextBlob", ciphertext_blob, "--ciphertext-blob")?
                .ctx(
                    "EncryptionContext",
                    encryption_context.as_ref(),
                    "--encryption-context",
                )?
                .os("KeyId", key_id.clone())
                .os("EncryptionAlgorithm", encryption_algorithm.clone())
                .done(),
        ),
        ReEncrypt {
            ciphertext_blob,
            destination_key_id,
            source_key_id,
            source_encryption_context,
            destination_encryption_context,
            source_encryption_algorithm,
            destination_encryption_algorithm,
        } => (
            "ReEncrypt",
            Req::new()
                .blob("CiphertextBlob", ciphertext_blob, "--ciphertext-blob")?
                .s("DestinationKeyId", destination_key_id)
                .os("SourceKeyId", source_key_id.clone())
                .ctx(
                    "SourceEncryptionContext",
                    source_encryption_context.as_ref(),
                    "--source-encryption-context",
                )?
                .ctx(
                    "DestinationEncryptionContext",
                    destination_encryption_context.as_ref(),
                    "--destination-encryption-context",
                )?
                .os(
                    "SourceEncryptionAlgorithm",
                    source_encryption_algorithm.clone(),
                )
                .os(
                    "DestinationEncryptionAlgorithm",
                    destination_encryption_algorithm.clone(),
                )
                .done(),
        ),
        GenerateDataKey {
            key_id,
            key_spec,
            number_of_bytes,
            encryption_context,
        }
        | GenerateDataKeyWithoutPlaintext {
            key_id,
            key_spec,
            number_of_bytes,
            encryption_context,
        } => (
            if matches!(cmd, GenerateDataKey { .. }) {
                "GenerateDataKey"
            } else {
                "GenerateDataKeyWithoutPlaintext"
            },
            Req::new()
                .s("KeyId", key_id)
                .os("KeySpec", key_spec.clone())
                .n("NumberOfBytes", *number_of_bytes)
                .ctx(
                    "EncryptionContext",
                    encryption_context.as_ref(),
                    "--encryption-context",
                )?
                .done(),
        ),
        GetKeyPolicy {
            key_id,
            policy_name,
        } => (
            "GetKeyPolicy",
            Req::new()
                .s("KeyId", key_id)
                .os("PolicyName", policy_name.clone())
                .done(),
        ),
        PutKeyPolicy {
            key_id,
            policy,
            policy_name,
            bypass_policy_lockout_safety_check,
        } => (
            "PutKeyPolicy",
            Req::new()
                .s("KeyId", key_id)
                .s("Policy", text_arg(policy, "--policy")?)
                .os("PolicyName", policy_name.clone())
                .flag(
                    "BypassPolicyLockoutSafetyCheck",
                    *bypass_policy_lockout_safety_check,
                )
                .done(),
        ),
        GetParametersForImport {
            key_id,
            wrapping_algorithm,
            wrapping_key_spec,
        } => (
            "GetParametersForImport",
            Req::new()
                .s("KeyId", key_id)
                .s("WrappingAlgorithm", wrapping_algorithm)
                .s("WrappingKeySpec", wrapping_key_spec)
                .done(),
        ),
        ImportKeyMaterial {
            key_id,
            import_token,
            encrypted_key_material,
            expiration_model,
        } => (
            "ImportKeyMaterial",
            Req::new()
                .s("KeyId", key_id)
                .blob("ImportToken", import_token, "--import-token")?
                .blob(
                    "EncryptedKeyMaterial",
                    encrypted_key_material,
                    "--encrypted-key-material",
                )?
                .os("ExpirationModel", expiration_model.clone())
                .done(),
        ),
    })
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

pub fn run(args: &KmsArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    if let KmsCommand::Serve(serve) = &args.command {
        return super::serve::serve(serve, keystore);
    }
    let (operation, request) = request(&args.command)?;
    let mut response = if let Some(url) = &args.endpoint_url {
        kmsfs_kms::remote::KmsClient::from_env(url)
            .and_then(|c| c.call(operation, &request))
            .map_err(|e| CliError::Service(operation, e))?
    } else {
        let kms = open_local_kms(keystore, Arc::new(kmsfs_kms::clock::SystemClock))?;
        api::handle(&kms, &Caller::current(), operation, &request)
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
