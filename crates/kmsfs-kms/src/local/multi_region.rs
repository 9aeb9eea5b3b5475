//! Multi-Region keys: CreateKey with MultiRegion, ReplicateKey,
//! UpdatePrimaryRegion, and the rules other operations follow for them
//! (rotation only on the primary, a primary with replicas waits for them
//! before its deletion window starts). How the store holds them:
//! model/multi_region.rs.

use uuid::Uuid;

use super::{
    Caller, Key, KeyInfo, KeyState, KmsError, LocalKms, Operation, Origin, PolicyDocument, Result,
    StoreData, Tag, Timestamp, check, dry_run, info,
};
use crate::model::{MultiRegion, valid_region_name};

/// MultiRegionConfiguration of a key's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRegionInfo {
    /// PRIMARY (true) or REPLICA.
    pub primary: bool,
    /// ARN and region of the primary key.
    pub primary_key: (String, String),
    /// ARN and region of every replica, by region.
    pub replica_keys: Vec<(String, String)>,
}

impl MultiRegionInfo {
    pub fn key_type(&self) -> &'static str {
        if self.primary { "PRIMARY" } else { "REPLICA" }
    }
}

pub struct ReplicateKeyInput {
    pub replica_region: String,
    /// None: the default key policy, as CreateKey gives.
    pub policy: Option<String>,
    pub bypass_policy_lockout_safety_check: bool,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// What ReplicateKey answers: the replica's metadata, policy and tags.
#[derive(Debug, Clone)]
pub struct ReplicaInfo {
    pub metadata: KeyInfo,
    pub policy: String,
    pub tags: Vec<(String, String)>,
}

/// The configuration DescribeKey shows for `key`; None if single-Region.
pub(super) fn configuration(data: &StoreData, key: &Key) -> Option<MultiRegionInfo> {
    let m = key.multi_region?;
    let mut primary_key = None;
    let mut replica_keys = Vec::new();
    for (handle, k) in data.related_keys(&m.id) {
        let entry = (data.key_arn(&handle), k.region.clone());
        if k.multi_region.is_some_and(|r| r.primary) {
            primary_key = Some(entry);
        } else {
            replica_keys.push(entry);
        }
    }
    replica_keys.sort_by(|a, b| a.1.cmp(&b.1));
    Some(MultiRegionInfo {
        primary: m.primary,
        // Every multi-Region key has its primary; a store edited by hand
        // that lost it shows the key itself rather than failing DescribeKey.
        primary_key: primary_key.unwrap_or_else(|| (data.key_arn(&key.key_id), key.region.clone())),
        replica_keys,
    })
}

/// The multi-Region part of a new primary key: a fresh shared id.
pub(super) fn new_primary() -> MultiRegion {
    MultiRegion {
        id: Uuid::new_v4(),
        primary: true,
    }
}

/// AWS allows multi-Region keys with imported material (each replica then
/// needs its own import of the same material); kmsfs keeps one copy of the
/// material per record and has no import path that fills them all, so it
/// refuses them rather than make keys that cannot be made to agree.
pub(super) fn check_creatable(multi_region: bool, origin: Origin) -> Result<()> {
    if multi_region && origin == Origin::External {
        return Err(KmsError::UnsupportedOperation(
            "kmsfs does not support multi-Region keys with imported key material (Origin EXTERNAL); create the key with Origin AWS_KMS".into(),
        ));
    }
    Ok(())
}

/// Whether key `id` is a multi-Region primary that still has replicas.
pub(super) fn has_replicas(data: &StoreData, id: &Uuid) -> bool {
    let Some(m) = data.keys.get(id).and_then(|k| k.multi_region) else {
        return false;
    };
    m.primary && data.related_keys(&m.id).any(|(handle, _)| handle != *id)
}

/// Rotation is a shared property set on the primary; AWS refuses to set or
/// run it on a replica.
pub(super) fn refuse_replica_rotation(key: &Key, arn: &str, op: &str) -> Result<()> {
    if key.is_replica() {
        return Err(KmsError::UnsupportedOperation(format!(
            "{arn} is a multi-Region replica key: rotation is a shared property, managed on its primary key; {op} is not supported for it."
        )));
    }
    Ok(())
}

/// The record whose rotation settings `key` shares: its primary's.
pub(super) fn rotation_source<'d>(data: &'d StoreData, key: &'d Key) -> &'d Key {
    key.multi_region
        .filter(|m| !m.primary)
        .and_then(|m| data.primary_key_of(&m.id))
        .and_then(|p| data.keys.get(&p))
        .unwrap_or(key)
}

fn check_region(region: &str) -> Result<()> {
    if valid_region_name(region) {
        return Ok(());
    }
    Err(KmsError::Validation(format!(
        "1 validation error detected: Value '{region}' at 'replicaRegion' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z0-9-]{{1,64}}$"
    )))
}

/// The key must be a multi-Region primary for ReplicateKey and
/// UpdatePrimaryRegion.
fn require_primary(key: &Key, arn: &str, op: Operation) -> Result<MultiRegion> {
    match key.multi_region {
        None => Err(KmsError::UnsupportedOperation(format!(
            "{arn} is not a multi-Region key; {op} supports only multi-Region primary keys."
        ))),
        Some(m) if !m.primary => Err(KmsError::UnsupportedOperation(format!(
            "{arn} is a multi-Region replica key; {op} supports only multi-Region primary keys."
        ))),
        Some(m) => Ok(m),
    }
}

impl LocalKms {
    /// [`LocalKms::change_key`] for changes that need the rest of the store
    /// (a key's replicas): `f` gets the store and the key's record id. The
    /// key must be named by id or ARN.
    pub(super) fn change_key_in_store<T>(
        &self,
        caller: &Caller,
        op: Operation,
        key_id: &str,
        f: impl FnOnce(&mut StoreData, Uuid, Timestamp, &str) -> Result<T>,
    ) -> Result<T> {
        self.run(caller, op, Some(key_id), None, |trail| {
            let mut store = self.lock()?;
            let now = self.clock.now();
            store.update(|data| {
                let id = data.resolve_key_only(caller.region.as_deref(), key_id)?;
                let arn = data.key_arn(&id);
                trail.key_id = Some(arn.clone());
                check(data, data.key(&id)?, caller, op.iam_action())?;
                let out = f(data, id, now, &arn)?;
                dry_run::refuse_write()?;
                self.usage.merge_into(data);
                Ok(out)
            })
        })
    }

