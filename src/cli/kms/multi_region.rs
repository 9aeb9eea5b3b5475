//! `kmsfs kms replicate-key|update-primary-region`: multi-Region keys, with
//! the AWS CLI's flags (create-key --multi-region makes the primary).

use clap::Subcommand;
use serde_json::Value;

use super::{CliError, tags_arg, text_arg, wire};
use kmsfs_kms::protocol::*;

#[derive(Debug, Subcommand)]
pub(crate) enum MultiRegionCommand {
    /// Replicates a multi-Region primary key into another region.
    ReplicateKey {
        /// Key id or ARN of the primary key.
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        replica_region: String,
        /// The replica's key policy (JSON text or file://PATH); else the default.
        #[arg(long)]
        policy: Option<String>,
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
        #[arg(long)]
        description: Option<String>,
        /// TagKey=k,TagValue=v … or a JSON list.
        #[arg(long, num_args = 1..)]
        tags: Vec<String>,
    },
    /// Makes the replica in another region the primary key.
    UpdatePrimaryRegion {
        /// Key id or ARN of the current primary key.
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        primary_region: String,
    },
}

impl MultiRegionCommand {
    pub(crate) fn request(&self) -> Result<(&'static str, Value), CliError> {
        match self {
            MultiRegionCommand::ReplicateKey {
                key_id,
                replica_region,
                policy,
                bypass_policy_lockout_safety_check,
                description,
                tags,
            } => wire(ReplicateKeyRequest {
                key_id: key_id.clone(),
                replica_region: replica_region.clone(),
                policy: policy
                    .as_deref()
                    .map(|p| text_arg(p, "--policy"))
                    .transpose()?,
                bypass_policy_lockout_safety_check: *bypass_policy_lockout_safety_check,
                description: description.clone(),
                tags: tags_arg(tags)?,
            }),
            MultiRegionCommand::UpdatePrimaryRegion {
                key_id,
                primary_region,
            } => wire(UpdatePrimaryRegionRequest {
                key_id: key_id.clone(),
                primary_region: primary_region.clone(),
            }),
        }
    }
}
