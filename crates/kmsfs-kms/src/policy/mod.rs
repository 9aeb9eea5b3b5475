//! Key policies and IAM identity policies: who may manage a key and who may
//! use it, in AWS's policy language.
//!
//! A key policy is an AWS key policy. Its principals are AWS's (`"*"`,
//! `{"AWS": ARN | account id | "*"}`, `{"Service": …}`) and kmsfs's local
//! ones (`{"User": [names or uids]}`, `{"Group": [names or gids]}`, Unix or
//! IAM):
//!
//! ```json
//! {"Version": "2012-10-17",
//!  "Statement": [
//!    {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
//!     "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
//!     "Action": "kms:*", "Resource": "*"},
//!    {"Sid": "Allow use of the key", "Effect": "Allow",
//!     "Principal": {"User": ["alice", "1001"]},
//!     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
//!     "Resource": "*",
//!     "Condition": {"StringEquals": {"kms:EncryptionContext:dept": "it"}}}]}
//! ```
//!
//! Statements take `Action` or `NotAction`, `Resource` or `NotResource`, and
//! `Condition` (condition.rs). Evaluation follows AWS: an applicable Deny
//! wins; an Allow naming the caller allows; an Allow naming the account
//! (`arn:aws:iam::ACCOUNT:root`) hands the decision to the caller's IAM
//! identity policies (iam.rs), as AWS's default key policy does. There is no
//! implicit bypass for root: what no policy grants, nobody gets.

use serde::{Deserialize, Serialize};

use super::error::{KmsError, Result};

mod condition;

pub use condition::{ConditionBlock, RequestFacts};

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

/// Who is calling: the numeric identity the kernel vouches for (or
/// [`Caller::NO_UID`] for an IAM principal that is no local user), the IAM
/// user a signed request came from, and the region the request is
/// addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The IAM user whose access key signed the request; None for local
    /// callers (the CLI on an embedded store, the Unix socket, a mount's
    /// daemon), who are named by their Unix user.
    pub iam_user: Option<String>,
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
            iam_user: None,
            region: None,
        }
    }

    /// The uid and gid of a caller with no Unix identity: `(uid_t)-1`,
    /// which the kernel never gives a process (setuid(2) reads it as "leave
    /// unchanged"), so no uid- or gid-based principal can name it by
    /// accident.
    pub const NO_UID: u32 = u32::MAX;

    /// The caller of a request signed by IAM user `name`, who is no local
    /// Unix user: named by its ARN and IAM groups alone.
    pub fn iam_only(name: &str) -> Caller {
        Caller {
            uid: Caller::NO_UID,
            gid: Caller::NO_UID,
            groups: vec![],
            iam_user: Some(name.to_string()),
            region: None,
        }
    }

    /// Whether the caller is a Unix identity (possibly also an IAM user).
    pub fn has_uid(&self) -> bool {
        self.uid != Caller::NO_UID
    }

    /// The same caller, addressing `region`.
    pub fn in_region(mut self, region: Option<String>) -> Caller {
        self.region = region;
        self
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.has_uid() && (self.gid == gid || self.groups.contains(&gid))
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

/// Who a statement is about: `"*"`, or an object with AWS's `AWS` (IAM
/// ARNs, account ids, `"*"`) and `Service` members and kmsfs's local `User`
/// and `Group` members (Unix or IAM names and ids).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Principal {
    /// `"*"`: everybody.
    Any(String),
    Named(NamedPrincipals),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPrincipals {
    #[serde(rename = "AWS", default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<OneOrMany>,
    /// AWS service principals: stored, and matching no caller (no AWS
    /// service calls kmsfs).
    #[serde(rename = "Service", default, skip_serializing_if = "Option::is_none")]
    pub service: Option<OneOrMany>,
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<OneOrMany>,
    #[serde(rename = "Group", default, skip_serializing_if = "Option::is_none")]
    pub group: Option<OneOrMany>,
}

/// The outcome of evaluating a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An applicable statement denies it.
    Deny,
    /// An applicable statement allows it, and none denies it.
    Allow,
    /// No statement applies.
    NotAllowed,
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
    /// Required in key policies, absent in IAM identity policies.
    #[serde(rename = "Principal", default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    #[serde(rename = "Action", default, skip_serializing_if = "Option::is_none")]
    pub action: Option<OneOrMany>,
    #[serde(rename = "NotAction", default, skip_serializing_if = "Option::is_none")]
    pub not_action: Option<OneOrMany>,
    #[serde(rename = "Resource", default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany>,
    #[serde(
        rename = "NotResource",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_resource: Option<OneOrMany>,
    #[serde(rename = "Condition", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ConditionBlock>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version", default = "default_version")]
    pub version: String,
    #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "Statement", deserialize_with = "one_or_many_statements")]
    pub statement: Vec<Statement>,
}

