//! Grants: a key's delegations of some of its operations to one principal,
//! beside its key policy, as AWS KMS has them.
//!
//! A grant names a grantee principal (an IAM ARN), the grant operations it
//! allows (`Encrypt`, `Decrypt`, `ReEncryptFrom`, `CreateGrant`, …), an
//! optional retiring principal, and optional constraints on the encryption
//! context of the requests it allows. It only ever allows: an explicit Deny
//! of the key policy still wins, as in AWS's evaluation.
//!
//! Grants live in their key (`Key::grants`), so they share the store's
//! sealing and locking and go when the key is deleted. A grant is in force
//! from the moment CreateGrant returns: kmsfs has one consistent store, so
//! the grant token AWS needs for eventual consistency is only an identifier
//! here (accepted everywhere AWS takes one, checked for its shape, and the
//! way RetireGrant can name a grant).
//!
//! This module is the data and the rules, with no store and no I/O; the
//! operations are in `local/grants.rs`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::blob::EncryptionContext;
use crate::clock::Timestamp;
use crate::error::{KmsError, Result};

/// The operations a grant may allow (botocore's `GrantOperation` enum).
pub const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

/// The grant operations whose requests carry an encryption context, the only
/// ones a constrained grant may allow (AWS refuses constraints on others).
const CONTEXT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "CreateGrant",
    "RetireGrant",
];

/// AWS's quota: grants per key.
pub const MAX_GRANTS_PER_KEY: usize = 50_000;

/// AWS's bound on the grant tokens of one request.
pub const MAX_GRANT_TOKENS: usize = 10;

/// The encryption-context conditions of a grant. Both may be set; a request
/// must then meet both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraints {
    /// The request's context must be exactly this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<EncryptionContext>,
    /// The request's context must contain every pair of this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<EncryptionContext>,
}

impl Constraints {
    pub fn is_empty(&self) -> bool {
        self.equals.is_none() && self.subset.is_none()
    }

    /// Whether a request with context `ctx` meets them. A request that
    /// carries no context at all (DescribeKey) meets only no constraints.
    pub fn satisfied_by(&self, ctx: Option<&EncryptionContext>) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(ctx) = ctx else {
            return false;
        };
        self.equals.as_ref().is_none_or(|e| e == ctx)
            && self
                .subset
                .as_ref()
                .is_none_or(|s| s.iter().all(|(k, v)| ctx.get(k) == Some(v)))
    }

    /// Whether every context these allow is one `parent` allows too: what a
    /// grant made through a CreateGrant grant must meet, so that nobody can
    /// widen a delegation by passing it on.
    pub fn at_least_as_strict_as(&self, parent: &Constraints) -> bool {
        if let Some(pe) = &parent.equals {
            // Only that one context: the child must pin the same one.
            if self.equals.as_ref() != Some(pe) {
                return false;
            }
        }
        if let Some(ps) = &parent.subset {
            let pinned = |c: &EncryptionContext| ps.iter().all(|(k, v)| c.get(k) == Some(v));
            let by_equals = self.equals.as_ref().is_some_and(pinned);
            let by_subset = self.subset.as_ref().is_some_and(pinned);
            if !(by_equals || by_subset) {
                return false;
            }
        }
        true
    }
}

/// One grant of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// 64 hex digits, as AWS's grant ids.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created: Timestamp,
    pub grantee: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<String>,
    /// Sorted, without repeats.
    pub operations: Vec<String>,
    #[serde(default, skip_serializing_if = "Constraints::is_empty")]
    pub constraints: Constraints,
    /// The principal that created it (audit, and ListGrants' IssuingAccount
    /// is derived from the store's account).
    pub creator: String,
}

impl Grant {
    pub fn allows_operation(&self, operation: &str) -> bool {
        self.operations.iter().any(|o| o == operation)
    }

    /// Whether this grant lets `principal` perform IAM action `action`
    /// (`kms:Encrypt`) in a request with context `ctx`.
    pub fn allows(&self, principal: &str, action: &str, ctx: Option<&EncryptionContext>) -> bool {
        self.grantee == principal
            && action
                .strip_prefix("kms:")
                .is_some_and(|op| self.allows_operation(op))
            && self.constraints.satisfied_by(ctx)
    }

    /// Whether a new grant with these parameters is this one again: AWS
    /// answers a CreateGrant repeated with the same name and parameters
    /// with the grant it made the first time.
    pub fn same_request(
        &self,
        name: Option<&str>,
        grantee: &str,
        retiring: Option<&str>,
        operations: &[String],
        constraints: &Constraints,
    ) -> bool {
        name.is_some()
            && self.name.as_deref() == name
            && self.grantee == grantee
            && self.retiring.as_deref() == retiring
            && self.operations == operations
            && &self.constraints == constraints
    }
}

