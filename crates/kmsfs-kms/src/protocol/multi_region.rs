//! Multi-Region keys: ReplicateKey, UpdatePrimaryRegion, and the
//! MultiRegionConfiguration of KeyMetadata.

use serde::{Deserialize, Serialize};

use super::keys::KeyMetadata;
use super::values::{self, Tag};
use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateKeyRequest {
    /// Key id or key ARN of a multi-Region primary key.
    pub key_id: String,
    pub replica_region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bypass_policy_lockout_safety_check: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        deserialize_with = "values::tags",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateKeyResponse {
    pub replica_key_metadata: KeyMetadata,
    pub replica_policy: String,
    pub replica_tags: Vec<Tag>,
}

impl KmsRequest for ReplicateKeyRequest {
    const OPERATION: Operation = Operation::ReplicateKey;
    type Response = ReplicateKeyResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdatePrimaryRegionRequest {
    pub key_id: String,
    pub primary_region: String,
}

impl KmsRequest for UpdatePrimaryRegionRequest {
    const OPERATION: Operation = Operation::UpdatePrimaryRegion;
    type Response = Empty;
}

/// KeyMetadata's MultiRegionConfiguration (multi-Region keys only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MultiRegionConfiguration {
    /// PRIMARY or REPLICA.
    pub multi_region_key_type: String,
    pub primary_key: MultiRegionKey,
    pub replica_keys: Vec<MultiRegionKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MultiRegionKey {
    pub arn: String,
    pub region: String,
}
