//! The AWS KMS protocol over [`LocalKms`]: an operation name (the
//! `X-Amz-Target` without its prefix) and a JSON request in, a JSON
//! response out. Each operation is one [`Handler`] impl: its typed request
//! (see [`protocol`](crate::protocol)) in, one call of `LocalKms`, its typed
//! response out; [`handle`] only finds the operation and converts JSON.
//!
//! The CLI (embedded store) and the server both come through here, so they
//! cannot drift apart.

use serde_json::Value;

use super::error::{KmsError, Result};
use super::local::{CreateKeyInput, KeyInfo, LocalKms, rsa_encryption};
use super::model::{KeyState, Origin};
use super::paging::{Limits, PageRequest};
use super::policy::Caller;
use super::protocol::crypto::SYMMETRIC_DEFAULT;
use super::protocol::wire;
use super::protocol::*;

pub use super::protocol::{CONTENT_TYPE, TARGET_PREFIX};

mod asymmetric;
mod grants;
// The handlers of the operations added for kmsfs issue 12.
mod key_admin;
mod multi_region;

/// The operation named `operation`, once `request` is known to be a JSON
/// object (or empty): what every request must be before it is read.
fn checked_operation(operation: &str, request: &Value) -> Result<Operation> {
    if !matches!(request, Value::Object(_) | Value::Null) {
        return Err(KmsError::Validation(
            "The request body must be a JSON object".into(),
        ));
    }
    let Some(operation) = Operation::from_name(operation) else {
        return Err(KmsError::UnsupportedOperation(format!(
            "Operation {operation} is not supported by kmsfs"
        )));
    };
    check_grant_tokens(request)?;
    Ok(operation)
}

/// The `GrantTokens` member, of whichever operation has it: checked here,
/// once, and then ignored, because a grant is in force as soon as
/// CreateGrant returns (grants.rs says why).
fn check_grant_tokens(request: &Value) -> Result<()> {
    let Some(tokens) = request.get("GrantTokens") else {
        return Ok(());
    };
    let tokens: Vec<String> = serde_json::from_value(tokens.clone()).map_err(|_| {
        KmsError::Validation(
            "1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must be a list of strings".into(),
        )
    })?;
    super::grants::validate_tokens(&tokens)
}

/// Runs one AWS KMS operation. An empty object means "no output" (the AWS
/// CLI prints nothing for those).
pub fn handle(kms: &LocalKms, caller: &Caller, operation: &str, request: &Value) -> Result<Value> {
    let operation = checked_operation(operation, request)?;
    dispatch(
        Dispatch {
            run: Some((kms, caller)),
            request,
        },
        operation,
    )
}

/// Reads `request` as the typed request of `operation` without running it,
/// as [`handle`] does first, and returns that request re-encoded as JSON.
/// For the fuzz targets (`fuzz/`); not part of the API.
#[doc(hidden)]
pub fn parse_request(operation: &str, request: &Value) -> Result<Value> {
    let operation = checked_operation(operation, request)?;
    dispatch(Dispatch { run: None, request }, operation)
}

