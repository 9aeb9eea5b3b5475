//! `kmsfs kms create-grant|list-grants|list-retirable-grants|retire-grant|
//! revoke-grant`, with the AWS CLI's flags. `--constraints` takes the AWS
//! CLI's shorthand (`EncryptionContextSubset={Department=IT}`) or JSON.

use clap::Subcommand;
use serde_json::Value;

use super::{CliError, wire};
use crate::awscli::parse_structure;
use kmsfs_kms::protocol::*;

#[derive(Debug, Subcommand)]
pub(crate) enum GrantCommand {
    /// Lets a principal use a key for some operations (GrantId and GrantToken).
    CreateGrant {
        #[arg(long)]
        key_id: String,
        /// The principal ARN that may use the grant.
        #[arg(long)]
        grantee_principal: String,
        /// Encrypt, Decrypt, GenerateDataKey, ReEncryptFrom, CreateGrant, DescribeKey, …
        #[arg(long, num_args = 1.., required = true)]
        operations: Vec<String>,
        /// The principal ARN that may retire the grant.
        #[arg(long)]
        retiring_principal: Option<String>,
        /// EncryptionContextSubset={K=V,...} or EncryptionContextEquals={K=V,...}, or JSON.
        #[arg(long)]
        constraints: Option<String>,
        /// A name that makes a repeated identical request answer the same grant.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, num_args = 1..)]
        grant_tokens: Vec<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Lists the grants of a key.
    ListGrants {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        grant_id: Option<String>,
        #[arg(long)]
        grantee_principal: Option<String>,
        /// The most entries to return (AWS's `Limit`).
        #[arg(long)]
        limit: Option<u32>,
        /// Where to go on (a previous answer's `NextMarker`).
        #[arg(long)]
        marker: Option<String>,
    },
    /// Lists the grants a principal may retire.
    ListRetirableGrants {
        #[arg(long)]
        retiring_principal: String,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        marker: Option<String>,
    },
    /// Retires a grant, named by its token or by key and grant id.
    RetireGrant {
        #[arg(long)]
        grant_token: Option<String>,
        #[arg(long)]
        key_id: Option<String>,
        #[arg(long)]
        grant_id: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Revokes a grant of a key.
    RevokeGrant {
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        grant_id: String,
        #[arg(long)]
        dry_run: bool,
    },
}

fn constraints_arg(arg: &str) -> Result<GrantConstraints, CliError> {
    let value: Value = parse_structure("--constraints", arg).map_err(CliError::Usage)?;
    serde_json::from_value(value).map_err(|e| {
        CliError::Usage(format!(
            "Error parsing parameter '--constraints': {e}: expected EncryptionContextSubset={{K=V,...}} and/or EncryptionContextEquals={{K=V,...}}"
        ))
    })
}

impl GrantCommand {
    /// The AWS operation name and JSON request.
    pub(super) fn request(&self) -> Result<(&'static str, Value), CliError> {
        use GrantCommand::*;
        match self {
            CreateGrant {
                key_id,
                grantee_principal,
                operations,
                retiring_principal,
                constraints,
                name,
                grant_tokens,
                dry_run,
            } => wire(CreateGrantRequest {
                key_id: key_id.clone(),
                grantee_principal: grantee_principal.clone(),
                retiring_principal: retiring_principal.clone(),
                operations: operations.clone(),
                constraints: constraints.as_deref().map(constraints_arg).transpose()?,
                grant_tokens: grant_tokens.clone(),
                name: name.clone(),
                dry_run: *dry_run,
            }),
            ListGrants {
                key_id,
                grant_id,
                grantee_principal,
                limit,
                marker,
            } => wire(ListGrantsRequest {
                key_id: key_id.clone(),
                grant_id: grant_id.clone(),
                grantee_principal: grantee_principal.clone(),
                limit: *limit,
                marker: marker.clone(),
            }),
            ListRetirableGrants {
                retiring_principal,
                limit,
                marker,
            } => wire(ListRetirableGrantsRequest {
                retiring_principal: retiring_principal.clone(),
                limit: *limit,
                marker: marker.clone(),
            }),
            RetireGrant {
                grant_token,
                key_id,
                grant_id,
                dry_run,
            } => wire(RetireGrantRequest {
                grant_token: grant_token.clone(),
                key_id: key_id.clone(),
                grant_id: grant_id.clone(),
                dry_run: *dry_run,
            }),
            RevokeGrant {
                key_id,
                grant_id,
                dry_run,
            } => wire(RevokeGrantRequest {
                key_id: key_id.clone(),
                grant_id: grant_id.clone(),
                dry_run: *dry_run,
            }),
        }
    }
}
