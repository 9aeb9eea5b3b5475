//! The AWS KMS JSON 1.1 protocol as types, written once and used by every
//! side: the dispatcher over [`LocalKms`](crate::local::LocalKms)
//! (`api.rs`), the HTTP server, the HTTP client ([`KmsClient::send`]), the
//! CLI that builds requests from its flags, and the error mapping of the AWS
//! SDK backend.
//!
//! - [`Operation`]: every operation, with its AWS name, IAM action, effect
//!   on the store and default-policy role;
//! - one request and one response struct per operation, grouped by family
//!   (keys, aliases, rotation, crypto, key policy, import, tags, grants,
//!   custom key stores, the smaller key operations), their members
//!   named as AWS names them (serde `PascalCase`), optional members as
//!   `Option` and left out when absent; [`KmsRequest`] ties each request to
//!   its operation and response;
//! - [`values`]: base64 blobs, zeroized plaintexts, epoch-second timestamps;
//! - [`exception`]: [`KmsError`](crate::KmsError) ↔ AWS exception names;
//! - `wire`: request bodies in, with AWS's messages for malformed ones.
//!
//! [`KmsClient::send`]: crate::remote::KmsClient::send

mod aliases;
mod asymmetric;
pub(crate) mod crypto;
mod custom_key_stores;
pub mod exception;
mod grants;
mod import;
mod key_admin;
mod key_policy;
mod keys;
mod multi_region;
pub(crate) mod operation;
mod rotation;
mod tags;
mod values;
pub(crate) mod wire;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use aliases::*;
pub use asymmetric::*;
pub use crypto::*;
pub use custom_key_stores::*;
pub use grants::*;
pub use import::*;
pub use key_admin::*;
pub use key_policy::*;
pub use keys::*;
pub use multi_region::*;
pub use operation::{Effect, Holder, Operation};
pub use rotation::*;
pub use tags::*;
pub use values::{Blob, EpochSeconds, Plaintext, Tag};

/// Every request is a POST with this content type …
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// … and an `X-Amz-Target` of this prefix and the operation name.
pub const TARGET_PREFIX: &str = "TrentService.";

/// A request of one operation: what it is called and what it answers.
pub trait KmsRequest: Serialize + DeserializeOwned {
    const OPERATION: Operation;
    type Response: Serialize + DeserializeOwned;
}

/// The answer of operations that answer nothing: `{}` on the wire (the AWS
/// CLI prints nothing for it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}
