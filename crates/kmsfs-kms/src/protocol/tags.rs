//! Tags: TagResource, UntagResource, ListResourceTags.

use serde::{Deserialize, Serialize};

use super::values::{self, Tag};
use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    /// Key id or key ARN (not an alias).
    pub key_id: String,
    #[serde(deserialize_with = "values::required_tags")]
    pub tags: Vec<Tag>,
}

impl KmsRequest for TagResourceRequest {
    const OPERATION: Operation = Operation::TagResource;
    type Response = Empty;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceRequest {
    pub key_id: String,
    pub tag_keys: Vec<String>,
}

impl KmsRequest for UntagResourceRequest {
    const OPERATION: Operation = Operation::UntagResource;
    type Response = Empty;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResourceTagsRequest {
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
pub struct ListResourceTagsResponse {
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(default)]
    pub truncated: bool,
}

impl KmsRequest for ListResourceTagsRequest {
    const OPERATION: Operation = Operation::ListResourceTags;
    type Response = ListResourceTagsResponse;
}
