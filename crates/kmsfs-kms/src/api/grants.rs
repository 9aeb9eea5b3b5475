//! The grant operations' handlers.

use super::{Handler, dry_run_ok};
use crate::error::Result;
use crate::grants::Constraints;
use crate::local::{CreateGrantInput, GrantInfo, LocalKms};
use crate::paging::{Limits, PageRequest};
use crate::policy::Caller;
use crate::protocol::*;

fn constraints(c: Option<GrantConstraints>) -> Constraints {
    let c = c.unwrap_or_default();
    Constraints {
        equals: c.encryption_context_equals,
        subset: c.encryption_context_subset,
    }
}

fn entry(i: GrantInfo) -> GrantListEntry {
    let c = i.grant.constraints;
    GrantListEntry {
        key_id: i.key_arn,
        grant_id: i.grant.id,
        name: i.grant.name,
        creation_date: i.grant.created.into(),
        grantee_principal: i.grant.grantee,
        retiring_principal: i.grant.retiring,
        issuing_account: i.issuing_account,
        operations: i.grant.operations,
        constraints: (!c.is_empty()).then_some(GrantConstraints {
            encryption_context_subset: c.subset,
            encryption_context_equals: c.equals,
        }),
    }
}

/// One page of grants, sorted by key and grant id.
fn page(
    operation: Operation,
    limit: Option<u32>,
    marker: Option<&str>,
    list: impl FnOnce() -> Result<Vec<GrantInfo>>,
) -> Result<ListGrantsResponse> {
    let paging = PageRequest::new(operation, limit, marker, Limits::GRANTS)?;
    let page = paging.page(list()?, |g| format!("{}/{}", g.key_arn, g.grant.id));
    let truncated = page.truncated();
    Ok(ListGrantsResponse {
        grants: page.items.into_iter().map(entry).collect(),
        next_marker: page.next_marker,
        truncated,
    })
}

impl Handler for CreateGrantRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<CreateGrantResponse> {
        let input = CreateGrantInput {
            key_id: self.key_id,
            grantee: self.grantee_principal,
            retiring: self.retiring_principal,
            operations: self.operations,
            constraints: constraints(self.constraints),
            name: self.name,
        };
        let (grant_id, grant_token) =
            dry_run_ok(kms, self.dry_run, || kms.create_grant(caller, &input))?;
        Ok(CreateGrantResponse {
            grant_token,
            grant_id,
        })
    }
}

impl Handler for ListGrantsRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ListGrantsResponse> {
        page(
            Operation::ListGrants,
            self.limit,
            self.marker.as_deref(),
            || {
                kms.list_grants(
                    caller,
                    &self.key_id,
                    self.grant_id.as_deref(),
                    self.grantee_principal.as_deref(),
                )
            },
        )
    }
}

impl Handler for ListRetirableGrantsRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ListGrantsResponse> {
        page(
            Operation::ListRetirableGrants,
            self.limit,
            self.marker.as_deref(),
            || kms.list_retirable_grants(caller, &self.retiring_principal),
        )
    }
}

impl Handler for RetireGrantRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        dry_run_ok(kms, self.dry_run, || {
            kms.retire_grant(
                caller,
                self.grant_token.as_deref(),
                self.key_id.as_deref(),
                self.grant_id.as_deref(),
            )
        })?;
        Ok(Empty {})
    }
}

impl Handler for RevokeGrantRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        dry_run_ok(kms, self.dry_run, || {
            kms.revoke_grant(caller, &self.key_id, &self.grant_id)
        })?;
        Ok(Empty {})
    }
}
