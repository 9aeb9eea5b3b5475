//! CreateGrant, ListGrants, ListRetirableGrants, RetireGrant and
//! RevokeGrant on the embedded store (the rules are in `grants.rs`; the
//! check that lets a grant allow an operation is `check_in_context` in
//! local.rs).

use uuid::Uuid;

use super::{LocalKms, Trail, check_policy_or_grants, dry_run, key_policy_decision};
use crate::error::{KmsError, Result};
use crate::grants::{
    self, Constraints, Grant, MAX_GRANTS_PER_KEY, validate_grant_id, validate_name,
    validate_operations, validate_principal,
};
use crate::model::StoreData;
use crate::policy::{Caller, Decision};
use crate::protocol::Operation;

/// What CreateGrant asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateGrantInput {
    /// Key id or key ARN.
    pub key_id: String,
    pub grantee: String,
    pub retiring: Option<String>,
    pub operations: Vec<String>,
    pub constraints: Constraints,
    pub name: Option<String>,
}

/// The key a grant request names: as the caller wrote it (id or ARN), or
/// the store record a grant token carries.
#[derive(Debug, Clone, Copy)]
enum GrantKey<'a> {
    Named(&'a str),
    Record(Uuid),
}

/// One grant as the List operations show it.
#[derive(Debug, Clone)]
pub struct GrantInfo {
    pub key_arn: String,
    /// `arn:aws:iam::ACCOUNT:root` of the store's account.
    pub issuing_account: String,
    pub grant: Grant,
}

fn info(data: &StoreData, key_id: &Uuid, grant: &Grant) -> GrantInfo {
    GrantInfo {
        key_arn: data.key_arn(key_id),
        issuing_account: format!("arn:aws:iam::{}:root", data.account),
        grant: grant.clone(),
    }
}

fn grant_not_found(grant_id: &str, arn: &str) -> KmsError {
    KmsError::NotFound(format!("Grant ID {grant_id} not found for key {arn}"))
}

impl LocalKms {
    /// Creates a grant, or answers the one made by an identical earlier
    /// request with the same Name. The caller needs kms:CreateGrant from the
    /// key policy, or a grant of its own that allows CreateGrant, every
    /// operation asked for, and constraints no wider than the new ones.
    pub fn create_grant(
        &self,
        caller: &Caller,
        input: &CreateGrantInput,
    ) -> Result<(String, String)> {
        let op = Operation::CreateGrant;
        let checked = (|| {
            validate_principal("granteePrincipal", &input.grantee)?;
            if let Some(r) = &input.retiring {
                validate_principal("retiringPrincipal", r)?;
            }
            if let Some(n) = &input.name {
                validate_name(n)?;
            }
            validate_operations(&input.operations, &input.constraints)
        })();
        let operations = self.precheck(caller, op, Some(&input.key_id), checked)?;
        self.run(caller, op, Some(&input.key_id), None, |trail| {
            let mut store = self.lock()?;
            let now = self.clock.now();
            store.update(|data| {
                let id = data.resolve_key_only(caller.region.as_deref(), &input.key_id)?;
                let arn = data.key_arn(&id);
                trail.key_id = Some(arn.clone());
                let key = data.key(&id)?;
                check_policy_or_grants(
                    data,
                    key,
                    caller,
                    op.iam_action(),
                    None,
                    &|g, principal| {
                        g.grantee == principal
                            && g.allows_operation("CreateGrant")
                            && operations.iter().all(|o| g.allows_operation(o))
                            && input.constraints.at_least_as_strict_as(&g.constraints)
                    },
                )?;
                key.require_usable(&arn)?;
                let creator = data
                    .iam
                    .principal_arn(&data.account, caller)
                    .unwrap_or_else(|| format!("uid:{}", caller.uid));
                let key = data.key_mut(&id)?;
                if let Some(g) = key.grants.iter().find(|g| {
                    g.same_request(
                        input.name.as_deref(),
                        &input.grantee,
                        input.retiring.as_deref(),
                        &operations,
                        &input.constraints,
                    )
                }) {
                    return Ok((g.id.clone(), grants::token(id, &g.id)));
                }
                if key.grants.len() >= MAX_GRANTS_PER_KEY {
                    return Err(KmsError::LimitExceeded(format!(
                        "{arn} has {MAX_GRANTS_PER_KEY} grants, the most a key can have"
                    )));
                }
                let grant_id = grants::new_grant_id();
                key.grants.push(Grant {
                    id: grant_id.clone(),
                    name: input.name.clone(),
                    created: now,
                    grantee: input.grantee.clone(),
                    retiring: input.retiring.clone(),
                    operations: operations.clone(),
                    constraints: input.constraints.clone(),
                    creator,
                });
                dry_run::refuse_write()?;
                self.usage.merge_into(data);
                Ok((grant_id.clone(), grants::token(id, &grant_id)))
            })
        })
    }

    /// The grants of a key (kms:ListGrants), optionally only one grant id
    /// or one grantee.
    pub fn list_grants(
        &self,
        caller: &Caller,
        key_id: &str,
        grant_id: Option<&str>,
        grantee: Option<&str>,
    ) -> Result<Vec<GrantInfo>> {
        let op = Operation::ListGrants;
        let checked = (|| {
            grant_id.map(validate_grant_id).transpose()?;
            grantee
                .map(|g| validate_principal("granteePrincipal", g))
                .transpose()
        })();
        self.precheck(caller, op, Some(key_id), checked)?;
        self.read_key_named(caller, op, key_id, false, |data, key| {
            Ok(key
                .grants
                .iter()
                .filter(|g| grant_id.is_none_or(|id| g.id == id))
                .filter(|g| grantee.is_none_or(|p| g.grantee == p))
                .map(|g| info(data, &key.key_id, g))
                .collect())
        })
    }

