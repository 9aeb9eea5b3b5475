//! Key policies: who may manage a key and who may use it.
//!
//! A policy is a JSON document shaped like an AWS key policy, with local Unix
//! users and groups as principals:
//!
//! ```json
//! {"Version": "2012-10-17",
//!  "Statement": [
//!    {"Sid": "Allow administration of the key", "Effect": "Allow",
//!     "Principal": {"Group": ["kmsadmins"]},
//!     "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
//!                "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
//!                "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand",
//!                "kms:ImportKeyMaterial"],
//!     "Resource": "*"},
//!    {"Sid": "Allow use of the key", "Effect": "Allow",
//!     "Principal": {"User": ["alice", "1001"]},
//!     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
//!                "kms:DescribeKey"],
//!     "Resource": "*"}]}
//! ```
//!
//! Evaluation follows IAM: an explicit Deny wins, then any Allow, otherwise
//! the call is denied. There is no implicit bypass for root: what the policy
//! does not grant, nobody gets (the default policy grants the key's creator
//! everything, as AWS's default policy grants the account).

use serde::{Deserialize, Serialize};

use super::error::{KmsError, Result};

/// The actions a key administrator gets in the console's default policy.
pub const ADMIN_ACTIONS: &[&str] = &[
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
    "kms:ImportKeyMaterial",
    // The console adds it for multi-Region keys (kms:UpdatePrimaryRegion
    // is in kms:Update*).
    "kms:ReplicateKey",
];

/// The actions a key user gets in the console's default policy.
pub const USER_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
    // The console adds these for asymmetric and HMAC keys.
    "kms:GetPublicKey",
    "kms:Sign",
    "kms:Verify",
    "kms:GenerateMac",
    "kms:VerifyMac",
    "kms:DeriveSharedSecret",
];

/// Who is calling: the numeric identity the kernel vouches for, and the
/// region the request is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The region of the request: its SigV4 credential scope, or the CLI's
    /// `--region` / AWS_REGION / AWS config. None when the request names no
    /// region (a mount's daemon, the Unix socket without a signature): then a
    /// key ARN's own region decides, a bare key id finds its key in any
    /// region, and aliases, new keys and listings use the store's default
    /// region. Keys are regional, identities (IAM) are not.
    pub region: Option<String>,
}

impl Caller {
    /// The identity of this process (real uid, as a setuid binary would be
    /// judged by who ran it).
    pub fn current() -> Caller {
        let groups = nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default();
        Caller {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            groups,
            region: None,
        }
    }

