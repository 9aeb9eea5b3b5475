//! Importing key material into EXTERNAL keys: GetParametersForImport,
//! ImportKeyMaterial.

use serde::{Deserialize, Serialize};

use super::values::{Blob, EpochSeconds};
use super::{Empty, KmsRequest, Operation};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersForImportRequest {
    pub key_id: String,
    /// RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1.
    pub wrapping_algorithm: String,
    /// RSA_2048, RSA_3072 or RSA_4096.
    pub wrapping_key_spec: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersForImportResponse {
    /// The key's ARN.
    pub key_id: String,
    pub import_token: Blob,
    /// DER SubjectPublicKeyInfo of the wrapping key.
    pub public_key: Blob,
    pub parameters_valid_to: EpochSeconds,
}

impl KmsRequest for GetParametersForImportRequest {
    const OPERATION: Operation = Operation::GetParametersForImport;
    type Response = GetParametersForImportResponse;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportKeyMaterialRequest {
    pub key_id: String,
    pub import_token: Blob,
    /// The key material, encrypted to the wrapping key (not secret as is).
    pub encrypted_key_material: Blob,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<String>,
}

impl KmsRequest for ImportKeyMaterialRequest {
    const OPERATION: Operation = Operation::ImportKeyMaterial;
    type Response = Empty;
}
