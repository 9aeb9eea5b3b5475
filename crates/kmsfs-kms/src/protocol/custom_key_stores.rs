//! Custom key stores (CloudHSM and external key stores): CreateCustomKeyStore,
//! DescribeCustomKeyStores, ConnectCustomKeyStore, DisconnectCustomKeyStore,
//! UpdateCustomKeyStore, DeleteCustomKeyStore. kmsfs has none (see
//! docs/KMS.md): the shapes are here so that clients get AWS's answers for
//! a store that does not exist rather than an unknown operation.
//!
//! The secret members of these requests (`KeyStorePassword`,
//! `XksProxyAuthenticationCredential`) are deliberately not declared: they
//! are never needed, and a member that is not read cannot be printed.

use serde::{Deserialize, Serialize};

use super::values::{self, EpochSeconds};
use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateCustomKeyStoreRequest {
    pub custom_key_store_name: String,
    /// AWS_CLOUDHSM (the default) or EXTERNAL_KEY_STORE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_hsm_cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xks_proxy_uri_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xks_proxy_uri_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xks_proxy_connectivity: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateCustomKeyStoreResponse {
    pub custom_key_store_id: String,
}

impl KmsRequest for CreateCustomKeyStoreRequest {
    const OPERATION: Operation = Operation::CreateCustomKeyStore;
    type Response = CreateCustomKeyStoreResponse;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeCustomKeyStoresRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "values::count",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One entry of DescribeCustomKeyStores (kmsfs never sends one; read
/// leniently from other services).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CustomKeyStoresListEntry {
    pub custom_key_store_id: String,
    pub custom_key_store_name: String,
    pub custom_key_store_type: String,
    pub connection_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<EpochSeconds>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeCustomKeyStoresResponse {
    #[serde(default)]
    pub custom_key_stores: Vec<CustomKeyStoresListEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(default)]
    pub truncated: bool,
}

impl KmsRequest for DescribeCustomKeyStoresRequest {
    const OPERATION: Operation = Operation::DescribeCustomKeyStores;
    type Response = DescribeCustomKeyStoresResponse;
}

/// A request naming one custom key store, shared by the operations whose
/// only member (that kmsfs reads) is the store.
macro_rules! store_request {
    ($name:ident => $op:ident) => {
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            pub custom_key_store_id: String,
        }

        impl KmsRequest for $name {
            const OPERATION: Operation = Operation::$op;
            type Response = Empty;
        }
    };
}

store_request!(ConnectCustomKeyStoreRequest => ConnectCustomKeyStore);
store_request!(DisconnectCustomKeyStoreRequest => DisconnectCustomKeyStore);
store_request!(DeleteCustomKeyStoreRequest => DeleteCustomKeyStore);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCustomKeyStoreRequest {
    pub custom_key_store_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_custom_key_store_name: Option<String>,
}

impl KmsRequest for UpdateCustomKeyStoreRequest {
    const OPERATION: Operation = Operation::UpdateCustomKeyStore;
    type Response = Empty;
}
