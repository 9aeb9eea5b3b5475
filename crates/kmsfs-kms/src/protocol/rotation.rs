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
key_request!(ListKeyRotationsRequest => ListKeyRotations, ListKeyRotationsResponse);

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
    #[serde(default)]
    pub truncated: bool,
}