fn dispatch(run: Dispatch, operation: Operation) -> Result<Value> {
    match operation {
        Operation::CreateKey => run.with::<CreateKeyRequest>(),
        Operation::DescribeKey => run.with::<DescribeKeyRequest>(),
        Operation::ListKeys => run.with::<ListKeysRequest>(),
        Operation::CreateAlias => run.with::<CreateAliasRequest>(),
        Operation::UpdateAlias => run.with::<UpdateAliasRequest>(),
        Operation::DeleteAlias => run.with::<DeleteAliasRequest>(),
        Operation::ListAliases => run.with::<ListAliasesRequest>(),
        Operation::EnableKey => run.with::<EnableKeyRequest>(),
        Operation::DisableKey => run.with::<DisableKeyRequest>(),
        Operation::ScheduleKeyDeletion => run.with::<ScheduleKeyDeletionRequest>(),
        Operation::CancelKeyDeletion => run.with::<CancelKeyDeletionRequest>(),
        Operation::EnableKeyRotation => run.with::<EnableKeyRotationRequest>(),
        Operation::DisableKeyRotation => run.with::<DisableKeyRotationRequest>(),
        Operation::GetKeyRotationStatus => run.with::<GetKeyRotationStatusRequest>(),
        Operation::RotateKeyOnDemand => run.with::<RotateKeyOnDemandRequest>(),
        Operation::ListKeyRotations => run.with::<ListKeyRotationsRequest>(),
        Operation::Encrypt => run.with::<EncryptRequest>(),
        Operation::Decrypt => run.with::<DecryptRequest>(),
        Operation::ReEncrypt => run.with::<ReEncryptRequest>(),
        Operation::GenerateDataKey => run.with::<GenerateDataKeyRequest>(),
        Operation::GenerateDataKeyWithoutPlaintext => {
            run.with::<GenerateDataKeyWithoutPlaintextRequest>()
        }
        Operation::GetKeyPolicy => run.with::<GetKeyPolicyRequest>(),
        Operation::PutKeyPolicy => run.with::<PutKeyPolicyRequest>(),
        Operation::GetParametersForImport => run.with::<GetParametersForImportRequest>(),
        Operation::ImportKeyMaterial => run.with::<ImportKeyMaterialRequest>(),
        Operation::GetPublicKey => run.with::<GetPublicKeyRequest>(),
        Operation::Sign => run.with::<SignRequest>(),
        Operation::Verify => run.with::<VerifyRequest>(),
        Operation::GenerateMac => run.with::<GenerateMacRequest>(),
        Operation::VerifyMac => run.with::<VerifyMacRequest>(),
        Operation::GenerateDataKeyPair => run.with::<GenerateDataKeyPairRequest>(),
        Operation::GenerateDataKeyPairWithoutPlaintext => {
            run.with::<GenerateDataKeyPairWithoutPlaintextRequest>()
        }
        Operation::DeriveSharedSecret => run.with::<DeriveSharedSecretRequest>(),
        Operation::DeleteImportedKeyMaterial => run.with::<DeleteImportedKeyMaterialRequest>(),
        Operation::UpdateKeyDescription => run.with::<UpdateKeyDescriptionRequest>(),
        Operation::ListKeyPolicies => run.with::<ListKeyPoliciesRequest>(),
        Operation::GetKeyLastUsage => run.with::<GetKeyLastUsageRequest>(),
        Operation::TagResource => run.with::<TagResourceRequest>(),
        Operation::UntagResource => run.with::<UntagResourceRequest>(),
        Operation::ListResourceTags => run.with::<ListResourceTagsRequest>(),
        Operation::GenerateRandom => run.with::<GenerateRandomRequest>(),
        Operation::CreateCustomKeyStore => run.with::<CreateCustomKeyStoreRequest>(),
        Operation::DescribeCustomKeyStores => run.with::<DescribeCustomKeyStoresRequest>(),
        Operation::ConnectCustomKeyStore => run.with::<ConnectCustomKeyStoreRequest>(),
        Operation::DisconnectCustomKeyStore => run.with::<DisconnectCustomKeyStoreRequest>(),
        Operation::UpdateCustomKeyStore => run.with::<UpdateCustomKeyStoreRequest>(),
        Operation::DeleteCustomKeyStore => run.with::<DeleteCustomKeyStoreRequest>(),
        Operation::CreateGrant => run.with::<CreateGrantRequest>(),
        Operation::ListGrants => run.with::<ListGrantsRequest>(),
        Operation::ListRetirableGrants => run.with::<ListRetirableGrantsRequest>(),
        Operation::RetireGrant => run.with::<RetireGrantRequest>(),
        Operation::RevokeGrant => run.with::<RevokeGrantRequest>(),
        Operation::ReplicateKey => run.with::<ReplicateKeyRequest>(),
        Operation::UpdatePrimaryRegion => run.with::<UpdatePrimaryRegionRequest>(),
    }
}

