//! A small IAM: users (IAM principals named by ARN, each one optionally
//! standing for the local Unix user of its name), groups, and
//! access keys (an `AKIA…` id and a secret) that sign requests to
//! `kmsfs kms serve` with AWS Signature Version 4.
//!
//! The IAM data lives inside the sealed key store (field `iam` of the store's
//! JSON, see docs/FORMAT.md "IAM store"), so secret access keys are sealed
//! under the store's root key like the CMKs, and IAM changes share the
//! store's locking and crash safety. A secret is shown once, by
//! CreateAccessKey; nothing prints it afterwards.
//!
//! Key policies name IAM users by ARN, and Unix users and groups by name or
//! id; an IAM group is matched by name against the policy's `Group`
//! principals, for the IAM user of a signed request or the Unix-backed IAM
//! user of a local caller.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngExt;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::clock::Timestamp;
use super::error::{KmsError, Result};
use super::policy::{Caller, Decision, PolicyDocument, RequestFacts, combine};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IamData {
    #[serde(default)]
    pub users: BTreeMap<String, IamUser>,
    #[serde(default)]
    pub groups: BTreeMap<String, IamGroup>,
    /// Access key id → key.
    #[serde(default)]
    pub access_keys: BTreeMap<String, AccessKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IamUser {
    pub user_id: String,
    pub created: Timestamp,
    /// Whether the user stands for the local Unix user of its name (its
    /// signed requests act as that uid and its groups). Decided when the
    /// user is made, so a Unix account created later under the same name
    /// gains nothing. Stores written before IAM users could be anything else
    /// lack the field: all of theirs were Unix users.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub unix_user: bool,
    /// Inline identity policies: name → policy document (JSON text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Whether a new IAM user stands for the local Unix user of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixLink {
    /// If there is one (what `kmsfs iam create-user` does by default).
    IfExists,
    /// Never: an IAM principal only, whatever Unix accounts exist.
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IamGroup {
    pub group_id: String,
    pub created: Timestamp,
    pub members: BTreeSet<String>,
    /// Inline identity policies: name → policy document (JSON text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct AccessKey {
    pub user_name: String,
    pub secret: Zeroizing<String>,
    /// "Active" or "Inactive".
    pub status: String,
    pub created: Timestamp,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("user_name", &self.user_name)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// IAM's quota on one user's inline policies (bytes of each document).
pub const MAX_INLINE_POLICY_BYTES: usize = 2048 * 5;

/// Who holds an inline policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyHolder {
    User,
    Group,
}

impl PolicyHolder {
    fn as_str(self) -> &'static str {
        match self {
            PolicyHolder::User => "user",
            PolicyHolder::Group => "group",
        }
    }
}

/// At most two access keys per user, as IAM.
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(prefix: &str, alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    let mut s = String::from(prefix);
    for _ in 0..len {
        s.push(alphabet[rng.random_range(0..alphabet.len())] as char);
    }
    s
}

fn no_such_entity(what: &str, name: &str) -> KmsError {
    KmsError::NotFound(format!("The {what} with name {name} cannot be found."))
}

fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at '{kind}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )))
    }
}

/// The Unix account an IAM user stands for.
pub fn unix_user(name: &str) -> Result<nix::unistd::User> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u),
        _ => Err(KmsError::Validation(format!(
            "IAM user {name} must be the name of a local Unix user (kmsfs maps IAM users to Unix users by name)"
        ))),
    }
}

pub use super::policy::user_arn;

/// The Caller of a request signed by `user_name`'s access key. A user that
/// stands for a Unix user (`unix_user`) acts as its uid, primary gid and
/// supplementary groups; any other is an IAM principal alone
/// ([`Caller::iam_only`]).
pub fn caller_for_user(user_name: &str, unix_user: bool) -> Result<Caller> {
    if !unix_user {
        return Ok(Caller::iam_only(user_name));
    }
    let u = self::unix_user(user_name)?;
    let cname = std::ffi::CString::new(user_name)
        .map_err(|_| KmsError::Validation("user name holds a NUL byte".into()))?;
    let groups = nix::unistd::getgrouplist(&cname, u.gid)
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    Ok(Caller {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
        groups,
        iam_user: Some(user_name.to_string()),
        // Set by the server from the request's credential scope.
        region: None,
    })
}