    /// The grants of the caller's region that `retiring` may retire. AWS
    /// leaves this account-wide listing to IAM policies; kmsfs shows a
    /// caller the grants naming itself as retiring principal, and those on
    /// keys whose policy allows it kms:ListRetirableGrants.
    pub fn list_retirable_grants(&self, caller: &Caller, retiring: &str) -> Result<Vec<GrantInfo>> {
        let op = Operation::ListRetirableGrants;
        self.precheck(
            caller,
            op,
            None,
            validate_principal("retiringPrincipal", retiring),
        )?;
        self.run(caller, op, None, None, |_| {
            let store = self.lock()?;
            let data = store.data();
            let region = data.region_or_default(caller.region.as_deref());
            let own = data.iam.principal_arn(&data.account, caller).as_deref() == Some(retiring);
            let mut out = Vec::new();
            for key in data.keys.values().filter(|k| k.region == region) {
                let visible = own
                    || key_policy_decision(data, key, caller, op.iam_action(), None)?
                        == Decision::Allow;
                if !visible {
                    continue;
                }
                out.extend(
                    key.grants
                        .iter()
                        .filter(|g| g.retiring.as_deref() == Some(retiring))
                        .map(|g| info(data, &key.key_id, g)),
                );
            }
            Ok(out)
        })
    }

    /// Retires a grant named by its token, or by key and grant id: allowed
    /// to its retiring principal, to its grantee when it allows
    /// RetireGrant, and to whoever the key policy allows kms:RetireGrant.
    pub fn retire_grant(
        &self,
        caller: &Caller,
        token: Option<&str>,
        key_id: Option<&str>,
        grant_id: Option<&str>,
    ) -> Result<()> {
        let op = Operation::RetireGrant;
        let named: Result<(GrantKey, String)> = match (token, key_id, grant_id) {
            (Some(t), _, _) => grants::parse_token(t).map(|(k, g)| (GrantKey::Record(k), g)),
            (None, Some(k), Some(g)) => {
                validate_grant_id(g).map(|_| (GrantKey::Named(k), g.to_string()))
            }
            _ => Err(KmsError::Validation(
                "Either GrantToken, or both KeyId and GrantId, must be specified".into(),
            )),
        };
        let (key, grant_id) = self.precheck(caller, op, key_id, named)?;
        self.remove_grant(caller, op, key, &grant_id, |data, key, grant| {
            let principal = data.iam.principal_arn(&data.account, caller);
            let party = grant.zip(principal.as_deref()).is_some_and(|(grant, p)| {
                grant.retiring.as_deref() == Some(p)
                    || (grant.grantee == p && grant.allows_operation("RetireGrant"))
            });
            if party
                || key_policy_decision(data, key, caller, op.iam_action(), None)?
                    == Decision::Allow
            {
                Ok(())
            } else {
                Err(KmsError::AccessDenied(format!(
                    "User {} is not authorized to perform: kms:RetireGrant on grant {grant_id} of {}: only its retiring principal, its grantee when the grant allows RetireGrant, or a principal the key policy allows may retire it",
                    super::caller_name(data, caller),
                    data.key_arn(&key.key_id)
                )))
            }
        })
    }

    /// Revokes a grant (kms:RevokeGrant from the key policy).
    pub fn revoke_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<()> {
        let op = Operation::RevokeGrant;
        self.precheck(caller, op, Some(key_id), validate_grant_id(grant_id))?;
        self.remove_grant(
            caller,
            op,
            GrantKey::Named(key_id),
            grant_id,
            |data, key, _| super::check(data, key, caller, op.iam_action()),
        )
    }

    /// Removes grant `grant_id` of the key `key_ref` names (id or ARN) once
    /// `authorize` allows it; in any key state, since taking a permission
    /// away is always safe. `authorize` also sees a grant that does not
    /// exist (None), so that only a caller who may remove grants learns
    /// whether it does.
    fn remove_grant(
        &self,
        caller: &Caller,
        op: Operation,
        key_ref: GrantKey,
        grant_id: &str,
        authorize: impl FnOnce(&StoreData, &crate::model::Key, Option<&Grant>) -> Result<()>,
    ) -> Result<()> {
        let hint = match key_ref {
            GrantKey::Named(k) => Some(k),
            GrantKey::Record(_) => None,
        };
        self.run(caller, op, hint, None, |trail: &mut Trail| {
            let mut store = self.lock()?;
            store.update(|data| {
                let id = match key_ref {
                    GrantKey::Named(k) => data.resolve_key_only(caller.region.as_deref(), k)?,
                    // A token names the key's record, which must be of the
                    // request's region like any key.
                    GrantKey::Record(id) => data
                        .keys
                        .get(&id)
                        .filter(|k| caller.region.as_deref().is_none_or(|r| r == k.region))
                        .map(|k| k.key_id)
                        .ok_or_else(|| {
                            KmsError::NotFound(
                                "The grant token names no key of this region.".into(),
                            )
                        })?,
                };
                let arn = data.key_arn(&id);
                trail.key_id = Some(arn.clone());
                let key = data.key(&id)?;
                let grant = key.grants.iter().find(|g| g.id == grant_id);
                authorize(data, key, grant)?;
                if grant.is_none() {
                    return Err(grant_not_found(grant_id, &arn));
                }
                data.key_mut(&id)?.grants.retain(|g| g.id != grant_id);
                dry_run::refuse_write()?;
                self.usage.merge_into(data);
                Ok(())
            })
        })
    }
}