/// A new grant id: 256 random bits in hex.
pub fn new_grant_id() -> String {
    let bytes: [u8; 32] = rand::random();
    crate::sigv4::hex(&bytes)
}

const TOKEN_PREFIX: &str = "kmsfs-grant-1.";

/// The bytes of a hex string (grant ids are checked to be 64 hex digits
/// before they reach a token; anything else yields no bytes and so a token
/// that names no grant).
fn unhex(s: &str) -> Vec<u8> {
    if !s.len().is_multiple_of(2) {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_default()
}

/// The grant token of grant `grant_id` of key `key_id`. It names the grant;
/// it is not a secret and confers nothing by itself (module docs).
pub fn token(key_id: Uuid, grant_id: &str) -> String {
    let mut raw = key_id.as_bytes().to_vec();
    raw.extend(unhex(grant_id));
    format!("{TOKEN_PREFIX}{}", B64.encode(raw))
}

/// The (key id, grant id) a grant token names.
pub fn parse_token(token: &str) -> Result<(Uuid, String)> {
    let invalid = || KmsError::InvalidGrantToken("The grant token is not valid.".into());
    let raw = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|b| B64.decode(b).ok())
        .filter(|raw| raw.len() == 16 + 32)
        .ok_or_else(invalid)?;
    let key_id = Uuid::from_slice(&raw[..16]).map_err(|_| invalid())?;
    Ok((key_id, crate::sigv4::hex(&raw[16..])))
}

/// The `GrantTokens` member of any request: at most ten, each one a token
/// kmsfs issued (InvalidGrantTokenException otherwise, as AWS refuses a
/// token it cannot read).
pub fn validate_tokens(tokens: &[String]) -> Result<()> {
    if tokens.len() > MAX_GRANT_TOKENS {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to {MAX_GRANT_TOKENS}"
        )));
    }
    for t in tokens {
        if t.is_empty() || t.len() > 8192 {
            return Err(KmsError::Validation(
                "1 validation error detected: a grant token must have a length between 1 and 8192"
                    .into(),
            ));
        }
        parse_token(t)?;
    }
    Ok(())
}

/// A grant id as the model bounds it (1..=128 characters); ours are 64 hex.
pub fn validate_grant_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 {
        return Err(KmsError::Validation(
            "1 validation error detected: Value at 'grantId' failed to satisfy constraint: Member must have length between 1 and 128".into(),
        ));
    }
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KmsError::InvalidGrantId(format!(
            "Grant ID {id} is not valid."
        )));
    }
    Ok(())
}

/// A grantee or retiring principal: within the model's pattern
/// (`[\w+=,.@:/-]+`, 1..=256) and an IAM ARN: the account root, a user, a
/// role or an assumed-role session.
pub fn validate_principal(member: &str, p: &str) -> Result<()> {
    let in_pattern = p
        .chars()
        .all(|c| c.is_alphanumeric() || "_+=,.@:/-".contains(c));
    if p.is_empty() || p.len() > 256 || !in_pattern {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[\\w+=,.@:/-]+$"
        )));
    }
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    let valid = match parts.as_slice() {
        ["arn", "aws", "iam", "", account, resource] => {
            is_account(account)
                && (*resource == "root"
                    || ["user/", "role/"]
                        .iter()
                        .any(|k| resource.strip_prefix(k).is_some_and(|n| !n.is_empty())))
        }
        ["arn", "aws", "sts", "", account, resource] => {
            is_account(account)
                && resource
                    .strip_prefix("assumed-role/")
                    .is_some_and(|n| !n.is_empty())
        }
        _ => false,
    };
    if !valid {
        return Err(KmsError::InvalidArn(format!(
            "{member} {p} is not a valid principal ARN"
        )));
    }
    Ok(())
}

fn is_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