/// One operation's work: its request, carried out on the embedded store.
trait Handler: KmsRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Self::Response>;
}

struct Dispatch<'a> {
    /// `None`: only read the request ([`parse_request`]).
    run: Option<(&'a LocalKms, &'a Caller)>,
    request: &'a Value,
}

impl Dispatch<'_> {
    /// JSON → typed request → handler → typed response → JSON.
    fn with<R: Handler>(self) -> Result<Value> {
        let request: R = wire::from_body(self.request)?;
        let encode = |what: &str, value: serde_json::Result<Value>| {
            value.map_err(|e| {
                KmsError::Internal(format!("cannot encode the {} {what}: {e}", R::OPERATION))
            })
        };
        let Some((kms, caller)) = self.run else {
            return encode("request", serde_json::to_value(request));
        };
        let response = request.handle(kms, caller)?;
        encode("response", serde_json::to_value(response))
    }
}

/// DryRun, in one place for every operation whose request has the member
/// (Encrypt, Decrypt, ReEncrypt, GenerateDataKey, GenerateDataKeyWithout-
/// Plaintext; and any added later): `call` is the operation's one call of
/// `LocalKms`. With `dry_run` set, it runs under [`LocalKms::dry_run`]: every
/// check still refuses with its own exception (AccessDeniedException,
/// DisabledException, ValidationException, …), and a call that would have
/// succeeded answers DryRunOperationException, changing nothing.
pub(crate) fn dry_run_ok<T>(
    kms: &LocalKms,
    dry_run: bool,
    call: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if dry_run { kms.dry_run(call) } else { call() }
}

/// Refuses any encryption algorithm but the symmetric keys' one.
fn require_symmetric(algorithm: Option<&str>) -> Result<()> {
    match algorithm {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(other) => Err(KmsError::InvalidKeyUsage(format!(
            "{other} is not a valid encryption algorithm for a symmetric key; use SYMMETRIC_DEFAULT"
        ))),
    }
}

fn key_metadata(i: KeyInfo) -> KeyMetadata {
    KeyMetadata {
        aws_account_id: i.account,
        key_id: i.key_id.to_string(),
        arn: i.arn,
        creation_date: i.creation_date.into(),
        enabled: i.state == KeyState::Enabled,
        description: i.description,
        key_usage: i.key_usage.as_str().into(),
        key_state: i.state.as_str().into(),
        origin: i.origin.as_str().into(),
        key_manager: "CUSTOMER".into(),
        customer_master_key_spec: i.key_spec.as_str().into(),
        key_spec: i.key_spec.as_str().into(),
        encryption_algorithms: asymmetric::encryption_algorithms(i.key_spec, i.key_usage),
        signing_algorithms: asymmetric::signing_algorithms(i.key_spec, i.key_usage),
        mac_algorithms: asymmetric::mac_algorithms(i.key_spec),
        key_agreement_algorithms: asymmetric::key_agreement_algorithms(i.key_usage),
        multi_region: i.multi_region.is_some(),
        multi_region_configuration: i.multi_region.map(multi_region::configuration),
        deletion_date: i.deletion_date.map(EpochSeconds),
        pending_deletion_window_in_days: i.pending_window_days,
        expiration_model: (i.origin == Origin::External)
            .then(|| "KEY_MATERIAL_DOES_NOT_EXPIRE".into()),
    }
}

