//! The smaller key operations: UpdateKeyDescription, ListKeyPolicies,
//! GetKeyLastUsage, DeleteImportedKeyMaterial, and GenerateRandom (which
//! needs no key).

use serde::{Deserialize, Serialize};

use super::values::{self, EpochSeconds, Plaintext};
use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateKeyDescriptionRequest {
    /// Key id or key ARN (not an alias).
    pub key_id: String,
    pub description: String,
}

impl KmsRequest for UpdateKeyDescriptionRequest {
    const OPERATION: Operation = Operation::UpdateKeyDescription;
    type Response = Empty;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyPoliciesRequest {
    pub key_id: String,
    #[serde(
        default,
        deserialize_with = "values::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyPoliciesResponse {
    #[serde(default)]
    pub policy_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(default)]
    pub truncated: bool,
}

impl KmsRequest for ListKeyPoliciesRequest {
    const OPERATION: Operation = Operation::ListKeyPolicies;
    type Response = ListKeyPoliciesResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyLastUsageRequest {
    pub key_id: String,
}

/// The last successful cryptographic use of a key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KeyLastUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<EpochSeconds>,
    /// kmsfs has no CloudTrail: the id of the audit log line is not kept,
    /// so this is never sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_trail_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyLastUsageResponse {
    /// The key's ARN.
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_last_usage: Option<KeyLastUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_start_date: Option<EpochSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_creation_date: Option<EpochSeconds>,
}

impl KmsRequest for GetKeyLastUsageRequest {
    const OPERATION: Operation = Operation::GetKeyLastUsage;
    type Response = GetKeyLastUsageResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteImportedKeyMaterialRequest {
    pub key_id: String,
    /// Optional in the model: a key has one material in kmsfs, and naming
    /// another one is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeleteImportedKeyMaterialResponse {
    /// The key's ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}

impl KmsRequest for DeleteImportedKeyMaterialRequest {
    const OPERATION: Operation = Operation::DeleteImportedKeyMaterial;
    type Response = DeleteImportedKeyMaterialResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomRequest {
    #[serde(
        default,
        deserialize_with = "values::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_bytes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    /// Nitro Enclaves attestation; only whether it is present matters
    /// (kmsfs refuses it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomResponse {
    pub plaintext: Plaintext,
}

impl KmsRequest for GenerateRandomRequest {
    const OPERATION: Operation = Operation::GenerateRandom;
    type Response = GenerateRandomResponse;
}
