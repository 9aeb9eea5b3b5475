//! `LocalKms`: the embedded key management service. Every AWS KMS operation
//! the CLI offers, over the on-disk key store, with the key policy checked for
//! the caller, the key state rules of AWS, and an audit record of each call.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;
use zeroize::Zeroizing;

use super::audit::{AuditEvent, AuditLog};
use super::blob::{self, BlobHeader, EncryptionContext, MAX_PLAINTEXT};
use super::clock::Clock;
use super::error::{KmsError, Result};
use super::grants::Grant;
use super::keyspec::{KeySpec, KeyUsage};
use super::material::{KeyMaterial, SecretBytes, random_nonce};
use super::model::{
    Alias, Key, KeyState, KeyVersion, Origin, PendingImport, RotationType, SECONDS_PER_DAY,
    StoreData, Tag, Timestamp, validate_alias_name,
};
use super::policy::{Caller, Decision, PolicyDocument, RequestFacts, Who};
use super::protocol::Operation;
use super::protocol::operation::{RE_ENCRYPT_FROM, RE_ENCRYPT_TO};
use super::store::{KeyStore, RootSecret};
use super::{DataKeyPair, Decrypted, KeyDescription, KeyService, Wrapped};

// The operations added for kmsfs issue 12, each family in its own file, as
// further `impl LocalKms` blocks with access to the helpers here.
mod asymmetric_ops;
mod custom_key_stores;
mod dry_run;
mod grants;
mod key_admin;
mod multi_region;
mod tags;
mod usage;

pub use custom_key_stores::not_found as custom_key_store_not_found;
pub use dry_run::DRY_RUN_MESSAGE;
pub use grants::{CreateGrantInput, GrantInfo};
pub use key_admin::LastUsageInfo;
pub use multi_region::{MultiRegionInfo, ReplicaInfo, ReplicateKeyInput};
pub use tags::{MAX_TAGS_PER_KEY, validate_tags};

pub use asymmetric_ops::{DataKeyPairInfo, PublicKeyInfo, ReEncryptSide, rsa_encryption};

/// What an operation tells the audit log about itself as it goes.
#[derive(Default)]
struct Trail {
    key_id: Option<String>,
    key_version: Option<u32>,
    /// The keys whose material the call used, for GetKeyLastUsage.
    used: Vec<Uuid>,
}

pub struct CreateKeyInput {
    pub description: String,
    pub origin: Origin,
    /// Empty when the request has none: ENCRYPT_DECRYPT for a symmetric
    /// key, refused for any other spec (AWS requires it there).
    pub key_usage: String,
    pub key_spec: String,
    pub tags: Vec<(String, String)>,
    pub policy: Option<String>,
    pub bypass_policy_lockout_safety_check: bool,
    /// A multi-Region primary key (id `mrk-…`), to replicate with ReplicateKey.
    pub multi_region: bool,
}

impl Default for CreateKeyInput {
    fn default() -> Self {
        CreateKeyInput {
            description: String::new(),
            origin: Origin::AwsKms,
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            tags: vec![],
            policy: None,
            bypass_policy_lockout_safety_check: false,
            multi_region: false,
        }
    }
}

/// A snapshot of a key's metadata, as DescribeKey reports it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key id as AWS shows it: a UUID, or `mrk-…` for a multi-Region key.
    pub key_id: String,
    pub arn: String,
    pub account: String,
    pub description: String,
    pub creation_date: Timestamp,
    pub state: KeyState,
    pub origin: Origin,
    pub deletion_date: Option<Timestamp>,
    pub pending_window_days: Option<u32>,
    pub current_version: Option<u32>,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
    /// MultiRegionConfiguration; None for a single-Region key.
    pub multi_region: Option<MultiRegionInfo>,
}

#[derive(Debug, Clone)]
pub struct AliasInfo {
    pub name: String,
    pub arn: String,
    /// The target's key id (a UUID, or `mrk-…`).
    pub target: String,
    pub created: Timestamp,
    pub updated: Timestamp,
}

#[derive(Debug, Clone)]
pub struct RotationStatus {
    pub arn: String,
    pub enabled: bool,
    pub period_days: Option<u32>,
    pub next_rotation: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct RotationInfo {
    pub arn: String,
    pub version: u32,
    pub date: Timestamp,
    pub kind: RotationType,
}

pub struct ImportParameters {
    pub arn: String,
    pub import_token: Vec<u8>,
    /// DER SubjectPublicKeyInfo of the RSA wrapping key.
    pub public_key: Vec<u8>,
    pub valid_to: Timestamp,
}

pub struct LocalKms {
    store: Mutex<KeyStore>,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    /// Last cryptographic use per key, in memory until the next store write
    /// (see local/usage.rs for why).
    usage: usage::UsageTracker,
    /// The Unix user who owns the store and may do account-level operations
    /// without an identity policy (besides root); see [`check_account_level`].
    owner_uid: u32,
    /// The store's AWS account id, fixed when the store was created.
    account: String,
    /// Most keys one region of the store may hold (see [`check_key_quota`]).
    key_quota: usize,
}

/// AWS's default quota of KMS keys per account and region.
pub const DEFAULT_KEY_QUOTA: usize = 100_000;

/// Refuses a new key in `region` once it holds `quota` keys (every key
/// counts, pending deletion included, as at AWS): the store is rewritten
/// whole on every change, so an unbounded number of keys would make every
/// change, and every reader's reload, slower for everyone.
fn check_key_quota(data: &StoreData, region: &str, quota: usize) -> Result<()> {
    let held = data.keys.values().filter(|k| k.region == region).count();
    if held >= quota {
        return Err(KmsError::LimitExceeded(format!(
            "The request was rejected because it would exceed the quota of {quota} KMS keys in region {region} of this account"
        )));
    }
    Ok(())
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms").finish_non_exhaustive()
    }
}

fn info(data: &StoreData, key: &Key) -> KeyInfo {
    KeyInfo {
        key_id: key.public_id(),
        arn: data.key_arn(&key.key_id),
        account: data.account.clone(),
        description: key.description.clone(),
        creation_date: key.creation_date,
        state: key.state,
        origin: key.origin,
        deletion_date: key.deletion_date,
        pending_window_days: key.pending_window_days,
        current_version: key.current_version().map(|v| v.version),
        key_spec: key.key_spec,
        key_usage: key.key_usage,
        multi_region: multi_region::configuration(data, key),
    }
}

fn policy_of(key: &Key) -> Result<&PolicyDocument> {
    key.policy_document()
}

/// The key `key_id` names in the caller's region, once the caller may do
/// `action` with it and its state lets it be used: the first steps of every
/// cryptographic operation. The trail names the key from here on, so a
/// refusal is audited against it.
fn usable_key<'d>(
    data: &'d StoreData,
    caller: &Caller,
    key_id: &str,
    action: &str,
    ctx: Option<&EncryptionContext>,
    trail: &mut Trail,
) -> Result<(Uuid, String, &'d Key)> {
    let id = data.resolve(caller.region.as_deref(), key_id)?;
    let arn = data.key_arn(&id);
    trail.key_id = Some(arn.clone());
    let key = data.key(&id)?;
    check_in_context(data, key, caller, action, ctx)?;
    key.require_usable(&arn)?;
    Ok((id, arn, key))
}