impl IamData {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty() && self.access_keys.is_empty()
    }

    pub fn create_user(&mut self, name: &str, now: Timestamp, link: UnixLink) -> Result<&IamUser> {
        validate_name("userName", name)?;
        let unix_user = link == UnixLink::IfExists && unix_user(name).is_ok();
        if self.users.contains_key(name) {
            return Err(KmsError::AlreadyExists(format!(
                "User with name {name} already exists."
            )));
        }
        self.users.insert(
            name.to_string(),
            IamUser {
                user_id: random_string("AIDA", ID_ALPHABET, 17),
                created: now,
                unix_user,
                policies: BTreeMap::new(),
            },
        );
        Ok(&self.users[name])
    }

    /// Refused while the user still has access keys (DeleteConflict in IAM).
    pub fn delete_user(&mut self, name: &str) -> Result<()> {
        if !self.users.contains_key(name) {
            return Err(no_such_entity("user", name));
        }
        if self.access_keys.values().any(|k| k.user_name == name) {
            return Err(KmsError::InvalidState(format!(
                "Cannot delete entity, must delete access keys first. (user {name})"
            )));
        }
        if !self.users[name].policies.is_empty() {
            return Err(KmsError::InvalidState(format!(
                "Cannot delete entity, must delete policies first. (user {name})"
            )));
        }
        self.users.remove(name);
        for g in self.groups.values_mut() {
            g.members.remove(name);
        }
        Ok(())
    }

    pub fn create_group(&mut self, name: &str, now: Timestamp) -> Result<&IamGroup> {
        validate_name("groupName", name)?;
        if self.groups.contains_key(name) {
            return Err(KmsError::AlreadyExists(format!(
                "Group with name {name} already exists."
            )));
        }
        self.groups.insert(
            name.to_string(),
            IamGroup {
                group_id: random_string("AGPA", ID_ALPHABET, 17),
                created: now,
                members: BTreeSet::new(),
                policies: BTreeMap::new(),
            },
        );
        Ok(&self.groups[name])
    }

    pub fn delete_group(&mut self, name: &str) -> Result<()> {
        let g = self
            .groups
            .get(name)
            .ok_or_else(|| no_such_entity("group", name))?;
        if !g.policies.is_empty() {
            return Err(KmsError::InvalidState(format!(
                "Cannot delete entity, must delete policies first. (group {name})"
            )));
        }
        self.groups.remove(name);
        Ok(())
    }

    /// The inline policies of user or group `name`.
    fn policies(&self, kind: PolicyHolder, name: &str) -> Result<&BTreeMap<String, String>> {
        let found = match kind {
            PolicyHolder::User => self.users.get(name).map(|u| &u.policies),
            PolicyHolder::Group => self.groups.get(name).map(|g| &g.policies),
        };
        found.ok_or_else(|| no_such_entity(kind.as_str(), name))
    }

    /// [`IamData::policies`], for changing them.
    fn policies_mut(
        &mut self,
        kind: PolicyHolder,
        name: &str,
    ) -> Result<&mut BTreeMap<String, String>> {
        let found = match kind {
            PolicyHolder::User => self.users.get_mut(name).map(|u| &mut u.policies),
            PolicyHolder::Group => self.groups.get_mut(name).map(|g| &mut g.policies),
        };
        found.ok_or_else(|| no_such_entity(kind.as_str(), name))
    }

    /// PutUserPolicy / PutGroupPolicy: adds or replaces an inline identity
    /// policy, after checking it as one (MalformedPolicyDocument).
    pub fn put_policy(
        &mut self,
        kind: PolicyHolder,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<()> {
        validate_name("policyName", policy_name)?;
        if document.len() > MAX_INLINE_POLICY_BYTES {
            return Err(KmsError::LimitExceeded(format!(
                "Maximum policy size of {MAX_INLINE_POLICY_BYTES} bytes exceeded for {} {name}",
                kind.as_str()
            )));
        }
        PolicyDocument::parse_identity(document)?;
        self.policies_mut(kind, name)?
            .insert(policy_name.to_string(), document.to_string());
        Ok(())
    }

    /// GetUserPolicy / GetGroupPolicy: the document of one inline policy.
    pub fn get_policy(&self, kind: PolicyHolder, name: &str, policy_name: &str) -> Result<String> {
        self.policies(kind, name)?
            .get(policy_name)
            .cloned()
            .ok_or_else(|| no_such_entity("policy", policy_name))
    }

    pub fn delete_policy(
        &mut self,
        kind: PolicyHolder,
        name: &str,
        policy_name: &str,
    ) -> Result<()> {
        self.policies_mut(kind, name)?
            .remove(policy_name)
            .map(|_| ())
            .ok_or_else(|| no_such_entity("policy", policy_name))
    }

    pub fn list_policies(&self, kind: PolicyHolder, name: &str) -> Result<Vec<String>> {
        Ok(self.policies(kind, name)?.keys().cloned().collect())
    }

    /// The decision of the identity policies of IAM user `user` and of the
    /// groups it is in on a request. A user kmsfs's IAM does not know has
    /// no identity policies.
    pub fn identity_decision(&self, user: &str, facts: &RequestFacts) -> Decision {
        let Some(u) = self.users.get(user) else {
            return Decision::NotAllowed;
        };
        let groups = self
            .groups
            .values()
            .filter(|g| g.members.contains(user))
            .flat_map(|g| g.policies.values());
        // Documents were checked when put; one that no longer parses (a
        // newer build's) allows nothing.
        combine(u.policies.values().chain(groups).map(|text| {
            PolicyDocument::parse_identity(text)
                .map_or(Decision::NotAllowed, |doc| doc.decide_identity(facts))
        }))
    }

    pub fn add_user_to_group(&mut self, group: &str, user: &str) -> Result<()> {
        if !self.users.contains_key(user) {
            return Err(no_such_entity("user", user));
        }
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| no_such_entity("group", group))?;
        g.members.insert(user.to_string());
        Ok(())
    }

    pub fn remove_user_from_group(&mut self, group: &str, user: &str) -> Result<()> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| no_such_entity("group", group))?;
        if !g.members.remove(user) {
            return Err(no_such_entity("user", user));
        }
        Ok(())
    }

    /// A new key: (id, secret). The secret is returned this once.
    pub fn create_access_key(
        &mut self,
        user: &str,
        now: Timestamp,
    ) -> Result<(String, Zeroizing<String>)> {
        if !self.users.contains_key(user) {
            return Err(no_such_entity("user", user));
        }
        if self
            .access_keys
            .values()
            .filter(|k| k.user_name == user)
            .count()
            >= MAX_ACCESS_KEYS_PER_USER
        {
            return Err(KmsError::LimitExceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}"
            )));
        }
        let id = random_string("AKIA", ID_ALPHABET, 16);
        let secret = Zeroizing::new(random_string("", SECRET_ALPHABET, 40));
        self.access_keys.insert(
            id.clone(),
            AccessKey {
                user_name: user.to_string(),
                secret: secret.clone(),
                status: "Active".into(),
                created: now,
            },
        );
        Ok((id, secret))
    }

    pub fn delete_access_key(&mut self, id: &str, user: Option<&str>) -> Result<()> {
        match self.access_keys.get(id) {
            Some(k) if user.is_none_or(|u| u == k.user_name) => {
                self.access_keys.remove(id);
                Ok(())
            }
            _ => Err(KmsError::NotFound(format!(
                "The Access Key with id {id} cannot be found."
            ))),
        }
    }

    pub fn set_access_key_status(&mut self, id: &str, status: &str) -> Result<()> {
        if status != "Active" && status != "Inactive" {
            return Err(KmsError::Validation(format!(
                "Status must be Active or Inactive, not {status}"
            )));
        }
        let k = self.access_keys.get_mut(id).ok_or_else(|| {
            KmsError::NotFound(format!("The Access Key with id {id} cannot be found."))
        })?;
        k.status = status.into();
        Ok(())
    }

    /// The user and secret of an active access key.
    pub fn active_key(&self, id: &str) -> Option<(&str, &str)> {
        self.access_keys
            .get(id)
            .filter(|k| k.status == "Active")
            .map(|k| (k.user_name.as_str(), k.secret.as_str()))
    }

    /// The IAM ARN that names `caller` in policies and grants:
    /// `arn:aws:iam::ACCOUNT:user/NAME` for the IAM user a signed request
    /// came from, else for the Unix user NAME of its uid (the ARN a local
    /// caller has as the IAM user of its name). None for a uid without a
    /// user name, and for a local user whose name an IAM-only user holds:
    /// that ARN is the IAM user's, and a Unix account of the same name must
    /// not take its grants or policies.
    pub fn principal_arn(&self, account: &str, caller: &Caller) -> Option<String> {
        if let Some(name) = &caller.iam_user {
            return Some(user_arn(account, name));
        }
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(caller.uid)).ok()??;
        if self.users.get(&user.name).is_some_and(|u| !u.unix_user) {
            return None;
        }
        Some(user_arn(account, &user.name))
    }

    /// Whether IAM user `name` stands for the Unix user of its name.
    pub fn is_unix_user(&self, name: &str) -> bool {
        self.users.get(name).is_some_and(|u| u.unix_user)
    }

    /// Whether `caller` is a member of IAM group `group`: as the IAM user
    /// that signed its request, or, for a local caller, as the Unix-backed
    /// IAM user of its uid.
    pub fn caller_in_group(&self, caller: &Caller, group: &str) -> bool {
        let Some(g) = self.groups.get(group) else {
            return false;
        };
        if let Some(name) = &caller.iam_user {
            return g.members.contains(name);
        }
        caller.has_uid()
            && g.members.iter().any(|name| {
                self.is_unix_user(name)
                    && matches!(nix::unistd::User::from_name(name), Ok(Some(u)) if u.uid.as_raw() == caller.uid)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_groups_and_keys() {
        let mut iam = IamData::default();
        assert!(iam.create_user("bad name", 1, UnixLink::IfExists).is_err());
        iam.create_user("root", 1, UnixLink::IfExists).unwrap();
        assert!(iam.is_unix_user("root"));
        assert!(matches!(
            iam.create_user("root", 1, UnixLink::IfExists),
            Err(KmsError::AlreadyExists(_))
        ));
        iam.create_group("kmsadmins", 1).unwrap();
        iam.add_user_to_group("kmsadmins", "root").unwrap();
        let local = |uid| Caller {
            uid,
            gid: uid,
            groups: vec![],
            iam_user: None,
            region: None,
        };
        assert!(iam.caller_in_group(&local(0), "kmsadmins"));
        assert!(!iam.caller_in_group(&local(1), "kmsadmins"));
        assert!(!iam.caller_in_group(&local(0), "other"));

        // A user who is no Unix account is its own principal; one named like
        // a Unix account but made IAM-only does not take that account's uid,
        // nor does the account take the IAM user's name.
        iam.create_user("no-such-unix-user-xyz", 1, UnixLink::IfExists)
            .unwrap();
        assert!(!iam.is_unix_user("no-such-unix-user-xyz"));
        let c = caller_for_user("no-such-unix-user-xyz", false).unwrap();
        assert_eq!((c.uid, c.has_uid()), (Caller::NO_UID, false));
        assert_eq!(
            iam.principal_arn("111122223333", &c).as_deref(),
            Some("arn:aws:iam::111122223333:user/no-such-unix-user-xyz")
        );
        iam.create_user("daemon", 1, UnixLink::Never).unwrap();
        assert!(!iam.is_unix_user("daemon"));
        assert_eq!(iam.principal_arn("111122223333", &local(1)), None);
        iam.add_user_to_group("kmsadmins", "daemon").unwrap();
        assert!(!iam.caller_in_group(&local(1), "kmsadmins"));
        assert!(iam.caller_in_group(&Caller::iam_only("daemon"), "kmsadmins"));

        let (id, secret) = iam.create_access_key("root", 1).unwrap();
        assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
        assert_eq!(secret.len(), 40);
        assert_eq!(iam.active_key(&id), Some(("root", secret.as_str())));
        iam.create_access_key("root", 1).unwrap();
        assert!(matches!(
            iam.create_access_key("root", 1),
            Err(KmsError::LimitExceeded(_))
        ));
        assert!(iam.delete_user("root").is_err());
        iam.set_access_key_status(&id, "Inactive").unwrap();
        assert_eq!(iam.active_key(&id), None);
        let ids: Vec<String> = iam.access_keys.keys().cloned().collect();
        for id in ids {
            iam.delete_access_key(&id, Some("root")).unwrap();
        }
        iam.delete_user("root").unwrap();
        assert!(!iam.caller_in_group(&local(0), "kmsadmins"));
        let round: IamData = serde_json::from_str(&serde_json::to_string(&iam).unwrap()).unwrap();
        assert_eq!(
            round.users.keys().collect::<Vec<_>>(),
            ["daemon", "no-such-unix-user-xyz"]
        );
        assert!(!round.is_unix_user("daemon") && !round.is_unix_user("no-such-unix-user-xyz"));
        // A user stored before the field existed was a Unix user.
        let old: IamData =
            serde_json::from_str(r#"{"users": {"bin": {"user_id": "AIDAX", "created": 1}}}"#)
                .unwrap();
        assert!(old.is_unix_user("bin"));
    }

    #[test]
    fn caller_of_a_unix_user() {
        let c = caller_for_user("root", true).unwrap();
        assert_eq!(c.uid, 0);
        assert_eq!(c.gid, 0);
    }
}