/// `Statement` may be one object or a list, as IAM accepts.
fn one_or_many_statements<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<Statement>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Statements {
        One(Box<Statement>),
        Many(Vec<Statement>),
    }
    Ok(match Statements::deserialize(d)? {
        Statements::One(s) => vec![*s],
        Statements::Many(v) => v,
    })
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

/// IAM's pattern match: `*` any run of characters, `?` any one.
fn wildcard_match(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| wildcard_match(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && wildcard_match(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && wildcard_match(rest, &s[1..]),
    }
}

fn user_matches(entry: &str, caller: &Caller) -> bool {
    if entry == "*" {
        return true;
    }
    if caller.iam_user.as_deref() == Some(entry) {
        return true;
    }
    if !caller.has_uid() {
        return false;
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

/// The ARN of IAM user `name` of `account` (policies name IAM users so; the
/// IAM module re-exports it).
pub fn user_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

/// How a statement's principal names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalMatch {
    /// Not at all.
    No,
    /// Itself (`"*"`, its ARN, its Unix or IAM user or group).
    Direct,
    /// Its account (`arn:aws:iam::ACCOUNT:root` or `ACCOUNT`): the key
    /// policy delegates to the account's IAM identity policies.
    Account,
}

/// The account principal's forms, for account `account`.
fn is_account_principal(entry: &str, account: &str) -> bool {
    entry == account || entry == format!("arn:aws:iam::{account}:root")
}

impl Principal {
    fn matches(&self, who: &Who) -> PrincipalMatch {
        match self {
            Principal::Any(s) if s == "*" => PrincipalMatch::Direct,
            Principal::Any(_) => PrincipalMatch::No,
            Principal::Named(n) => {
                let caller = who.caller;
                let direct = n.aws.as_ref().is_some_and(|a| {
                    a.items()
                        .iter()
                        .any(|e| *e == "*" || who.facts.principal_arn == Some(*e))
                }) || n
                    .user
                    .as_ref()
                    .is_some_and(|u| u.items().iter().any(|e| user_matches(e, caller)))
                    || n.group.as_ref().is_some_and(|g| {
                        g.items()
                            .iter()
                            .any(|e| group_matches(e, caller) || (who.iam_group)(e))
                    });
                if direct {
                    PrincipalMatch::Direct
                } else if n.aws.as_ref().is_some_and(|a| {
                    a.items()
                        .iter()
                        .any(|e| is_account_principal(e, who.facts.account))
                }) {
                    PrincipalMatch::Account
                } else {
                    PrincipalMatch::No
                }
            }
        }
    }
}

/// The caller as a policy sees it.
pub struct Who<'a> {
    pub caller: &'a Caller,
    pub facts: &'a RequestFacts<'a>,
    /// Whether the caller is in the IAM group of that name (for `Group`).
    pub iam_group: &'a dyn Fn(&str) -> bool,
    /// The decision of the caller's IAM identity policies on this request,
    /// asked only when a key policy statement names the account.
    pub identity: &'a dyn Fn() -> Decision,
}

impl Statement {
    /// Whether the statement's action, resource and condition cover the
    /// request (its principal aside).
    fn covers(&self, facts: &RequestFacts) -> bool {
        let action = match (&self.action, &self.not_action) {
            (Some(a), _) => a.items().iter().any(|p| action_matches(p, facts.action)),
            (None, Some(na)) => !na.items().iter().any(|p| action_matches(p, facts.action)),
            (None, None) => false,
        };
        let resource_matches =
            |p: &str| p == "*" || wildcard_match(p.as_bytes(), facts.resource.as_bytes());
        let resource = match (&self.resource, &self.not_resource) {
            (Some(r), _) => r.items().iter().any(|p| resource_matches(p)),
            (None, Some(nr)) => !nr.items().iter().any(|p| resource_matches(p)),
            // Key policies may leave it out: the key itself.
            (None, None) => true,
        };
        action
            && resource
            && self
                .condition
                .as_ref()
                .is_none_or(|c| condition::holds(c, facts))
    }
}

/// Which kind of document is being read, for its rules and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    KeyPolicy,
    IdentityPolicy,
}