impl Handler for CreateKeyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<CreateKeyResponse> {
        if let Some(store) = self.custom_key_store_id.as_deref() {
            return Err(super::local::custom_key_store_not_found(store));
        }
        let origin = match self.origin.as_deref() {
            None | Some("AWS_KMS") => Origin::AwsKms,
            Some("EXTERNAL") => Origin::External,
            // Keys of a custom key store: kmsfs has none.
            Some(store @ ("AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE")) => {
                return Err(KmsError::CustomKeyStoreNotFound(format!(
                    "Origin {store} needs a custom key store, and kmsfs has none"
                )));
            }
            Some(other) => {
                return Err(KmsError::UnsupportedOperation(format!(
                    "Origin {other} is not supported: use AWS_KMS or EXTERNAL"
                )));
            }
        };
        let tags: Vec<(String, String)> = self
            .tags
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect();
        super::local::validate_tags(&tags)?;
        let info = kms.create_key(
            caller,
            CreateKeyInput {
                description: self.description.unwrap_or_default(),
                origin,
                // Empty: absent, which only symmetric keys may leave out.
                key_usage: self.key_usage.unwrap_or_default(),
                key_spec: self
                    .key_spec
                    .or(self.customer_master_key_spec)
                    .unwrap_or_else(|| SYMMETRIC_DEFAULT.into()),
                tags,
                policy: self.policy,
                bypass_policy_lockout_safety_check: self.bypass_policy_lockout_safety_check,
                multi_region: self.multi_region.unwrap_or(false),
            },
        )?;
        Ok(CreateKeyResponse {
            key_metadata: key_metadata(info),
        })
    }
}

impl Handler for DescribeKeyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<DescribeKeyResponse> {
        Ok(DescribeKeyResponse {
            key_metadata: key_metadata(kms.describe_key(caller, &self.key_id)?),
        })
    }
}

impl Handler for ListKeysRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ListKeysResponse> {
        let paging = PageRequest::new(
            Operation::ListKeys,
            self.limit,
            self.marker.as_deref(),
            Limits::STANDARD,
        )?;
        let page = paging.page(kms.list_keys(caller)?, |(id, _)| id.to_string());
        let truncated = page.truncated();
        let keys = page
            .items
            .into_iter()
            .map(|(id, arn)| KeyListEntry {
                key_id: id.to_string(),
                key_arn: arn,
            })
            .collect();
        Ok(ListKeysResponse {
            keys,
            next_marker: page.next_marker,
            truncated,
        })
    }
}

impl Handler for CreateAliasRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.create_alias(caller, &self.alias_name, &self.target_key_id)?;
        Ok(Empty {})
    }
}

impl Handler for UpdateAliasRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.update_alias(caller, &self.alias_name, &self.target_key_id)?;
        Ok(Empty {})
    }
}

impl Handler for DeleteAliasRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.delete_alias(caller, &self.alias_name)?;
        Ok(Empty {})
    }
}

impl Handler for ListAliasesRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ListAliasesResponse> {
        let paging = PageRequest::new(
            Operation::ListAliases,
            self.limit,
            self.marker.as_deref(),
            Limits::ALIASES,
        )?;
        let page = paging.page(kms.list_aliases(caller, self.key_id.as_deref())?, |a| {
            a.name.clone()
        });
        let truncated = page.truncated();
        let aliases = page
            .items
            .into_iter()
            .map(|a| AliasListEntry {
                alias_name: a.name,
                alias_arn: a.arn,
                target_key_id: a.target.to_string(),
                creation_date: a.created.into(),
                last_updated_date: a.updated.into(),
            })
            .collect();
        Ok(ListAliasesResponse {
            aliases,
            next_marker: page.next_marker,
            truncated,
        })
    }
}

impl Handler for EnableKeyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.enable_key(caller, &self.key_id)?;
        Ok(Empty {})
    }
}

impl Handler for DisableKeyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.disable_key(caller, &self.key_id)?;
        Ok(Empty {})
    }
}

impl Handler for ScheduleKeyDeletionRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ScheduleKeyDeletionResponse> {
        let (arn, date, days) =
            kms.schedule_key_deletion(caller, &self.key_id, self.pending_window_in_days)?;
        let state = match date {
            Some(_) => KeyState::PendingDeletion,
            None => KeyState::PendingReplicaDeletion,
        };
        Ok(ScheduleKeyDeletionResponse {
            key_id: arn,
            deletion_date: date.map(EpochSeconds),
            key_state: state.as_str().into(),
            pending_window_in_days: days,
        })
    }
}

impl Handler for CancelKeyDeletionRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<CancelKeyDeletionResponse> {
        Ok(CancelKeyDeletionResponse {
            key_id: kms.cancel_key_deletion(caller, &self.key_id)?,
        })
    }
}

