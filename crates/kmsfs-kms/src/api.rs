//! The AWS KMS JSON protocol over [`LocalKms`]: an operation name
//! (`TrentService.<Operation>` without the prefix) and a JSON request with
//! AWS field names in, a JSON response with AWS field names out. Binary
//! fields are base64 strings and timestamps are epoch seconds, as on the wire.
//!
//! The CLI builds these requests from its flags, so the CLI and any server
//! share one mapping and cannot drift apart.

/// The AWS JSON 1.1 protocol: every request is a POST with this content type
/// and an `X-Amz-Target` of the service prefix and the operation name.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub const TARGET_PREFIX: &str = "TrentService.";

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use super::blob::EncryptionContext;
use super::error::{KmsError, Result};
use super::local::{CreateKeyInput, KeyInfo, LocalKms};
use super::model::Origin;
use super::policy::Caller;

/// Every operation `handle` understands, in AWS's names.
pub const OPERATIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "RotateKeyOnDemand",
    "ListKeyRotations",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GetKeyPolicy",
    "PutKeyPolicy",
    "GetParametersForImport",
    "ImportKeyMaterial",
];

struct Request<'a>(&'a Map<String, Value>);

fn missing(name: &str) -> KmsError {
    KmsError::Validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        lower_first(name)
    ))
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn wrong_type(name: &str, expected: &str) -> KmsError {
    KmsError::Validation(format!("Parameter {name} must be {expected}"))
}

impl<'a> Request<'a> {
    fn opt_str(&self, name: &str) -> Result<Option<&'a str>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(name, "a string")),
        }
    }

    fn str(&self, name: &str) -> Result<&'a str> {
        self.opt_str(name)?.ok_or_else(|| missing(name))
    }

    fn opt_u32(&self, name: &str) -> Result<Option<u32>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| wrong_type(name, "a non-negative integer")),
        }
    }

    fn bool(&self, name: &str) -> Result<bool> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(wrong_type(name, "a boolean")),
        }
    }

    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.opt_str(name)?
            .map(|s| {
                B64.decode(s).map_err(|_| {
                    KmsError::Validation(format!("Parameter {name} is not valid base64"))
                })
            })
            .transpose()
    }

    fn blob(&self, name: &str) -> Result<Vec<u8>> {
        self.opt_blob(name)?.ok_or_else(|| missing(name))
    }

    fn ctx(&self, name: &str) -> Result<EncryptionContext> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(EncryptionContext::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(wrong_type(name, "a map of strings to strings")),
                })
                .collect(),
            Some(_) => Err(wrong_type(name, "a map of strings to strings")),
        }
    }

    fn tags(&self) -> Result<Vec<(String, String)>> {
        match self.0.get("Tags") {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|t| {
                    let k = t.get("TagKey").and_then(Value::as_str);
                    let v = t.get("TagValue").and_then(Value::as_str);
                    match (k, v) {
                        (Some(k), Some(v)) => Ok((k.to_string(), v.to_string())),
                        _ => Err(wrong_type("Tags", "a list of {TagKey, TagValue}")),
                    }
                })
                .collect(),
            Some(_) => Err(wrong_type("Tags", "a list of {TagKey, TagValue}")),
        }
    }

    fn symmetric_algorithm(&self, name: &str) -> Result<()> {
        match self.opt_str(name)? {
            None | Some("SYMMETRIC_DEFAULT") => Ok(()),
            Some(other) => Err(KmsError::InvalidKeyUsage(format!(
                "{other} is not a valid encryption algorithm for a symmetric key; use SYMMETRIC_DEFAULT"
            ))),
        }
    }
}

fn metadata(i: &KeyInfo) -> Value {
    let mut m = json!({
        "AWSAccountId": i.account,
        "KeyId": i.key_id.to_string(),
        "Arn": i.arn,
        "CreationDate": i.creation_date,
        "Enabled": i.state == super::KeyState::Enabled,
        "Description": i.description,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": i.state.as_str(),
        "Origin": i.origin.as_str(),
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": false,
    });
    if let Some(d) = i.deletion_date {
        m["DeletionDate"] = json!(d);
    }
    if let Some(w) = i.pending_window_days {
        m["PendingDeletionWindowInDays"] = json!(w);
    }
    if i.origin == Origin::External {
        m["ExpirationModel"] = json!("KEY_MATERIAL_DOES_NOT_EXPIRE");
    }
    m
}