impl PolicyDocument {
    /// Parses and validates a key policy (MalformedPolicyDocumentException).
    pub fn parse(text: &str) -> Result<PolicyDocument> {
        PolicyDocument::parse_as(text, Kind::KeyPolicy)
    }

    /// Parses and validates an IAM identity policy: statements without
    /// `Principal` (MalformedPolicyDocument otherwise).
    pub fn parse_identity(text: &str) -> Result<PolicyDocument> {
        PolicyDocument::parse_as(text, Kind::IdentityPolicy)
    }

    fn parse_as(text: &str, kind: Kind) -> Result<PolicyDocument> {
        let what = match kind {
            Kind::KeyPolicy => "key policy",
            Kind::IdentityPolicy => "identity policy",
        };
        let malformed = |m: String| KmsError::MalformedPolicyDocument(m);
        let doc: PolicyDocument = serde_json::from_str(text)
            .map_err(|e| malformed(format!("The {what} is not valid: {e}")))?;
        if doc.statement.is_empty() {
            return Err(malformed(format!("The {what} has no statement")));
        }
        for st in &doc.statement {
            match (&st.principal, kind) {
                (None, Kind::KeyPolicy) => {
                    return Err(malformed(
                        "Every key policy statement needs a Principal".into(),
                    ));
                }
                (Some(_), Kind::IdentityPolicy) => {
                    return Err(malformed(
                        "An identity policy statement has no Principal (it applies to the user or group it is attached to)".into(),
                    ));
                }
                (Some(Principal::Any(s)), _) if s != "*" => {
                    return Err(malformed(format!(
                        "Principal must be \"*\" or an object with AWS, Service, User and/or Group, not {s:?}"
                    )));
                }
                _ => {}
            }
            let actions = match (&st.action, &st.not_action) {
                (Some(a), None) | (None, Some(a)) => a,
                _ => {
                    return Err(malformed(
                        "A statement needs exactly one of Action and NotAction".into(),
                    ));
                }
            };
            for action in actions.items() {
                if !action.to_ascii_lowercase().starts_with("kms:") && action != "*" {
                    return Err(malformed(format!("Action {action:?} is not a kms: action")));
                }
            }
            if st.resource.is_some() && st.not_resource.is_some() {
                return Err(malformed(
                    "A statement has at most one of Resource and NotResource".into(),
                ));
            }
            if let Some(c) = &st.condition {
                condition::validate(c)?;
            }
        }
        Ok(doc)
    }

