//! Key rotation: EnableKeyRotation, DisableKeyRotation,
//! GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations.

use serde::{Deserialize, Serialize};

use super::keys::key_request;
use super::values::{self, EpochSeconds};
use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnableKeyRotationRequest {
    pub key_id: String,
    #[serde(
        default,
        deserialize_with = "values::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub rotation_period_in_days: Option<u32>,
}

impl KmsRequest for EnableKeyRotationRequest {
    const OPERATION: Operation = Operation::EnableKeyRotation;
    type Response = Empty;
}

key_request!(DisableKeyRotationRequest => DisableKeyRotation, Empty);
key_request!(GetKeyRotationStatusRequest => GetKeyRotationStatus, GetKeyRotationStatusResponse);
key_request!(RotateKeyOnDemandRequest => RotateKeyOnDemand, RotateKeyOnDemandResponse);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsRequest {
    pub key_id: String,
    /// ALL_KEY_MATERIAL or ROTATIONS_ONLY (the default); the same for
    /// kmsfs, whose keys with rotations have no imported material.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_key_material: Option<String>,
    #[serde(
        default,
        deserialize_with = "values::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

impl ListKeyRotationsRequest {
    pub fn new(key_id: impl Into<String>) -> ListKeyRotationsRequest {
        ListKeyRotationsRequest {
            key_id: key_id.into(),
            include_key_material: None,
            limit: None,
            marker: None,
        }
    }
}

impl KmsRequest for ListKeyRotationsRequest {
    const OPERATION: Operation = Operation::ListKeyRotations;
    type Response = ListKeyRotationsResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyRotationStatusResponse {
    pub key_rotation_enabled: bool,
    /// The key's ARN.
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period_in_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<EpochSeconds>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateKeyOnDemandResponse {
    /// The key's ARN.
    pub key_id: String,
}

/// One entry of ListKeyRotations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationListEntry {
    /// The key's ARN.
    pub key_id: String,
    pub rotation_date: EpochSeconds,
    /// AUTOMATIC or ON_DEMAND.
    pub rotation_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsResponse {
    pub rotations: Vec<RotationListEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(default)]
    pub truncated: bool,
}