/// Runs one AWS KMS operation. An empty object means "no output" (the AWS
/// CLI prints nothing for those).
pub fn handle(kms: &LocalKms, caller: &Caller, operation: &str, request: &Value) -> Result<Value> {
    let empty = Map::new();
    let req = Request(match request {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => {
            return Err(KmsError::Validation(
                "The request body must be a JSON object".into(),
            ));
        }
    });
    let b64 = |bytes: &[u8]| Value::String(B64.encode(bytes));
    Ok(match operation {
        "CreateKey" => {
            let origin = match req.opt_str("Origin")? {
                None | Some("AWS_KMS") => Origin::AwsKms,
                Some("EXTERNAL") => Origin::External,
                Some(other) => {
                    return Err(KmsError::UnsupportedOperation(format!(
                        "Origin {other} is not supported: use AWS_KMS or EXTERNAL"
                    )));
                }
            };
            let key_spec = req
                .opt_str("KeySpec")?
                .or(req.opt_str("CustomerMasterKeySpec")?)
                .unwrap_or("SYMMETRIC_DEFAULT");
            let info = kms.create_key(
                caller,
                CreateKeyInput {
                    description: req.opt_str("Description")?.unwrap_or("").to_string(),
                    origin,
                    key_usage: req
                        .opt_str("KeyUsage")?
                        .unwrap_or("ENCRYPT_DECRYPT")
                        .to_string(),
                    key_spec: key_spec.to_string(),
                    tags: req.tags()?,
                    policy: req.opt_str("Policy")?.map(str::to_string),
                    bypass_policy_lockout_safety_check: req
                        .bool("BypassPolicyLockoutSafetyCheck")?,
                },
            )?;
            json!({ "KeyMetadata": metadata(&info) })
        }
        "DescribeKey" => {
            json!({ "KeyMetadata": metadata(&kms.describe_key(caller, req.str("KeyId")?)?) })
        }
        "ListKeys" => {
            let keys: Vec<Value> = kms
                .list_keys(caller)?
                .into_iter()
                .map(|(id, arn)| json!({"KeyId": id.to_string(), "KeyArn": arn}))
                .collect();
            json!({ "Keys": keys, "Truncated": false })
        }
        "CreateAlias" => {
            kms.create_alias(caller, req.str("AliasName")?, req.str("TargetKeyId")?)?;
            json!({})
        }
        "UpdateAlias" => {
            kms.update_alias(caller, req.str("AliasName")?, req.str("TargetKeyId")?)?;
            json!({})
        }
        "DeleteAlias" => {
            kms.delete_alias(caller, req.str("AliasName")?)?;
            json!({})
        }
        "ListAliases" => {
            let aliases: Vec<Value> = kms
                .list_aliases(caller, req.opt_str("KeyId")?)?
                .into_iter()
                .map(|a| {
                    json!({
                        "AliasName": a.name,
                        "AliasArn": a.arn,
                        "TargetKeyId": a.target.to_string(),
                        "CreationDate": a.created,
                        "LastUpdatedDate": a.updated,
                    })
                })
                .collect();
            json!({ "Aliases": aliases, "Truncated": false })
        }
        "EnableKey" => {
            kms.enable_key(caller, req.str("KeyId")?)?;
            json!({})
        }
        "DisableKey" => {
            kms.disable_key(caller, req.str("KeyId")?)?;
            json!({})
        }
        "ScheduleKeyDeletion" => {
            let (arn, date, days) = kms.schedule_key_deletion(
                caller,
                req.str("KeyId")?,
                req.opt_u32("PendingWindowInDays")?,
            )?;
            json!({"KeyId": arn, "DeletionDate": date, "KeyState": "PendingDeletion", "PendingWindowInDays": days})
        }
        "CancelKeyDeletion" => {
            json!({"KeyId": kms.cancel_key_deletion(caller, req.str("KeyId")?)?})
        }
        "EnableKeyRotation" => {
            kms.enable_key_rotation(
                caller,
                req.str("KeyId")?,
                req.opt_u32("RotationPeriodInDays")?,
            )?;
            json!({})
        }
        "DisableKeyRotation" => {
            kms.disable_key_rotation(caller, req.str("KeyId")?)?;
            json!({})
        }
        "GetKeyRotationStatus" => {
            let s = kms.get_key_rotation_status(caller, req.str("KeyId")?)?;
            let mut out = json!({"KeyRotationEnabled": s.enabled, "KeyId": s.arn});
            if let Some(p) = s.period_days {
                out["RotationPeriodInDays"] = json!(p);
            }
            if let Some(n) = s.next_rotation {
                out["NextRotationDate"] = json!(n);
            }
            out
        }
        "RotateKeyOnDemand" => {
            let (arn, _) = kms.rotate_key_on_demand(caller, req.str("KeyId")?)?;
            json!({"KeyId": arn})
        }
        "ListKeyRotations" => {
            let rotations: Vec<Value> = kms
                .list_key_rotations(caller, req.str("KeyId")?)?
                .into_iter()
                .map(|r| json!({"KeyId": r.arn, "RotationDate": r.date, "RotationType": r.kind.as_str()}))
                .collect();
            json!({"Rotations": rotations, "Truncated": false})
        }
        "Encrypt" => {
            req.symmetric_algorithm("EncryptionAlgorithm")?;
            let w = kms.encrypt(
                caller,
                req.str("KeyId")?,
                &req.blob("Plaintext")?,
                &req.ctx("EncryptionContext")?,
            )?;
            json!({"CiphertextBlob": b64(&w.ciphertext_blob), "KeyId": w.key_arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
        }
        "Decrypt" => {
            req.symmetric_algorithm("EncryptionAlgorithm")?;
            let d = kms.decrypt(
                caller,
                &req.blob("CiphertextBlob")?,
                &req.ctx("EncryptionContext")?,
                req.opt_str("KeyId")?,
            )?;
            json!({"KeyId": d.key_arn, "Plaintext": b64(&d.plaintext), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
        }
        "ReEncrypt" => {
            req.symmetric_algorithm("SourceEncryptionAlgorithm")?;
            req.symmetric_algorithm("DestinationEncryptionAlgorithm")?;
            let (from, to) = kms.re_encrypt(
                caller,
                &req.blob("CiphertextBlob")?,
                &req.ctx("SourceEncryptionContext")?,
                req.opt_str("SourceKeyId")?,
                req.str("DestinationKeyId")?,
                &req.ctx("DestinationEncryptionContext")?,
            )?;
            json!({
                "CiphertextBlob": b64(&to.ciphertext_blob),
                "SourceKeyId": from.key_arn,
                "KeyId": to.key_arn,
                "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            })
        }
        "GenerateDataKey" | "GenerateDataKeyWithoutPlaintext" => {
            let with_plaintext = operation == "GenerateDataKey";
            let n = match (req.opt_str("KeySpec")?, req.opt_u32("NumberOfBytes")?) {
                (Some(_), Some(_)) => {
                    return Err(KmsError::Validation(
                        "Specify either KeySpec or NumberOfBytes, not both".into(),
                    ));
                }
                (Some("AES_256"), None) => 32,
                (Some("AES_128"), None) => 16,
                (Some(other), None) => {
                    return Err(KmsError::Validation(format!(
                        "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
                    )));
                }
                (None, Some(n)) => n as usize,
                (None, None) => {
                    return Err(KmsError::Validation(
                        "Please specify either number of bytes or key spec.".into(),
                    ));
                }
            };
            let pair = kms.generate_data_key(
                caller,
                req.str("KeyId")?,
                n,
                &req.ctx("EncryptionContext")?,
                with_plaintext,
            )?;
            let mut out = json!({"CiphertextBlob": b64(&pair.ciphertext_blob)});
            if with_plaintext {
                out["Plaintext"] = b64(&pair.plaintext);
            }
            out["KeyId"] = json!(pair.key_arn);
            out
        }
        "GetKeyPolicy" => {
            let policy =
                kms.get_key_policy(caller, req.str("KeyId")?, req.opt_str("PolicyName")?)?;
            json!({"Policy": policy, "PolicyName": "default"})
        }
        "PutKeyPolicy" => {
            kms.put_key_policy(
                caller,
                req.str("KeyId")?,
                req.opt_str("PolicyName")?,
                req.str("Policy")?,
                req.bool("BypassPolicyLockoutSafetyCheck")?,
            )?;
            json!({})
        }
        "GetParametersForImport" => {
            let p = kms.get_parameters_for_import(
                caller,
                req.str("KeyId")?,
                req.str("WrappingAlgorithm")?,
                req.str("WrappingKeySpec")?,
            )?;
            json!({
                "KeyId": p.arn,
                "ImportToken": b64(&p.import_token),
                "PublicKey": b64(&p.public_key),
                "ParametersValidTo": p.valid_to,
            })
        }
        "ImportKeyMaterial" => {
            kms.import_key_material(
                caller,
                req.str("KeyId")?,
                &req.blob("ImportToken")?,
                &req.blob("EncryptedKeyMaterial")?,
                req.opt_str("ExpirationModel")?,
            )?;
            json!({})
        }
        other => {
            return Err(KmsError::UnsupportedOperation(format!(
                "Operation {other} is not supported by kmsfs"
            )));
        }
    })
}