impl Handler for EnableKeyRotationRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.enable_key_rotation(caller, &self.key_id, self.rotation_period_in_days)?;
        Ok(Empty {})
    }
}

impl Handler for DisableKeyRotationRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.disable_key_rotation(caller, &self.key_id)?;
        Ok(Empty {})
    }
}

impl Handler for GetKeyRotationStatusRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GetKeyRotationStatusResponse> {
        let s = kms.get_key_rotation_status(caller, &self.key_id)?;
        Ok(GetKeyRotationStatusResponse {
            key_rotation_enabled: s.enabled,
            key_id: s.arn,
            rotation_period_in_days: s.period_days,
            next_rotation_date: s.next_rotation.map(EpochSeconds),
        })
    }
}

impl Handler for RotateKeyOnDemandRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<RotateKeyOnDemandResponse> {
        let (arn, _) = kms.rotate_key_on_demand(caller, &self.key_id)?;
        Ok(RotateKeyOnDemandResponse { key_id: arn })
    }
}

impl Handler for ListKeyRotationsRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ListKeyRotationsResponse> {
        match self.include_key_material.as_deref() {
            None | Some("ROTATIONS_ONLY" | "ALL_KEY_MATERIAL") => {}
            Some(other) => {
                return Err(KmsError::Validation(format!(
                    "1 validation error detected: Value '{other}' at 'includeKeyMaterial' failed to satisfy constraint: Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]"
                )));
            }
        }
        let paging = PageRequest::new(
            Operation::ListKeyRotations,
            self.limit,
            self.marker.as_deref(),
            Limits::STANDARD,
        )?;
        // Zero-padded so that the text order is the version order.
        let page = paging.page(kms.list_key_rotations(caller, &self.key_id)?, |r| {
            format!("{:010}", r.version)
        });
        let truncated = page.truncated();
        let rotations = page
            .items
            .into_iter()
            .map(|r| RotationListEntry {
                key_id: r.arn,
                rotation_date: r.date.into(),
                rotation_type: r.kind.as_str().into(),
            })
            .collect();
        Ok(ListKeyRotationsResponse {
            rotations,
            next_marker: page.next_marker,
            truncated,
        })
    }
}

impl Handler for EncryptRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<EncryptResponse> {
        if let Some(rsa) = rsa_encryption(self.encryption_algorithm.as_deref()) {
            return asymmetric::encrypt(self, kms, caller, rsa);
        }
        require_symmetric(self.encryption_algorithm.as_deref())?;
        let w = dry_run_ok(kms, self.dry_run, || {
            kms.encrypt(
                caller,
                &self.key_id,
                &self.plaintext.0,
                &self.encryption_context,
            )
        })?;
        Ok(EncryptResponse {
            ciphertext_blob: w.ciphertext_blob.into(),
            key_id: w.key_arn,
            encryption_algorithm: SYMMETRIC_DEFAULT.into(),
        })
    }
}

impl Handler for DecryptRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<DecryptResponse> {
        if let Some(rsa) = rsa_encryption(self.encryption_algorithm.as_deref()) {
            return asymmetric::decrypt(self, kms, caller, rsa);
        }
        require_symmetric(self.encryption_algorithm.as_deref())?;
        let d = dry_run_ok(kms, self.dry_run, || {
            kms.decrypt(
                caller,
                &self.ciphertext_blob.0,
                &self.encryption_context,
                self.key_id.as_deref(),
            )
        })?;
        Ok(DecryptResponse {
            key_id: d.key_arn,
            plaintext: d.plaintext.into(),
            encryption_algorithm: SYMMETRIC_DEFAULT.into(),
        })
    }
}

