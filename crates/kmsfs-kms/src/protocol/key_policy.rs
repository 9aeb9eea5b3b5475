//! Key policies: GetKeyPolicy, PutKeyPolicy.

use serde::{Deserialize, Serialize};

use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyRequest {
    pub key_id: String,
    /// Only `default` exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyResponse {
    pub policy: String,
    pub policy_name: String,
}

impl KmsRequest for GetKeyPolicyRequest {
    const OPERATION: Operation = Operation::GetKeyPolicy;
    type Response = GetKeyPolicyResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutKeyPolicyRequest {
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    pub policy: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bypass_policy_lockout_safety_check: bool,
}

impl KmsRequest for PutKeyPolicyRequest {
    const OPERATION: Operation = Operation::PutKeyPolicy;
    type Response = Empty;
}