/// Whether `caller` may do `action` with `key`, in a request that carries
/// no encryption context.
fn check(data: &StoreData, key: &Key, caller: &Caller, action: &str) -> Result<()> {
    check_in_context(data, key, caller, action, None)
}

/// The key policy's decision on `caller` doing `action` with `key` in a
/// request whose encryption context is `ctx`, the caller's IAM identity
/// policies consulted where the key policy hands the decision to the
/// account.
fn key_policy_decision(
    data: &StoreData,
    key: &Key,
    caller: &Caller,
    action: &str,
    ctx: Option<&EncryptionContext>,
) -> Result<Decision> {
    let resource = data.key_arn(&key.key_id);
    Ok(policy_decision(
        data,
        policy_of(key)?,
        &resource,
        Some(key),
        caller,
        action,
        ctx,
    ))
}

/// `doc`'s decision on a request for `resource` (a key's ARN, or `*`).
fn policy_decision(
    data: &StoreData,
    doc: &PolicyDocument,
    resource: &str,
    key: Option<&Key>,
    caller: &Caller,
    action: &str,
    ctx: Option<&EncryptionContext>,
) -> Decision {
    let principal = data.iam.principal_arn(&data.account, caller);
    let facts = RequestFacts {
        action,
        resource,
        account: &data.account,
        principal_arn: principal.as_deref(),
        encryption_context: ctx,
        region: caller.region.as_deref().or(key.map(|k| k.region.as_str())),
        key_spec: key.map(|k| k.key_spec.as_str()),
        key_usage: key.map(|k| k.key_usage.as_str()),
        key_origin: key.map(|k| k.origin.as_str()),
    };
    // Unix root is the account's root user: as at AWS, a key policy that
    // names the account lets its root user in without any identity policy
    // (and a policy that names neither keeps root out like anyone else).
    let identity = || {
        if caller.uid == 0 {
            Decision::Allow
        } else {
            identity_policies(data, &facts)
        }
    };
    doc.decide(&Who {
        caller,
        facts: &facts,
        iam_group: &|group| data.iam.caller_in_group(caller, group),
        identity: &identity,
    })
}

/// Whether `caller` may do `action` with `key` in a request whose
/// encryption context is `ctx`: the key policy, then the key's grants.
fn check_in_context(
    data: &StoreData,
    key: &Key,
    caller: &Caller,
    action: &str,
    ctx: Option<&EncryptionContext>,
) -> Result<()> {
    check_policy_or_grants(data, key, caller, action, ctx, &|grant, principal| {
        grant.allows(principal, action, ctx)
    })
}

/// The key policy's decision on `caller` doing `action`, and when it
/// neither allows nor denies, whether a grant of the key that `granted`
/// accepts (given the caller's principal ARN) allows it. An explicit Deny
/// of the policy wins over every grant, as in AWS's policy evaluation; a
/// grant only adds permissions.
fn check_policy_or_grants(
    data: &StoreData,
    key: &Key,
    caller: &Caller,
    action: &str,
    ctx: Option<&EncryptionContext>,
    granted: &dyn Fn(&Grant, &str) -> bool,
) -> Result<()> {
    let arn = data.key_arn(&key.key_id);
    match key_policy_decision(data, key, caller, action, ctx)? {
        Decision::Allow => Ok(()),
        Decision::Deny => Err(KmsError::AccessDenied(format!(
            "User {} is not authorized to perform: {action} on resource: {arn} with an explicit deny in the key policy",
            caller_name(data, caller)
        ))),
        Decision::NotAllowed => {
            let principal = data.iam.principal_arn(&data.account, caller);
            if principal
                .as_deref()
                .is_some_and(|p| key.grants.iter().any(|g| granted(g, p)))
            {
                Ok(())
            } else {
                Err(KmsError::AccessDenied(format!(
                    "User {} is not authorized to perform: {action} on resource: {arn} because no key policy statement or grant allows it",
                    caller_name(data, caller)
                )))
            }
        }
    }
}

/// What the identity policies of the IAM user that `facts` names (by its
/// principal ARN) decide; nothing is allowed to a caller with no IAM user.
fn identity_policies(data: &StoreData, facts: &RequestFacts) -> Decision {
    facts
        .principal_arn
        .and_then(|p| p.rsplit_once(":user/"))
        .map_or(Decision::NotAllowed, |(_, user)| {
            data.iam.identity_decision(user, facts)
        })
}

/// How refusals name `caller`: `uid:N` for a local identity (what the audit
/// log's callerUid shows), the ARN for an IAM principal with no uid.
pub(crate) fn caller_name(data: &StoreData, caller: &Caller) -> String {
    match data.iam.principal_arn(&data.account, caller) {
        Some(arn) if !caller.has_uid() => arn,
        _ => format!("uid:{}", caller.uid),
    }
}

/// Whether `caller` may do the account-level `action` (one that names no
/// key: CreateKey, ListKeys, GenerateRandom, …). No key policy speaks for
/// these, so, as at AWS, an identity policy must allow it on `*` — except
/// for the store's owners: Unix root (the account's root user) and
/// `owner_uid` (by default the user the process holding the store runs as:
/// an embedded store's owner, or `kms serve`'s). Everyone else, a local
/// user on the socket included, needs an IAM user of their name with a
/// policy allowing the action.
fn check_account_level(
    data: &StoreData,
    owner_uid: u32,
    caller: &Caller,
    action: &str,
) -> Result<()> {
    if caller.uid == 0 || caller.uid == owner_uid {
        return Ok(());
    }
    let principal = data.iam.principal_arn(&data.account, caller);
    let facts = RequestFacts {
        action,
        resource: "*",
        account: &data.account,
        principal_arn: principal.as_deref(),
        encryption_context: None,
        region: caller.region.as_deref(),
        key_spec: None,
        key_usage: None,
        key_origin: None,
    };
    let decision = identity_policies(data, &facts);
    let who = principal.unwrap_or_else(|| format!("uid:{}", caller.uid));
    match decision {
        Decision::Allow => Ok(()),
        Decision::Deny => Err(KmsError::AccessDenied(format!(
            "User: {who} is not authorized to perform: {action} with an explicit deny in an identity-based policy"
        ))),
        Decision::NotAllowed => Err(KmsError::AccessDenied(format!(
            "User: {who} is not authorized to perform: {action} because no identity-based policy allows the {action} action"
        ))),
    }
}