    /// The same caller, addressing `region`.
    pub fn in_region(mut self, region: Option<String>) -> Caller {
        self.region = region;
        self
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Principal {
    /// `"*"`: everybody.
    Any(String),
    Local {
        #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
        user: Option<OneOrMany>,
        #[serde(rename = "Group", default, skip_serializing_if = "Option::is_none")]
        group: Option<OneOrMany>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[serde(rename = "Sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(rename = "Effect")]
    pub effect: Effect,
    #[serde(rename = "Principal")]
    pub principal: Principal,
    #[serde(rename = "Action")]
    pub action: OneOrMany,
    #[serde(rename = "Resource", default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version", default = "default_version")]
    pub version: String,
    #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "Statement")]
    pub statement: Vec<Statement>,
}

fn default_version() -> String {
    "2012-10-17".into()
}

/// Matches an IAM action pattern: exact (case-insensitive, as IAM does) or
/// with `*` wildcards.
pub(crate) fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard_match(
        pattern.to_ascii_lowercase().as_bytes(),
        action.to_ascii_lowercase().as_bytes(),
    )
}

fn wildcard_match(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| wildcard_match(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && wildcard_match(rest, &s[1..]),
    }
}

fn user_matches(entry: &str, caller: &Caller) -> bool {
    if entry == "*" {
        return true;
    }
    if let Ok(uid) = entry.parse::<u32>() {
        return uid == caller.uid;
    }
    matches!(nix::unistd::User::from_name(entry), Ok(Some(u)) if u.uid.as_raw() == caller.uid)
}

fn group_matches(entry: &str, caller: &Caller) -> bool {
    if entry == "*" {
        return true;
    }
    if let Ok(gid) = entry.parse::<u32>() {
        return caller.in_group(gid);
    }
    matches!(nix::unistd::Group::from_name(entry), Ok(Some(g)) if caller.in_group(g.gid.as_raw()))
}

impl Principal {
    fn matches(&self, caller: &Caller, iam_group: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Principal::Any(s) => s == "*",
            Principal::Local { user, group } => {
                user.as_ref()
                    .is_some_and(|u| u.items().iter().any(|e| user_matches(e, caller)))
                    || group.as_ref().is_some_and(|g| {
                        g.items()
                            .iter()
                            .any(|e| group_matches(e, caller) || iam_group(e))
                    })
            }
        }
    }
}

impl PolicyDocument {
    /// Parses and validates a policy document (MalformedPolicyDocumentException).
    pub fn parse(text: &str) -> Result<PolicyDocument> {
        let doc: PolicyDocument = serde_json::from_str(text).map_err(|e| {
            KmsError::MalformedPolicyDocument(format!("The key policy is not valid: {e}"))
        })?;
        if doc.statement.is_empty() {
            return Err(KmsError::MalformedPolicyDocument(
                "The key policy has no statement".into(),
            ));
        }
        for st in &doc.statement {
            if let Principal::Any(s) = &st.principal
                && s != "*"
            {
                return Err(KmsError::MalformedPolicyDocument(format!(
                    "Principal must be \"*\" or an object with User and/or Group, not {s:?}"
                )));
            }
            for action in st.action.items() {
                if !action.to_ascii_lowercase().starts_with("kms:") && action != "*" {
                    return Err(KmsError::MalformedPolicyDocument(format!(
                        "Action {action:?} is not a kms: action"
                    )));
                }
            }
        }
        Ok(doc)
    }

    /// The default policy of a new key: its creator may do everything, as
    /// AWS's default policy lets the account do everything.
    pub fn default_for(creator_uid: u32) -> PolicyDocument {
        PolicyDocument {
            version: default_version(),
            id: Some("key-default-1".into()),
            statement: vec![Statement {
                sid: Some("Enable full access for the key's creator".into()),
                effect: Effect::Allow,
                principal: Principal::Local {
                    user: Some(OneOrMany::Many(vec![creator_uid.to_string()])),
                    group: None,
                },
                action: OneOrMany::One("kms:*".into()),
                resource: Some(OneOrMany::One("*".into())),
            }],
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Whether `caller` may perform `action` (e.g. "kms:Encrypt").
    pub fn allows(&self, caller: &Caller, action: &str) -> bool {
        self.allows_with(caller, action, &|_| false)
    }

    /// `allows`, where a `Group` principal also matches when `iam_group`
    /// says the caller is in the IAM group of that name.
    pub fn allows_with(
        &self,
        caller: &Caller,
        action: &str,
        iam_group: &dyn Fn(&str) -> bool,
    ) -> bool {
        let applicable = |effect: Effect| {
            self.statement.iter().any(|st| {
                st.effect == effect
                    && st.principal.matches(caller, iam_group)
                    && st
                        .action
                        .items()
                        .iter()
                        .any(|p| *p == "*" || action_matches(p, action))
            })
        };
        !applicable(Effect::Deny) && applicable(Effect::Allow)
    }

    /// `allows`, or the AccessDeniedException AWS would give.
    pub fn check(&self, caller: &Caller, action: &str, key_arn: &str) -> Result<()> {
        self.check_with(caller, action, key_arn, &|_| false)
    }

    /// `check`, with IAM group membership as in `allows_with`.
    pub fn check_with(
        &self,
        caller: &Caller,
        action: &str,
        key_arn: &str,
        iam_group: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        if self.allows_with(caller, action, iam_group) {
            Ok(())
        } else {
            Err(KmsError::AccessDenied(format!(
                "User uid:{} is not authorized to perform: {action} on resource: {key_arn} because no key policy statement allows it",
                caller.uid
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, groups: &[u32]) -> Caller {
        Caller {
            uid,
            gid: 60000,
            groups: groups.to_vec(),
            region: None,
        }
    }

    fn split_policy() -> PolicyDocument {
        let admin: Vec<String> = ADMIN_ACTIONS.iter().map(|s| s.to_string()).collect();
        let user: Vec<String> = USER_ACTIONS.iter().map(|s| s.to_string()).collect();
        let text = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Group": ["4242"]}, "Action": admin, "Resource": "*"},
                {"Effect": "Allow", "Principal": {"User": "1001"}, "Action": user, "Resource": "*"}
            ]
        })
        .to_string();
        PolicyDocument::parse(&text).unwrap()
    }

    #[test]
    fn administrators_manage_but_cannot_use() {
        let p = split_policy();
        let admin = caller(2000, &[4242]);
        assert!(p.allows(&admin, "kms:DisableKey"));
        assert!(p.allows(&admin, "kms:ScheduleKeyDeletion"));
        assert!(p.allows(&admin, "kms:PutKeyPolicy"));
        assert!(!p.allows(&admin, "kms:Encrypt"));
        assert!(!p.allows(&admin, "kms:Decrypt"));
        assert!(!p.allows(&admin, "kms:GenerateDataKey"));
    }

    #[test]
    fn users_use_but_cannot_manage() {
        let p = split_policy();
        let user = caller(1001, &[]);
        assert!(p.allows(&user, "kms:Encrypt"));
        assert!(p.allows(&user, "kms:GenerateDataKeyWithoutPlaintext"));
        assert!(p.allows(&user, "kms:ReEncryptFrom"));
        assert!(!p.allows(&user, "kms:DisableKey"));
        assert!(!p.allows(&user, "kms:PutKeyPolicy"));
        assert!(!p.allows(&caller(1002, &[]), "kms:Encrypt"));
    }

    #[test]
    fn explicit_deny_wins() {
        let text = r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"kms:*"},
            {"Effect":"Deny","Principal":{"User":["7"]},"Action":"kms:Decrypt"}]}"#;
        let p = PolicyDocument::parse(text).unwrap();
        assert!(p.allows(&caller(8, &[]), "kms:Decrypt"));
        assert!(!p.allows(&caller(7, &[]), "kms:Decrypt"));
        assert!(p.allows(&caller(7, &[]), "kms:Encrypt"));
    }

    #[test]
    fn default_policy_is_creator_only() {
        let p = PolicyDocument::default_for(1234);
        assert!(p.allows(&caller(1234, &[]), "kms:Encrypt"));
        assert!(p.allows(&caller(1234, &[]), "kms:DisableKey"));
        assert!(!p.allows(&caller(0, &[]), "kms:Encrypt"));
        let round = PolicyDocument::parse(&p.to_json()).unwrap();
        assert!(round.allows(&caller(1234, &[]), "kms:Decrypt"));
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [
            "not json",
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"kms:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"bob","Action":"kms:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}"#,
        ] {
            assert!(
                matches!(
                    PolicyDocument::parse(bad),
                    Err(KmsError::MalformedPolicyDocument(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn wildcards() {
        assert!(action_matches("kms:ReEncrypt*", "kms:ReEncryptTo"));
        assert!(action_matches("KMS:encrypt", "kms:Encrypt"));
        assert!(!action_matches("kms:Encrypt", "kms:EncryptX"));
        assert!(action_matches("kms:*", "kms:Decrypt"));
    }
}