/// A grant's operations, checked (known, at least one; only context
/// operations when constrained), sorted and without repeats.
pub fn validate_operations(
    operations: &[String],
    constraints: &Constraints,
) -> Result<Vec<String>> {
    if operations.is_empty() {
        return Err(KmsError::Validation(
            "1 validation error detected: Value at 'operations' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
        ));
    }
    for op in operations {
        if !GRANT_OPERATIONS.contains(&op.as_str()) {
            return Err(KmsError::Validation(format!(
                "1 validation error detected: Value '[{op}]' at 'operations' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                GRANT_OPERATIONS.join(", ")
            )));
        }
        if !constraints.is_empty() && !CONTEXT_OPERATIONS.contains(&op.as_str()) {
            return Err(KmsError::Validation(format!(
                "Grant constraints are not supported for the {op} operation: it takes no encryption context"
            )));
        }
    }
    let mut ops = operations.to_vec();
    ops.sort();
    ops.dedup();
    Ok(ops)
}

/// A grant name: 1..=256 of `[a-zA-Z0-9:/_-]`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KmsError::Validation(
            "1 validation error detected: Value at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn constraints_meet_aws_rules() {
        let none = Constraints::default();
        assert!(none.satisfied_by(None));
        let subset = Constraints {
            subset: Some(ctx(&[("dept", "it")])),
            equals: None,
        };
        assert!(subset.satisfied_by(Some(&ctx(&[("dept", "it"), ("x", "y")]))));
        assert!(!subset.satisfied_by(Some(&ctx(&[("dept", "hr")]))));
        assert!(!subset.satisfied_by(None));
        let equals = Constraints {
            equals: Some(ctx(&[("dept", "it")])),
            subset: None,
        };
        assert!(equals.satisfied_by(Some(&ctx(&[("dept", "it")]))));
        assert!(!equals.satisfied_by(Some(&ctx(&[("dept", "it"), ("x", "y")]))));
        // A child may narrow, never widen.
        assert!(equals.at_least_as_strict_as(&subset));
        assert!(!subset.at_least_as_strict_as(&equals));
        assert!(!none.at_least_as_strict_as(&subset));
        assert!(subset.at_least_as_strict_as(&none));
        let narrower = Constraints {
            subset: Some(ctx(&[("dept", "it"), ("team", "a")])),
            equals: None,
        };
        assert!(narrower.at_least_as_strict_as(&subset));
        assert!(!subset.at_least_as_strict_as(&narrower));
    }

    #[test]
    fn tokens_name_their_grant_and_nothing_else_parses() {
        let key = Uuid::new_v4();
        let id = new_grant_id();
        assert_eq!(id.len(), 64);
        let t = token(key, &id);
        assert_eq!(parse_token(&t).unwrap(), (key, id.clone()));
        for bad in ["", "x", "kmsfs-grant-1.", "kmsfs-grant-1.AAAA", &t[1..]] {
            assert_eq!(
                parse_token(bad).unwrap_err().code(),
                "InvalidGrantTokenException"
            );
        }
        assert!(validate_tokens(&vec![t.clone(); 10]).is_ok());
        assert_eq!(
            validate_tokens(&vec![t; 11]).unwrap_err().code(),
            "ValidationException"
        );
    }

    #[test]
    fn principals_operations_and_names_are_checked() {
        for ok in [
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:role/app",
            "arn:aws:sts::111122223333:assumed-role/app/session",
        ] {
            validate_principal("granteePrincipal", ok).unwrap();
        }
        for (bad, code) in [
            ("alice", "InvalidArnException"),
            ("arn:aws:iam::1234:user/alice", "InvalidArnException"),
            (
                "arn:aws:iam::111122223333:group/admins",
                "InvalidArnException",
            ),
            ("arn:aws:iam::111122223333:user/", "InvalidArnException"),
            ("arn:aws:iam::111122223333:user/a b", "ValidationException"),
            ("", "ValidationException"),
        ] {
            assert_eq!(
                validate_principal("p", bad).unwrap_err().code(),
                code,
                "{bad}"
            );
        }
        let none = Constraints::default();
        let ops = validate_operations(
            &["Encrypt".into(), "Decrypt".into(), "Encrypt".into()],
            &none,
        )
        .unwrap();
        assert_eq!(ops, ["Decrypt", "Encrypt"]);
        assert!(validate_operations(&[], &none).is_err());
        assert!(validate_operations(&["Frobnicate".into()], &none).is_err());
        let constrained = Constraints {
            subset: Some(ctx(&[("a", "b")])),
            equals: None,
        };
        assert!(validate_operations(&["DescribeKey".into()], &constrained).is_err());
        assert!(validate_operations(&["Decrypt".into()], &constrained).is_ok());
        validate_name("ebs:vol-1/attach_2").unwrap();
        assert!(validate_name("no spaces").is_err());
        assert_eq!(
            validate_grant_id("abc").unwrap_err().code(),
            "InvalidGrantIdException"
        );
    }
}