/// Where the audit log of the store at `path` goes: beside a file store;
/// for a PostgreSQL store, KMSFS_AUDIT_LOG or beside its root key file
/// (each replica keeps its own log of the calls it served).
fn audit_log_path(path: &Path, store: &KeyStore) -> PathBuf {
    let beside = |p: &Path| {
        let mut name = p.as_os_str().to_os_string();
        name.push(".audit.log");
        PathBuf::from(name)
    };
    if !store.is_shared_database() {
        return beside(path);
    }
    std::env::var_os("KMSFS_AUDIT_LOG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| super::store::root_key_file().map(|k| beside(&k)))
        .unwrap_or_else(|| beside(&super::store::default_store_path()))
}

impl LocalKms {
    /// Opens (or creates) the store at `path`; the audit log goes beside it.
    pub fn open(path: &Path, secret: &RootSecret, clock: Arc<dyn Clock>) -> Result<LocalKms> {
        // Read only when the store is created: later they are its settings.
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "local".into());
        let account = account_from_env()?;
        let store = KeyStore::open_or_create(path, secret, &region, &account)?;
        LocalKms::with_store(path, store, clock)
    }

    /// Opens the store at `path`, which must exist: for callers that name a
    /// store holding keys already (a volume's config), where a new, empty
    /// store would make every file look lost.
    pub fn open_existing(
        path: &Path,
        secret: &RootSecret,
        clock: Arc<dyn Clock>,
    ) -> Result<LocalKms> {
        let store = KeyStore::open(path, secret)?;
        LocalKms::with_store(path, store, clock)
    }

    fn with_store(path: &Path, store: KeyStore, clock: Arc<dyn Clock>) -> Result<LocalKms> {
        let audit_path = audit_log_path(path, &store);
        let account = store.data().account.clone();
        let kms = LocalKms {
            store: Mutex::new(store),
            audit: AuditLog::at(&audit_path),
            usage: usage::UsageTracker::new(clock.now()),
            clock,
            owner_uid: nix::unistd::geteuid().as_raw(),
            account,
            key_quota: DEFAULT_KEY_QUOTA,
        };
        // Rotation and deletion that came due while nobody had the store open.
        drop(kms.lock()?);
        Ok(kms)
    }

    /// Makes `uid` the store's owner: the Unix user who, besides root, may
    /// do account-level operations (CreateKey, ListKeys, …) without an
    /// identity policy. The default is the process's effective uid; a
    /// process serving a store on behalf of another user names that user.
    #[must_use]
    pub fn with_owner(mut self, uid: u32) -> LocalKms {
        self.owner_uid = uid;
        self
    }

    /// Limits each region of the store to `keys` keys (default
    /// [`DEFAULT_KEY_QUOTA`]); CreateKey and ReplicateKey beyond it are
    /// LimitExceededException.
    #[must_use]
    pub fn with_key_quota(mut self, keys: usize) -> LocalKms {
        self.key_quota = keys;
        self
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// Reads the IAM data (users, groups, access keys) of the store.
    pub fn iam_read<T>(&self, f: impl FnOnce(&super::iam::IamData) -> T) -> Result<T> {
        let store = self.lock()?;
        Ok(f(&store.data().iam))
    }

    /// Changes the IAM data under the store's write lock.
    pub fn iam_update<T>(
        &self,
        f: impl FnOnce(&mut super::iam::IamData, Timestamp) -> Result<T>,
    ) -> Result<T> {
        let mut store = self.lock()?;
        let now = self.clock.now();
        store.update(|data| f(&mut data.iam, now))
    }

    /// The region and account of the store's ARNs.
    pub fn region_and_account(&self) -> Result<(String, String)> {
        let store = self.lock()?;
        Ok((store.data().region.clone(), store.data().account.clone()))
    }

    /// The store, refreshed from disk and with due rotations and deletions
    /// applied.
    fn lock(&self) -> Result<MutexGuard<'_, KeyStore>> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| KmsError::Internal("key store lock poisoned".into()))?;
        store.refresh()?;
        let now = self.clock.now();
        if store.data().needs_maintenance(now) {
            let (destroyed, rotated) = store.update(|d| Ok(d.maintain(now)))?;
            for id in destroyed {
                self.system_event("DeleteKey", &store.data().key_arn(&id), None);
            }
            for id in rotated {
                let version = store
                    .data()
                    .key(&id)
                    .ok()
                    .and_then(|k| k.current_version())
                    .map(|v| v.version);
                self.system_event("RotateKey", &store.data().key_arn(&id), version);
            }
        }
        Ok(store)
    }

    fn system_event(&self, name: &str, arn: &str, version: Option<u32>) {
        self.audit.record(&AuditEvent {
            event_time: iso_now(self.clock.now()),
            caller_uid: Some(nix::unistd::getuid().as_raw()),
            caller_arn: None,
            event_name: name,
            key_id: Some(arn.to_string()),
            key_version: version,
            encryption_context: None,
            outcome: "Success",
            error_message: None,
        });
    }

    /// Runs one operation and records it in the audit log, whatever the outcome.
    fn run<T>(
        &self,
        caller: &Caller,
        op: Operation,
        key_hint: Option<&str>,
        ctx: Option<&EncryptionContext>,
        f: impl FnOnce(&mut Trail) -> Result<T>,
    ) -> Result<T> {
        let mut trail = Trail {
            key_id: key_hint.map(str::to_string),
            key_version: None,
            used: Vec::new(),
        };
        let mut out = f(&mut trail);
        if out.is_ok() {
            if dry_run::active() {
                // Authorized and validated: nothing more may come of it.
                out = Err(dry_run::would_have_succeeded());
            } else {
                self.usage.record(&trail.used, op, self.clock.now());
            }
        }
        let (outcome, error_message) = match &out {
            Ok(_) => ("Success", None),
            Err(e) => (e.code(), Some(e.message())),
        };
        let caller_arn = caller
            .iam_user
            .as_ref()
            .map(|name| super::iam::user_arn(&self.account, name));
        self.audit.record(&AuditEvent {
            event_time: iso_now(self.clock.now()),
            caller_uid: Some(caller.uid).filter(|_| caller.has_uid()),
            caller_arn,
            event_name: op.name(),
            key_id: trail.key_id,
            key_version: trail.key_version,
            encryption_context: ctx.filter(|c| !c.is_empty()),
            outcome,
            error_message,
        });
        out
    }

    /// [`check_account_level`] for `op` on the current store.
    fn account_level(&self, caller: &Caller, op: Operation) -> Result<()> {
        let store = self.lock()?;
        check_account_level(store.data(), self.owner_uid, caller, op.iam_action())
    }

    /// Checks a request before it reaches the store; a refused request is
    /// audited like any other call.
    fn precheck<T>(
        &self,
        caller: &Caller,
        op: Operation,
        key_hint: Option<&str>,
        check: Result<T>,
    ) -> Result<T> {
        match check {
            Ok(v) => Ok(v),
            Err(e) => self.run(caller, op, key_hint, None, |_| Err(e)),
        }
    }

    /// A read-only operation on one key (named by id, ARN or alias):
    /// resolve, check policy, then `f`.
    fn read_key<T>(
        &self,
        caller: &Caller,
        op: Operation,
        key_id: &str,
        f: impl FnOnce(&StoreData, &Key) -> Result<T>,
    ) -> Result<T> {
        self.read_key_named(caller, op, key_id, true, f)
    }

    /// [`LocalKms::read_key`], aliases refused (NotFound) unless `aliases`.
    fn read_key_named<T>(
        &self,
        caller: &Caller,
        op: Operation,
        key_id: &str,
        aliases: bool,
        f: impl FnOnce(&StoreData, &Key) -> Result<T>,
    ) -> Result<T> {
        self.run(caller, op, Some(key_id), None, |trail| {
            let store = self.lock()?;
            let data = store.data();
            let region = caller.region.as_deref();
            let id = if aliases {
                data.resolve(region, key_id)?
            } else {
                data.resolve_key_only(region, key_id)?
            };
            trail.key_id = Some(data.key_arn(&id));
            let key = data.key(&id)?;
            check(data, key, caller, op.iam_action())?;
            f(data, key)
        })
    }

    /// A management operation on one key: resolve, check policy and apply
    /// `f` under the store's write lock.
    fn change_key<T>(
        &self,
        caller: &Caller,
        op: Operation,
        key_id: &str,
        key_only: bool,
        f: impl FnOnce(&mut Key, Timestamp, &str) -> Result<T>,
    ) -> Result<T> {
        self.run(caller, op, Some(key_id), None, |trail| {
            let mut store = self.lock()?;
            let now = self.clock.now();
            store.update(|data| {
                let id = if key_only {
                    data.resolve_key_only(caller.region.as_deref(), key_id)?
                } else {
                    data.resolve(caller.region.as_deref(), key_id)?
                };
                let arn = data.key_arn(&id);
                trail.key_id = Some(arn.clone());
                check(data, data.key(&id)?, caller, op.iam_action())?;
                let key = data.key_mut(&id)?;
                let out = f(key, now, &arn)?;
                // A dry run writes nothing (the store discards a failed change).
                dry_run::refuse_write()?;
                self.usage.merge_into(data);
                Ok(out)
            })
        })
    }

    pub fn create_key(&self, caller: &Caller, input: CreateKeyInput) -> Result<KeyInfo> {
        self.run(caller, Operation::CreateKey, None, None, |trail| {
            self.account_level(caller, Operation::CreateKey)?;
            let usage = Some(input.key_usage.as_str()).filter(|u| !u.is_empty());
            let (key_spec, key_usage) = super::keyspec::key_type(&input.key_spec, usage)?;
            multi_region::check_creatable(input.multi_region, input.origin)?;
            if input.origin == Origin::External && !key_spec.is_symmetric_default() {
                return Err(KmsError::UnsupportedOperation(format!(
                    "kmsfs imports only symmetric key material: Origin EXTERNAL is not supported for KeySpec {key_spec}"
                )));
            }
            if input.description.len() > 8192 {
                return Err(KmsError::Validation(
                    "Description must be at most 8192 characters".into(),
                ));
            }
            let policy = match &input.policy {
                Some(text) => {
                    let doc = PolicyDocument::parse(text)?;
                    self.lockout_check(&doc, caller, input.bypass_policy_lockout_safety_check)?;
                    text.clone()
                }
                None => PolicyDocument::default_for_caller(caller, &self.account).to_json(),
            };
            let now = self.clock.now();
            let key_id = Uuid::new_v4();
            // Asymmetric and HMAC keys keep one private material and no
            // versions (they never rotate); made before the store is locked,
            // as RSA key generation takes a while.
            let private_material = if key_spec.is_symmetric_default() {
                None
            } else {
                Some(SecretBytes(super::asymmetric::generate(key_spec)?))
            };
            let (state, versions) = match input.origin {
                Origin::AwsKms if private_material.is_some() => (KeyState::Enabled, vec![]),
                Origin::AwsKms => (
                    KeyState::Enabled,
                    vec![KeyVersion {
                        version: 1,
                        created: now,
                        rotation_type: None,
                        material: KeyMaterial::random(),
                    }],
                ),
                Origin::External => (KeyState::PendingImport, vec![]),
            };
            let key = Key {
                key_id,
                region: String::new(),
                description: input.description.clone(),
                creation_date: now,
                origin: input.origin,
                state,
                deletion_date: None,
                pending_window_days: None,
                rotation_period_days: None,
                next_rotation: None,
                versions,
                policy,
                parsed_policy: Default::default(),
                tags: input
                    .tags
                    .iter()
                    .map(|(k, v)| Tag {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                pending_import: None,
                key_spec,
                key_usage,
                private_material,
                deleted_material_digest: None,
                grants: Vec::new(),
                multi_region: input.multi_region.then(multi_region::new_primary),
            };
            let mut store = self.lock()?;
            store.update(|data| {
                let mut key = key;
                key.region = data.region_or_default(caller.region.as_deref()).to_string();
                check_key_quota(data, &key.region, self.key_quota)?;
                data.keys.insert(key_id, key);
                self.usage.merge_into(data);
                trail.key_id = Some(data.key_arn(&key_id));
                let key = data.key(&key_id)?;
                trail.key_version = key.current_version().map(|v| v.version);
                Ok(info(data, key))
            })
        })
    }

    /// The AWS managed key of an AWS service (`alias/aws/<service>`, such as
    /// `alias/aws/ebs`), created on first use as AWS creates it: a key that
    /// every principal may use and describe but nobody may administer (no
    /// disabling, deletion or policy change), under an alias of the
    /// reserved `alias/aws/` prefix that CreateAlias refuses to everyone
    /// else. Audited as a CreateKey by `caller` (the service acting for it).
    pub fn aws_managed_key(&self, caller: &Caller, service: &str) -> Result<KeyInfo> {
        let alias = format!("alias/aws/{service}");
        if !service.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') || service.is_empty() {
            return Err(KmsError::Validation(format!(
                "{service:?} is not an AWS service name"
            )));
        }
        {
            let store = self.lock()?;
            let data = store.data();
            if let Some(a) = data.alias(data.region_or_default(caller.region.as_deref()), &alias) {
                return Ok(info(data, data.key(&a.target)?));
            }
        }
        self.run(caller, Operation::CreateKey, None, None, |trail| {
            let policy = PolicyDocument::parse(&format!(
                r#"{{"Version": "2012-10-17", "Id": "auto-{service}-1",
                  "Statement": [{{"Sid": "Allow use of the key through {service} for every principal",
                    "Effect": "Allow", "Principal": "*",
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*",
                               "kms:GenerateDataKey*", "kms:DescribeKey"],
                    "Resource": "*"}},
                   {{"Sid": "Allow read-only access to the key's metadata",
                    "Effect": "Allow", "Principal": "*",
                    "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                    "Resource": "*"}}]}}"#
            ))?;
            let now = self.clock.now();
            let key_id = Uuid::new_v4();
            let key = Key {
                key_id,
                region: String::new(),
                description: format!(
                    "Default key that protects my {} resources when no other key is defined",
                    service.to_ascii_uppercase()
                ),
                creation_date: now,
                origin: Origin::AwsKms,
                state: KeyState::Enabled,
                deletion_date: None,
                pending_window_days: None,
                // AWS rotates its managed keys every year.
                rotation_period_days: Some(365),
                next_rotation: Some(now + 365 * SECONDS_PER_DAY),
                versions: vec![KeyVersion {
                    version: 1,
                    created: now,
                    rotation_type: None,
                    material: KeyMaterial::random(),
                }],
                policy: policy.to_json(),
                parsed_policy: Default::default(),
                tags: vec![],
                pending_import: None,
                key_spec: KeySpec::SymmetricDefault,
                key_usage: KeyUsage::EncryptDecrypt,
                private_material: None,
                deleted_material_digest: None,
                grants: Vec::new(),
                multi_region: None,
            };
            let mut store = self.lock()?;
            store.update(|data| {
                let region = data.region_or_default(caller.region.as_deref()).to_string();
                // Another process may have made it meanwhile.
                if let Some(a) = data.alias(&region, &alias) {
                    return Ok(info(data, data.key(&a.target)?));
                }
                let mut key = key;
                key.region = region.clone();
                data.keys.insert(key_id, key);
                trail.key_id = Some(data.key_arn(&key_id));
                trail.key_version = Some(1);
                let out = info(data, data.key(&key_id)?);
                data.aliases_mut(&region).insert(
                    alias.clone(),
                    Alias {
                        target: key_id,
                        created: now,
                        updated: now,
                    },
                );
                Ok(out)
            })
        })
    }

    pub fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyInfo> {
        self.read_key(caller, Operation::DescribeKey, key_id, |data, key| {
            Ok(info(data, key))
        })
    }

    /// Key ids (UUID or `mrk-…`) and ARNs of the caller's region.
    pub fn list_keys(&self, caller: &Caller) -> Result<Vec<(String, String)>> {
        self.run(caller, Operation::ListKeys, None, None, |_| {
            let store = self.lock()?;
            let data = store.data();
            check_account_level(
                data,
                self.owner_uid,
                caller,
                Operation::ListKeys.iam_action(),
            )?;
            let region = data.region_or_default(caller.region.as_deref());
            Ok(data
                .keys
                .values()
                .filter(|k| k.region == region)
                .map(|k| (k.public_id(), data.key_arn(&k.key_id)))
                .collect())
        })
    }

    pub fn create_alias(&self, caller: &Caller, alias: &str, target: &str) -> Result<()> {
        self.precheck(
            caller,
            Operation::CreateAlias,
            Some(target),
            validate_alias_name(alias),
        )?;
        self.run(
            caller,
            Operation::CreateAlias,
            Some(target),
            None,
            |trail| {
                let mut store = self.lock()?;
                let now = self.clock.now();
                store.update(|data| {
                    let id = data.resolve_key_only(caller.region.as_deref(), target)?;
                    trail.key_id = Some(data.key_arn(&id));
                    let key = data.key(&id)?;
                    check(data, key, caller, Operation::CreateAlias.iam_action())?;
                    if key.state == KeyState::PendingDeletion {
                        return Err(
                            key.invalid_state(&data.key_arn(&id), Operation::CreateAlias.name())
                        );
                    }
                    let region = data.region_or_default(caller.region.as_deref()).to_string();
                    if data.alias(&region, alias).is_some() {
                        return Err(KmsError::AlreadyExists(format!(
                            "An alias with the name {} already exists",
                            data.alias_arn(&region, alias)
                        )));
                    }
                    data.aliases_mut(&region).insert(
                        alias.to_string(),
                        Alias {
                            target: id,
                            created: now,
                            updated: now,
                        },
                    );
                    Ok(())
                })
            },
        )
    }

    pub fn update_alias(&self, caller: &Caller, alias: &str, target: &str) -> Result<()> {
        self.precheck(
            caller,
            Operation::UpdateAlias,
            Some(target),
            validate_alias_name(alias),
        )?;
        self.run(
            caller,
            Operation::UpdateAlias,
            Some(target),
            None,
            |trail| {
                let mut store = self.lock()?;
                let now = self.clock.now();
                store.update(|data| {
                    let region = data.region_or_default(caller.region.as_deref()).to_string();
                    let current = data.alias(&region, alias).ok_or_else(|| {
                        KmsError::NotFound(format!(
                            "Alias {} is not found.",
                            data.alias_arn(&region, alias)
                        ))
                    })?;
                    let old = current.target;
                    let id = data.resolve_key_only(caller.region.as_deref(), target)?;
                    trail.key_id = Some(data.key_arn(&id));
                    // AWS requires UpdateAlias permission on both the old and the new key.
                    check(
                        data,
                        data.key(&old)?,
                        caller,
                        Operation::UpdateAlias.iam_action(),
                    )?;
                    let key = data.key(&id)?;
                    check(data, key, caller, Operation::UpdateAlias.iam_action())?;
                    if key.state == KeyState::PendingDeletion {
                        return Err(
                            key.invalid_state(&data.key_arn(&id), Operation::UpdateAlias.name())
                        );
                    }
                    if let Some(a) = data.aliases_mut(&region).get_mut(alias) {
                        a.target = id;
                        a.updated = now;
                    }
                    Ok(())
                })
            },
        )
    }

    pub fn delete_alias(&self, caller: &Caller, alias: &str) -> Result<()> {
        self.run(caller, Operation::DeleteAlias, Some(alias), None, |trail| {
            let mut store = self.lock()?;
            store.update(|data| {
                let region = data.region_or_default(caller.region.as_deref()).to_string();
                let target = data
                    .alias(&region, alias)
                    .ok_or_else(|| {
                        KmsError::NotFound(format!(
                            "Alias {} is not found.",
                            data.alias_arn(&region, alias)
                        ))
                    })?
                    .target;
                trail.key_id = Some(data.key_arn(&target));
                check(
                    data,
                    data.key(&target)?,
                    caller,
                    Operation::DeleteAlias.iam_action(),
                )?;
                data.aliases_mut(&region).remove(alias);
                Ok(())
            })
        })
    }

    pub fn list_aliases(&self, caller: &Caller, key_id: Option<&str>) -> Result<Vec<AliasInfo>> {
        self.run(caller, Operation::ListAliases, key_id, None, |_| {
            let store = self.lock()?;
            let data = store.data();
            check_account_level(
                data,
                self.owner_uid,
                caller,
                Operation::ListAliases.iam_action(),
            )?;
            let only = key_id
                .map(|k| data.resolve_key_only(caller.region.as_deref(), k))
                .transpose()?;
            let region = data.region_or_default(caller.region.as_deref());
            Ok(data
                .aliases(region)
                .filter(|(_, a)| only.is_none_or(|id| id == a.target))
                .map(|(name, a)| AliasInfo {
                    name: name.clone(),
                    arn: data.alias_arn(region, name),
                    target: data
                        .keys
                        .get(&a.target)
                        .map_or_else(|| a.target.to_string(), Key::public_id),
                    created: a.created,
                    updated: a.updated,
                })
                .collect())
        })
    }

    pub fn enable_key(&self, caller: &Caller, key_id: &str) -> Result<()> {
        self.change_key(
            caller,
            Operation::EnableKey,
            key_id,
            true,
            |key, _, arn| match key.state {
                KeyState::Enabled | KeyState::Disabled => {
                    key.state = KeyState::Enabled;
                    Ok(())
                }
                _ => Err(key.invalid_state(arn, Operation::EnableKey.name())),
            },
        )
    }

    pub fn disable_key(&self, caller: &Caller, key_id: &str) -> Result<()> {
        self.change_key(
            caller,
            Operation::DisableKey,
            key_id,
            true,
            |key, _, arn| match key.state {
                KeyState::Enabled | KeyState::Disabled => {
                    key.state = KeyState::Disabled;
                    Ok(())
                }
                _ => Err(key.invalid_state(arn, Operation::DisableKey.name())),
            },
        )
    }

    /// Returns the ARN, the deletion date and the window. No date: the key is
    /// a multi-Region primary with replicas, now PendingReplicaDeletion; its
    /// window starts when the last replica is deleted (see multi_region.rs).
    pub fn schedule_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
        pending_window_days: Option<u32>,
    ) -> Result<(String, Option<Timestamp>, u32)> {
        let days = pending_window_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            let e = KmsError::Validation(format!(
                "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between 7 and 30"
            ));
            return self.precheck(caller, Operation::ScheduleKeyDeletion, Some(key_id), Err(e));
        }
        self.change_key_in_store(
            caller,
            Operation::ScheduleKeyDeletion,
            key_id,
            |data, id, now, arn| {
                let waits_for_replicas = multi_region::has_replicas(data, &id);
                let key = data.key_mut(&id)?;
                if matches!(
                    key.state,
                    KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
                ) {
                    return Err(KmsError::InvalidState(format!(
                        "{arn} is pending deletion."
                    )));
                }
                key.pending_window_days = Some(days);
                if waits_for_replicas {
                    key.state = KeyState::PendingReplicaDeletion;
                    key.deletion_date = None;
                    return Ok((arn.to_string(), None, days));
                }
                let when = now + i64::from(days) * SECONDS_PER_DAY;
                key.state = KeyState::PendingDeletion;
                key.deletion_date = Some(when);
                Ok((arn.to_string(), Some(when), days))
            },
        )
    }

    pub fn cancel_key_deletion(&self, caller: &Caller, key_id: &str) -> Result<String> {
        self.change_key(
            caller,
            Operation::CancelKeyDeletion,
            key_id,
            true,
            |key, _, arn| {
                if !matches!(
                    key.state,
                    KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
                ) {
                    return Err(KmsError::InvalidState(format!(
                        "{arn} is {} and not pending deletion.",
                        key.state.as_str()
                    )));
                }
                key.state = if !key.has_material() {
                    KeyState::PendingImport
                } else {
                    KeyState::Disabled
                };
                key.deletion_date = None;
                key.pending_window_days = None;
                Ok(arn.to_string())
            },
        )
    }

    fn require_rotatable(key: &Key, arn: &str, op: &str) -> Result<()> {
        multi_region::refuse_replica_rotation(key, arn, op)?;
        if !key.key_spec.is_symmetric_default() {
            return Err(KmsError::UnsupportedOperation(format!(
                "{arn} has KeySpec {}: automatic and on-demand rotation are supported only on symmetric encryption KMS keys, not on asymmetric or HMAC KMS keys; {op} is not supported for it.",
                key.key_spec
            )));
        }
        if key.origin == Origin::External {
            return Err(KmsError::UnsupportedOperation(format!(
                "{arn} has imported key material (origin EXTERNAL); {op} is not supported for it."
            )));
        }
        key.require_usable(arn)
    }

    pub fn enable_key_rotation(
        &self,
        caller: &Caller,
        key_id: &str,
        period_days: Option<u32>,
    ) -> Result<()> {
        let period = period_days.unwrap_or(365);
        if !(90..=2560).contains(&period) {
            let e = KmsError::Validation(format!(
                "1 validation error detected: Value '{period}' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value between 90 and 2560"
            ));
            return self.precheck(caller, Operation::EnableKeyRotation, Some(key_id), Err(e));
        }
        self.change_key(
            caller,
            Operation::EnableKeyRotation,
            key_id,
            true,
            |key, now, arn| {
                Self::require_rotatable(key, arn, Operation::EnableKeyRotation.name())?;
                key.rotation_period_days = Some(period);
                key.next_rotation = Some(now + i64::from(period) * SECONDS_PER_DAY);
                Ok(())
            },
        )
    }

    pub fn disable_key_rotation(&self, caller: &Caller, key_id: &str) -> Result<()> {
        self.change_key(
            caller,
            Operation::DisableKeyRotation,
            key_id,
            true,
            |key, _, arn| {
                Self::require_rotatable(key, arn, Operation::DisableKeyRotation.name())?;
                key.rotation_period_days = None;
                key.next_rotation = None;
                Ok(())
            },
        )
    }

    pub fn get_key_rotation_status(&self, caller: &Caller, key_id: &str) -> Result<RotationStatus> {
        self.read_key(
            caller,
            Operation::GetKeyRotationStatus,
            key_id,
            |data, key| {
                let arn = data.key_arn(&key.key_id);
                // Rotation is shared: a replica reports its primary's.
                let key = multi_region::rotation_source(data, key);
                Ok(RotationStatus {
                    arn,
                    enabled: key.rotation_period_days.is_some(),
                    period_days: key.rotation_period_days,
                    next_rotation: key.next_rotation,
                })
            },
        )
    }

    /// Returns the ARN and the new current version.
    pub fn rotate_key_on_demand(&self, caller: &Caller, key_id: &str) -> Result<(String, u32)> {
        self.change_key(
            caller,
            Operation::RotateKeyOnDemand,
            key_id,
            true,
            |key, now, arn| {
                Self::require_rotatable(key, arn, Operation::RotateKeyOnDemand.name())?;
                key.rotate(now, RotationType::OnDemand);
                Ok((
                    arn.to_string(),
                    key.current_version().map_or(1, |v| v.version),
                ))
            },
        )
    }

    pub fn list_key_rotations(&self, caller: &Caller, key_id: &str) -> Result<Vec<RotationInfo>> {
        self.read_key(caller, Operation::ListKeyRotations, key_id, |data, key| {
            if key.origin == Origin::External {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} has imported key material; it has no rotations.",
                    data.key_arn(&key.key_id)
                )));
            }
            Ok(key
                .versions
                .iter()
                .filter_map(|v| {
                    v.rotation_type.map(|kind| RotationInfo {
                        arn: data.key_arn(&key.key_id),
                        version: v.version,
                        date: v.created,
                        kind,
                    })
                })
                .collect())
        })
    }

    pub fn get_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        name: Option<&str>,
    ) -> Result<String> {
        self.precheck(
            caller,
            Operation::GetKeyPolicy,
            Some(key_id),
            check_policy_name(name),
        )?;
        self.read_key(caller, Operation::GetKeyPolicy, key_id, |_, key| {
            Ok(key.policy.clone())
        })
    }

    /// AWS refuses a policy that would stop its author from changing it
    /// again (the author's identity policies count where the new policy
    /// hands the decision to the account).
    fn lockout_check(&self, doc: &PolicyDocument, caller: &Caller, bypass: bool) -> Result<()> {
        if bypass {
            return Ok(());
        }
        let store = self.lock()?;
        let action = Operation::PutKeyPolicy.iam_action();
        if policy_decision(store.data(), doc, "*", None, caller, action, None) == Decision::Allow {
            return Ok(());
        }
        Err(KmsError::MalformedPolicyDocument(format!(
            "The new key policy will not allow you (uid {}) to update the key policy in the future; pass --bypass-policy-lockout-safety-check if that is intended.",
            caller.uid
        )))
    }

    pub fn put_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        name: Option<&str>,
        policy: &str,
        bypass_lockout_check: bool,
    ) -> Result<()> {
        let valid = check_policy_name(name)
            .and_then(|()| PolicyDocument::parse(policy))
            .and_then(|doc| self.lockout_check(&doc, caller, bypass_lockout_check));
        self.precheck(caller, Operation::PutKeyPolicy, Some(key_id), valid)?;
        self.change_key(
            caller,
            Operation::PutKeyPolicy,
            key_id,
            true,
            |key, _, _| {
                key.set_policy(policy);
                Ok(())
            },
        )
    }

    /// Seals `plaintext` (1..=4096 bytes) under the current version of a key.
    pub fn encrypt(
        &self,
        caller: &Caller,
        key_id: &str,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Wrapped> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            let e = KmsError::Validation(format!(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and {MAX_PLAINTEXT} (it has {})",
                plaintext.len()
            ));
            return self.precheck(caller, Operation::Encrypt, Some(key_id), Err(e));
        }
        self.run(
            caller,
            Operation::Encrypt,
            Some(key_id),
            Some(ctx),
            |trail| {
                self.seal_with(
                    caller,
                    key_id,
                    Operation::Encrypt.iam_action(),
                    plaintext,
                    ctx,
                    trail,
                )
            },
        )
    }

    fn seal_with(
        &self,
        caller: &Caller,
        key_id: &str,
        action: &str,
        plaintext: &[u8],
        ctx: &EncryptionContext,
        trail: &mut Trail,
    ) -> Result<Wrapped> {
        let store = self.lock()?;
        let data = store.data();
        let (id, arn, key) = usable_key(data, caller, key_id, action, Some(ctx), trail)?;
        asymmetric_ops::require_symmetric_encryption(key, &arn)?;
        let version = key
            .current_version()
            .ok_or_else(|| KmsError::InvalidState(format!("{arn} has no key material.")))?;
        trail.key_version = Some(version.version);
        trail.used.push(id);
        let header = BlobHeader {
            // Shared by related multi-Region keys: any of them opens it.
            key_id: key.blob_id(),
            key_version: version.version,
            nonce: random_nonce(),
        };
        Ok(Wrapped {
            key_arn: arn,
            key_version: version.version,
            ciphertext_blob: blob::seal(&version.material, &header, plaintext, ctx),
        })
    }

    fn open_blob(
        &self,
        caller: &Caller,
        blob_bytes: &[u8],
        ctx: &EncryptionContext,
        expected_key: Option<&str>,
        action: &str,
        trail: &mut Trail,
    ) -> Result<Decrypted> {
        let header = blob::parse_header(blob_bytes)?;
        let store = self.lock()?;
        let data = store.data();
        // The record (of a multi-Region key: this region's) to open it with.
        let id = data
            .ciphertext_key(caller.region.as_deref(), &header.key_id)
            .unwrap_or(header.key_id);
        let arn = data.key_arn(&id);
        trail.key_id = Some(arn.clone());
        trail.key_version = Some(header.key_version);
        if let Some(expected) = expected_key
            && data.resolve(caller.region.as_deref(), expected)? != id
        {
            return Err(KmsError::IncorrectKey(format!(
                "The key ID in the request does not identify the CMK that encrypted the ciphertext ({arn})."
            )));
        }
        let key = data.keys.get(&id).ok_or_else(|| {
            KmsError::NotFound(format!(
                "The key that encrypted this ciphertext, {arn}, does not exist: it was deleted, or belongs to another key store. The ciphertext cannot be decrypted."
            ))
        })?;
        // A ciphertext is only good in its key's region, as at AWS.
        if caller.region.as_deref().is_some_and(|r| r != key.region) {
            return Err(KmsError::InvalidCiphertext(
                "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.".into(),
            ));
        }
        check_in_context(data, key, caller, action, Some(ctx))?;
        key.require_usable(&arn)?;
        asymmetric_ops::require_symmetric_encryption(key, &arn)?;
        let version = key.version(header.key_version).ok_or_else(|| {
            KmsError::InvalidCiphertext(format!("{arn} has no key version {}.", header.key_version))
        })?;
        let plaintext = blob::open(&version.material, &header, blob_bytes, ctx)?;
        trail.used.push(id);
        Ok(Decrypted {
            key_arn: arn,
            key_version: header.key_version,
            plaintext,
        })
    }

    pub fn decrypt(
        &self,
        caller: &Caller,
        blob_bytes: &[u8],
        ctx: &EncryptionContext,
        key_id: Option<&str>,
    ) -> Result<Decrypted> {
        self.run(caller, Operation::Decrypt, key_id, Some(ctx), |trail| {
            self.open_blob(
                caller,
                blob_bytes,
                ctx,
                key_id,
                Operation::Decrypt.iam_action(),
                trail,
            )
        })
    }

    /// Decrypts under the source key and encrypts under the destination key;
    /// the plaintext never leaves the service.
    pub fn re_encrypt(
        &self,
        caller: &Caller,
        blob_bytes: &[u8],
        source_ctx: &EncryptionContext,
        source_key_id: Option<&str>,
        destination_key_id: &str,
        destination_ctx: &EncryptionContext,
    ) -> Result<(Decrypted, Wrapped)> {
        self.run(
            caller,
            Operation::ReEncrypt,
            Some(destination_key_id),
            Some(destination_ctx),
            |trail| {
                let mut source_trail = Trail::default();
                let opened = self.open_blob(
                    caller,
                    blob_bytes,
                    source_ctx,
                    source_key_id,
                    RE_ENCRYPT_FROM,
                    &mut source_trail,
                )?;
                // Both keys were used (AWS records ReEncrypt for each).
                trail.used.append(&mut source_trail.used);
                let wrapped = self.seal_with(
                    caller,
                    destination_key_id,
                    RE_ENCRYPT_TO,
                    &opened.plaintext,
                    destination_ctx,
                    trail,
                )?;
                Ok((opened, wrapped))
            },
        )
    }

    pub fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        num_bytes: usize,
        ctx: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKeyPair> {
        let op = if with_plaintext {
            Operation::GenerateDataKey
        } else {
            Operation::GenerateDataKeyWithoutPlaintext
        };
        if !(1..=1024).contains(&num_bytes) {
            let e = KmsError::Validation(format!(
                "1 validation error detected: Value '{num_bytes}' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024"
            ));
            return self.precheck(caller, op, Some(key_id), Err(e));
        }
        self.run(caller, op, Some(key_id), Some(ctx), |trail| {
            let mut plaintext = Zeroizing::new(vec![0u8; num_bytes]);
            rand::fill(&mut plaintext[..]);
            let wrapped =
                self.seal_with(caller, key_id, op.iam_action(), &plaintext, ctx, trail)?;
            Ok(DataKeyPair {
                key_arn: wrapped.key_arn,
                key_version: wrapped.key_version,
                plaintext,
                ciphertext_blob: wrapped.ciphertext_blob,
            })
        })
    }

    pub fn get_parameters_for_import(
        &self,
        caller: &Caller,
        key_id: &str,
        wrapping_algorithm: &str,
        wrapping_key_spec: &str,
    ) -> Result<ImportParameters> {
        let op = Operation::GetParametersForImport;
        if !matches!(
            wrapping_algorithm,
            "RSAES_OAEP_SHA_256" | "RSAES_OAEP_SHA_1"
        ) {
            let e = KmsError::Validation(format!(
                "WrappingAlgorithm {wrapping_algorithm} is not supported: use RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1"
            ));
            return self.precheck(caller, op, Some(key_id), Err(e));
        }
        let bits = match wrapping_key_spec {
            "RSA_2048" => 2048,
            "RSA_3072" => 3072,
            "RSA_4096" => 4096,
            other => {
                let e = KmsError::Validation(format!(
                    "WrappingKeySpec {other} is not supported: use RSA_2048, RSA_3072 or RSA_4096"
                ));
                return self.precheck(caller, op, Some(key_id), Err(e));
            }
        };
        let (private_der, public_der) = super::import::generate_wrapping_key(bits)?;
        self.change_key(
            caller,
            Operation::GetParametersForImport,
            key_id,
            true,
            |key, now, arn| {
                if key.origin != Origin::External {
                    return Err(KmsError::UnsupportedOperation(format!(
                        "{arn} was not created with origin EXTERNAL; it does not take imported key material."
                    )));
                }
                if key.state == KeyState::PendingDeletion {
                    return Err(key.invalid_state(arn, Operation::GetParametersForImport.name()));
                }
                let mut token = vec![0u8; 32];
                rand::fill(&mut token[..]);
                let valid_to = now + SECONDS_PER_DAY;
                key.pending_import = Some(PendingImport {
                    token: token.clone(),
                    wrapping_algorithm: wrapping_algorithm.to_string(),
                    private_key: SecretBytes(private_der),
                    valid_to,
                });
                Ok(ImportParameters {
                    arn: arn.to_string(),
                    import_token: token,
                    public_key: public_der,
                    valid_to,
                })
            },
        )
    }

    pub fn import_key_material(
        &self,
        caller: &Caller,
        key_id: &str,
        import_token: &[u8],
        encrypted_material: &[u8],
        expiration_model: Option<&str>,
    ) -> Result<()> {
        if let Some(model) = expiration_model.filter(|m| *m != "KEY_MATERIAL_DOES_NOT_EXPIRE") {
            let e = KmsError::UnsupportedOperation(format!(
                "ExpirationModel {model} is not supported by kmsfs: imported key material does not expire"
            ));
            return self.precheck(caller, Operation::ImportKeyMaterial, Some(key_id), Err(e));
        }
        self.change_key(
            caller,
            Operation::ImportKeyMaterial,
            key_id,
            true,
            |key, now, arn| {
                if key.origin != Origin::External {
                    return Err(KmsError::UnsupportedOperation(format!(
                        "{arn} was not created with origin EXTERNAL."
                    )));
                }
                if key.state == KeyState::PendingDeletion {
                    return Err(key.invalid_state(arn, Operation::ImportKeyMaterial.name()));
                }
                let pending = key.pending_import.as_ref().ok_or_else(|| {
                    KmsError::InvalidImportToken(
                        "No import parameters are outstanding for this key: call GetParametersForImport first."
                            .into(),
                    )
                })?;
                if pending.token.as_slice() != import_token {
                    return Err(KmsError::InvalidImportToken(
                        "The import token does not belong to this key's outstanding import parameters.".into(),
                    ));
                }
                if now > pending.valid_to {
                    return Err(KmsError::ExpiredImportToken(
                        "The import token has expired (import parameters are valid for 24 hours).".into(),
                    ));
                }
                let material = super::import::unwrap_material(
                    &pending.private_key.0,
                    &pending.wrapping_algorithm,
                    encrypted_material,
                )?;
                match key.versions.first() {
                    Some(existing) if !existing.material.ct_eq(&material) => {
                        return Err(KmsError::IncorrectKeyMaterial(format!(
                            "The key material does not match the material previously imported into {arn}."
                        )));
                    }
                    Some(_) => {}
                    None if key
                        .deleted_material_digest
                        .as_ref()
                        .is_some_and(|d| *d != key_admin::material_digest(&material)) =>
                    {
                        return Err(KmsError::IncorrectKeyMaterial(format!(
                            "The key material does not match the material deleted from {arn}: import the same material again."
                        )));
                    }
                    None => key.versions.push(KeyVersion {
                        version: 1,
                        created: now,
                        rotation_type: None,
                        material,
                    }),
                }
                key.pending_import = None;
                key.deleted_material_digest = None;
                if key.state == KeyState::PendingImport {
                    key.state = KeyState::Enabled;
                }
                Ok(())
            },
        )
    }
}

