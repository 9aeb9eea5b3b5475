//! Keys and their lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey,
//! DisableKey, ScheduleKeyDeletion, CancelKeyDeletion, and the KeyMetadata
//! they answer with.

use serde::{Deserialize, Serialize};

use super::values::{self, EpochSeconds, Tag};
use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateKeyRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// AWS_KMS or EXTERNAL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_usage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_spec: Option<String>,
    /// The deprecated name of KeySpec, still sent by old clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_master_key_spec: Option<String>,
    #[serde(
        default,
        deserialize_with = "values::tags",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bypass_policy_lockout_safety_check: bool,
    /// kmsfs has no custom key stores: any value is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    /// A multi-Region primary key (see protocol/multi_region.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_region: Option<bool>,
}

/// A key's metadata, as DescribeKey and CreateKey answer it. The members
/// kmsfs always sends come first, in AWS's order. Read leniently (absent
/// members take their default): other services leave some out for some
/// keys (no EncryptionAlgorithms for HMAC keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    pub key_id: String,
    pub arn: String,
    pub creation_date: EpochSeconds,
    pub enabled: bool,
    pub description: String,
    pub key_usage: String,
    pub key_state: String,
    pub origin: String,
    pub key_manager: String,
    pub customer_master_key_spec: String,
    pub key_spec: String,
    /// Present only where AWS shows them: encryption algorithms for
    /// ENCRYPT_DECRYPT keys, signing for SIGN_VERIFY, MAC for HMAC keys,
    /// key agreement for KEY_AGREEMENT.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub encryption_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signing_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mac_algorithms: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_agreement_algorithms: Vec<String>,
    pub multi_region: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_region_configuration: Option<super::MultiRegionConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<EpochSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_deletion_window_in_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateKeyResponse {
    pub key_metadata: KeyMetadata,
}

impl KmsRequest for CreateKeyRequest {
    const OPERATION: Operation = Operation::CreateKey;
    type Response = CreateKeyResponse;
}

/// A request naming one key (id, ARN, alias name or alias ARN), shared by
/// the operations whose only member is the key.
macro_rules! key_request {
    ($(#[$doc:meta])* $name:ident => $op:ident, $response:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            pub key_id: String,
        }

        impl $name {
            pub fn new(key_id: impl Into<String>) -> $name {
                $name {
                    key_id: key_id.into(),
                }
            }
        }

        impl KmsRequest for $name {
            const OPERATION: Operation = Operation::$op;
            type Response = $response;
        }
    };
}
pub(crate) use key_request;

key_request!(DescribeKeyRequest => DescribeKey, DescribeKeyResponse);
key_request!(EnableKeyRequest => EnableKey, Empty);
key_request!(DisableKeyRequest => DisableKey, Empty);
key_request!(CancelKeyDeletionRequest => CancelKeyDeletion, CancelKeyDeletionResponse);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeKeyResponse {
    pub key_metadata: KeyMetadata,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysRequest {
    #[serde(
        default,
        deserialize_with = "values::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One entry of ListKeys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyListEntry {
    pub key_id: String,
    pub key_arn: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysResponse {
    pub keys: Vec<KeyListEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(default)]
    pub truncated: bool,
}

impl KmsRequest for ListKeysRequest {
    const OPERATION: Operation = Operation::ListKeys;
    type Response = ListKeysResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionRequest {
    pub key_id: String,
    #[serde(
        default,
        deserialize_with = "values::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub pending_window_in_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionResponse {
    /// The key's ARN.
    pub key_id: String,
    /// Absent for a multi-Region primary key with replicas: its date is
    /// known only once the last replica is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<EpochSeconds>,
    pub key_state: String,
    pub pending_window_in_days: u32,
}

impl KmsRequest for ScheduleKeyDeletionRequest {
    const OPERATION: Operation = Operation::ScheduleKeyDeletion;
    type Response = ScheduleKeyDeletionResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelKeyDeletionResponse {
    /// The key's ARN.
    pub key_id: String,
}
