//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use serde::{Deserialize, Serialize};

use super::values::{self, EpochSeconds};
use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAliasRequest {
    pub alias_name: String,
    pub target_key_id: String,
}

impl KmsRequest for CreateAliasRequest {
    const OPERATION: Operation = Operation::CreateAlias;
    type Response = Empty;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAliasRequest {
    pub alias_name: String,
    pub target_key_id: String,
}

impl KmsRequest for UpdateAliasRequest {
    const OPERATION: Operation = Operation::UpdateAlias;
    type Response = Empty;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteAliasRequest {
    pub alias_name: String,
}

impl KmsRequest for DeleteAliasRequest {
    const OPERATION: Operation = Operation::DeleteAlias;
    type Response = Empty;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesRequest {
    /// Only the aliases of this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "values::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One entry of ListAliases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasListEntry {
    pub alias_name: String,
    pub alias_arn: String,
    pub target_key_id: String,
    pub creation_date: EpochSeconds,
    pub last_updated_date: EpochSeconds,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesResponse {
    pub aliases: Vec<AliasListEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(default)]
    pub truncated: bool,
}

impl KmsRequest for ListAliasesRequest {
    const OPERATION: Operation = Operation::ListAliases;
    type Response = ListAliasesResponse;
}