    /// ReplicateKey: a replica of the primary key `key_id` in
    /// `input.replica_region`, with the same id and material (every version)
    /// and its own policy, description, tags and state. The caller needs
    /// kms:ReplicateKey on the primary, and what CreateKey takes for the
    /// replica (an identity policy allowing kms:CreateKey, or being the
    /// store's owner; see docs/KMS.md).
    pub fn replicate_key(
        &self,
        caller: &Caller,
        key_id: &str,
        input: ReplicateKeyInput,
    ) -> Result<ReplicaInfo> {
        let op = Operation::ReplicateKey;
        let valid = check_region(&input.replica_region)
            .and_then(|()| super::validate_tags(&input.tags))
            .and_then(|()| match &input.description {
                Some(d) if d.len() > 8192 => Err(KmsError::Validation(
                    "Description must be at most 8192 characters".into(),
                )),
                _ => Ok(()),
            })
            .and_then(|()| match &input.policy {
                Some(text) => {
                    let doc = PolicyDocument::parse(text)?;
                    self.lockout_check(&doc, caller, input.bypass_policy_lockout_safety_check)?;
                    Ok(text.clone())
                }
                None => Ok(PolicyDocument::default_for_caller(caller, &self.account).to_json()),
            });
        let policy = self.precheck(caller, op, Some(key_id), valid)?;
        self.change_key_in_store(caller, op, key_id, |data, id, now, arn| {
            // The replica is a new key of the account: AWS asks for
            // kms:CreateKey besides kms:ReplicateKey on the primary.
            super::check_account_level(data, self.owner_uid, caller, "kms:CreateKey")?;
            super::check_key_quota(data, &input.replica_region, self.key_quota)?;
            let primary = data.key(&id)?;
            let m = require_primary(primary, arn, op)?;
            // DisabledException or KMSInvalidStateException, as AWS lists.
            primary.require_usable(arn)?;
            let region = &input.replica_region;
            if let Some((handle, _)) = data.related_keys(&m.id).find(|(_, k)| &k.region == region) {
                return Err(KmsError::AlreadyExists(format!(
                    "{} already exists: the multi-Region key has a key in {region}.",
                    data.key_arn(&handle)
                )));
            }
            let handle = Uuid::new_v4();
            let tags: Vec<Tag> = input
                .tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect();
            let replica = Key {
                key_id: handle,
                region: region.clone(),
                description: input.description.clone().unwrap_or_default(),
                creation_date: now,
                origin: primary.origin,
                state: KeyState::Enabled,
                deletion_date: None,
                pending_window_days: None,
                // Shared, and kept on the primary alone (rotation_source).
                rotation_period_days: None,
                next_rotation: None,
                versions: primary.versions.clone(),
                policy,
                parsed_policy: Default::default(),
                tags,
                pending_import: None,
                key_spec: primary.key_spec,
                key_usage: primary.key_usage,
                private_material: primary.private_material.clone(),
                deleted_material_digest: None,
                // Grants belong to one regional key, as at AWS.
                grants: Vec::new(),
                multi_region: Some(MultiRegion {
                    id: m.id,
                    primary: false,
                }),
            };
            data.keys.insert(handle, replica);
            let replica = data.key(&handle)?;
            Ok(ReplicaInfo {
                metadata: info(data, replica),
                policy: replica.policy.clone(),
                tags: input.tags,
            })
        })
    }