fn check_policy_name(name: Option<&str>) -> Result<()> {
    match name {
        None | Some("default") => Ok(()),
        Some(other) => Err(KmsError::NotFound(format!(
            "No such policy exists: {other} (the only policy name is \"default\")"
        ))),
    }
}

/// The placeholder account of stores created without `KMSFS_ACCOUNT_ID`.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// The account id a new store is created with: `KMSFS_ACCOUNT_ID` (twelve
/// digits, as AWS account ids are), else [`DEFAULT_ACCOUNT`].
fn account_from_env() -> Result<String> {
    match std::env::var("KMSFS_ACCOUNT_ID") {
        Err(_) => Ok(DEFAULT_ACCOUNT.to_string()),
        Ok(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        Ok(id) => Err(KmsError::Validation(format!(
            "KMSFS_ACCOUNT_ID {id:?} is not an AWS account id (12 digits)"
        ))),
    }
}

pub fn iso_now(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl KeyService for LocalKms {
    fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<DataKeyPair> {
        LocalKms::generate_data_key(self, caller, key_id, 32, ctx, true)
    }

    fn decrypt(&self, caller: &Caller, blob: &[u8], ctx: &EncryptionContext) -> Result<Decrypted> {
        LocalKms::decrypt(self, caller, blob, ctx, None)
    }

    fn re_encrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
        destination_key_id: &str,
    ) -> Result<Wrapped> {
        LocalKms::re_encrypt(self, caller, blob, ctx, None, destination_key_id, ctx).map(|(_, w)| w)
    }

    fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyDescription> {
        let i = LocalKms::describe_key(self, caller, key_id)?;
        Ok(KeyDescription {
            key_arn: i.arn,
            state: i.state,
            current_version: i.current_version,
        })
    }
}