    /// The default policy of a key `creator` makes in `account`: the
    /// creator's uid (as [`PolicyDocument::default_for`]) for a local
    /// identity, the IAM user's ARN for an IAM principal with no uid.
    pub fn default_for_caller(creator: &Caller, account: &str) -> PolicyDocument {
        match &creator.iam_user {
            Some(name) if !creator.has_uid() => PolicyDocument::default_granting(NamedPrincipals {
                aws: Some(OneOrMany::Many(vec![user_arn(account, name)])),
                ..Default::default()
            }),
            _ => PolicyDocument::default_for(creator.uid),
        }
    }

    /// The default policy of a new key: its creator may do everything, as
    /// AWS's default policy lets the account do everything.
    pub fn default_for(creator_uid: u32) -> PolicyDocument {
        PolicyDocument::default_granting(NamedPrincipals {
            user: Some(OneOrMany::Many(vec![creator_uid.to_string()])),
            ..Default::default()
        })
    }

    /// A default policy giving `creator` `kms:*`.
    fn default_granting(creator: NamedPrincipals) -> PolicyDocument {
        PolicyDocument {
            version: default_version(),
            id: Some("key-default-1".into()),
            statement: vec![Statement {
                sid: Some("Enable full access for the key's creator".into()),
                effect: Effect::Allow,
                principal: Some(Principal::Named(creator)),
                action: Some(OneOrMany::One("kms:*".into())),
                not_action: None,
                resource: Some(OneOrMany::One("*".into())),
                not_resource: None,
                condition: None,
            }],
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Whether `caller` may perform `action` (e.g. "kms:Encrypt"), by a
    /// statement that names it directly and has no condition on the
    /// request (tests, and callers without request facts).
    pub fn allows(&self, caller: &Caller, action: &str) -> bool {
        let facts = RequestFacts {
            action,
            resource: "*",
            ..Default::default()
        };
        self.decide(&Who {
            caller,
            facts: &facts,
            iam_group: &|_| false,
            identity: &|| Decision::NotAllowed,
        }) == Decision::Allow
    }

    /// The key policy's decision on a request, as AWS evaluates it: an
    /// applicable Deny wins (one naming the account applies to everyone of
    /// it); an Allow naming the caller allows; an Allow naming the account
    /// allows when the caller's IAM identity policies allow, and their
    /// explicit Deny denies.
    pub fn decide(&self, who: &Who) -> Decision {
        let mut allowed = false;
        let mut delegated = false;
        for st in &self.statement {
            let m = st
                .principal
                .as_ref()
                .map_or(PrincipalMatch::No, |p| p.matches(who));
            if m == PrincipalMatch::No || !st.covers(who.facts) {
                continue;
            }
            match (st.effect, m) {
                (Effect::Deny, _) => return Decision::Deny,
                (Effect::Allow, PrincipalMatch::Direct) => allowed = true,
                (Effect::Allow, _) => delegated = true,
            }
        }
        if delegated {
            match (who.identity)() {
                Decision::Deny => return Decision::Deny,
                Decision::Allow => allowed = true,
                Decision::NotAllowed => {}
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NotAllowed
        }
    }

    /// An identity policy's decision on a request (its statements have no
    /// principal: they are about whoever the policy is attached to).
    pub fn decide_identity(&self, facts: &RequestFacts) -> Decision {
        let applicable = |effect: Effect| {
            self.statement
                .iter()
                .any(|st| st.effect == effect && st.covers(facts))
        };
        if applicable(Effect::Deny) {
            Decision::Deny
        } else if applicable(Effect::Allow) {
            Decision::Allow
        } else {
            Decision::NotAllowed
        }
    }
}

/// The combined decision of several identity policies (a user's own and
/// its groups'): any Deny, else any Allow.
pub fn combine(decisions: impl IntoIterator<Item = Decision>) -> Decision {
    let mut out = Decision::NotAllowed;
    for d in decisions {
        match d {
            Decision::Deny => return Decision::Deny,
            Decision::Allow => out = Decision::Allow,
            Decision::NotAllowed => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, groups: &[u32]) -> Caller {
        Caller {
            uid,
            gid: 60000,
            groups: groups.to_vec(),
            iam_user: None,
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