    /// UpdatePrimaryRegion: the key of multi-Region primary `key_id` in
    /// `primary_region` becomes the primary, the old primary a replica;
    /// the shared rotation settings move with the role. The caller needs
    /// kms:UpdatePrimaryRegion on both keys, which must be Enabled (AWS).
    /// Naming the primary's own region changes nothing.
    pub fn update_primary_region(
        &self,
        caller: &Caller,
        key_id: &str,
        primary_region: &str,
    ) -> Result<()> {
        let op = Operation::UpdatePrimaryRegion;
        let valid = check_region(primary_region).map_err(|_| {
            KmsError::Validation(format!(
                "1 validation error detected: Value '{primary_region}' at 'primaryRegion' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z0-9-]{{1,64}}$"
            ))
        });
        self.precheck(caller, op, Some(key_id), valid)?;
        self.change_key_in_store(caller, op, key_id, |data, id, _, arn| {
            let old = data.key(&id)?;
            let m = require_primary(old, arn, op)?;
            if old.region == primary_region {
                return Ok(());
            }
            let new = data.multi_region_key_in(Some(primary_region), &m.id).ok_or_else(|| {
                KmsError::NotFound(format!(
                    "{arn} has no replica key in {primary_region}; UpdatePrimaryRegion needs one there."
                ))
            })?;
            let new_key = data.key(&new)?;
            check(data, new_key, caller, op.iam_action())?;
            // Both must be Enabled (DisabledException, else
            // KMSInvalidStateException).
            old.require_usable(arn)?;
            new_key.require_usable(&data.key_arn(&new))?;
            let (period, next) = (old.rotation_period_days, old.next_rotation);
            let old = data.key_mut(&id)?;
            old.multi_region = Some(MultiRegion {
                id: m.id,
                primary: false,
            });
            old.rotation_period_days = None;
            old.next_rotation = None;
            let new_key = data.key_mut(&new)?;
            new_key.multi_region = Some(m);
            new_key.rotation_period_days = period;
            new_key.next_rotation = next;
            Ok(())
        })
    }
}
