//! The handlers of ReplicateKey and UpdatePrimaryRegion, and the
//! MultiRegionConfiguration of KeyMetadata.

use super::super::local::{MultiRegionInfo, ReplicateKeyInput};
use super::{Handler, key_metadata};
use crate::error::Result;
use crate::local::LocalKms;
use crate::policy::Caller;
use crate::protocol::{
    Empty, MultiRegionConfiguration, MultiRegionKey, ReplicateKeyRequest, ReplicateKeyResponse,
    Tag, UpdatePrimaryRegionRequest,
};

pub(super) fn configuration(i: MultiRegionInfo) -> MultiRegionConfiguration {
    let key = |(arn, region): (String, String)| MultiRegionKey { arn, region };
    MultiRegionConfiguration {
        multi_region_key_type: i.key_type().into(),
        primary_key: key(i.primary_key),
        replica_keys: i.replica_keys.into_iter().map(key).collect(),
    }
}

impl Handler for ReplicateKeyRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ReplicateKeyResponse> {
        let tags = self
            .tags
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect();
        let replica = kms.replicate_key(
            caller,
            &self.key_id,
            ReplicateKeyInput {
                replica_region: self.replica_region,
                policy: self.policy,
                bypass_policy_lockout_safety_check: self.bypass_policy_lockout_safety_check,
                description: self.description,
                tags,
            },
        )?;
        Ok(ReplicateKeyResponse {
            replica_key_metadata: key_metadata(replica.metadata),
            replica_policy: replica.policy,
            replica_tags: replica
                .tags
                .into_iter()
                .map(|(tag_key, tag_value)| Tag { tag_key, tag_value })
                .collect(),
        })
    }
}

impl Handler for UpdatePrimaryRegionRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.update_primary_region(caller, &self.key_id, &self.primary_region)?;
        Ok(Empty {})
    }
}