impl Handler for ReEncryptRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ReEncryptResponse> {
        if rsa_encryption(self.source_encryption_algorithm.as_deref()).is_some()
            || rsa_encryption(self.destination_encryption_algorithm.as_deref()).is_some()
        {
            return asymmetric::re_encrypt(self, kms, caller);
        }
        require_symmetric(self.source_encryption_algorithm.as_deref())?;
        require_symmetric(self.destination_encryption_algorithm.as_deref())?;
        let (from, to) = dry_run_ok(kms, self.dry_run, || {
            kms.re_encrypt(
                caller,
                &self.ciphertext_blob.0,
                &self.source_encryption_context,
                self.source_key_id.as_deref(),
                &self.destination_key_id,
                &self.destination_encryption_context,
            )
        })?;
        Ok(ReEncryptResponse {
            ciphertext_blob: to.ciphertext_blob.into(),
            source_key_id: from.key_arn,
            key_id: to.key_arn,
            source_encryption_algorithm: SYMMETRIC_DEFAULT.into(),
            destination_encryption_algorithm: SYMMETRIC_DEFAULT.into(),
        })
    }
}

/// The data key length of a KeySpec or NumberOfBytes (exactly one of them).
fn data_key_length(key_spec: Option<&str>, number_of_bytes: Option<u32>) -> Result<usize> {
    match (key_spec, number_of_bytes) {
        (Some(_), Some(_)) => Err(KmsError::Validation(
            "Specify either KeySpec or NumberOfBytes, not both".into(),
        )),
        (Some("AES_256"), None) => Ok(32),
        (Some("AES_128"), None) => Ok(16),
        (Some(other), None) => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
        ))),
        (None, Some(n)) => Ok(n as usize),
        (None, None) => Err(KmsError::Validation(
            "Please specify either number of bytes or key spec.".into(),
        )),
    }
}

impl Handler for GenerateDataKeyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GenerateDataKeyResponse> {
        let length = data_key_length(self.key_spec.as_deref(), self.number_of_bytes)?;
        let pair = dry_run_ok(kms, self.dry_run, || {
            kms.generate_data_key(caller, &self.key_id, length, &self.encryption_context, true)
        })?;
        Ok(GenerateDataKeyResponse {
            ciphertext_blob: pair.ciphertext_blob.into(),
            plaintext: pair.plaintext.into(),
            key_id: pair.key_arn,
        })
    }
}

impl Handler for GenerateDataKeyWithoutPlaintextRequest {
    fn handle(
        self,
        kms: &LocalKms,
        caller: &Caller,
    ) -> Result<GenerateDataKeyWithoutPlaintextResponse> {
        let length = data_key_length(self.key_spec.as_deref(), self.number_of_bytes)?;
        let pair = dry_run_ok(kms, self.dry_run, || {
            kms.generate_data_key(
                caller,
                &self.key_id,
                length,
                &self.encryption_context,
                false,
            )
        })?;
        Ok(GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: pair.ciphertext_blob.into(),
            key_id: pair.key_arn,
        })
    }
}

impl Handler for GetKeyPolicyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GetKeyPolicyResponse> {
        let policy = kms.get_key_policy(caller, &self.key_id, self.policy_name.as_deref())?;
        Ok(GetKeyPolicyResponse {
            policy,
            policy_name: "default".into(),
        })
    }
}

impl Handler for PutKeyPolicyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.put_key_policy(
            caller,
            &self.key_id,
            self.policy_name.as_deref(),
            &self.policy,
            self.bypass_policy_lockout_safety_check,
        )?;
        Ok(Empty {})
    }
}

impl Handler for GetParametersForImportRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GetParametersForImportResponse> {
        let p = kms.get_parameters_for_import(
            caller,
            &self.key_id,
            &self.wrapping_algorithm,
            &self.wrapping_key_spec,
        )?;
        Ok(GetParametersForImportResponse {
            key_id: p.arn,
            import_token: p.import_token.into(),
            public_key: p.public_key.into(),
            parameters_valid_to: p.valid_to.into(),
        })
    }
}

impl Handler for ImportKeyMaterialRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.import_key_material(
            caller,
            &self.key_id,
            &self.import_token.0,
            &self.encrypted_key_material.0,
            self.expiration_model.as_deref(),
        )?;
        Ok(Empty {})
    }
}
