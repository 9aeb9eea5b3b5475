//! The contents of the key store: CMKs, their versions, aliases, and the pure
//! rules of their life cycle (states, rotation schedule, deletion window).
//! Nothing here does I/O or reads the clock: `now` is always passed in, so
//! tests can move time at will.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{KmsError, Result};
use super::keyspec::{KeySpec, KeyUsage};
use super::material::{KeyMaterial, SecretBytes};

mod multi_region;
pub use multi_region::{MultiRegion, valid_region_name};

pub const SECONDS_PER_DAY: i64 = 86_400;

pub use super::clock::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
    PendingImport,
    /// A multi-Region primary key scheduled for deletion while replicas of
    /// it remain: its waiting period starts when the last one is deleted.
    PendingReplicaDeletion,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
            KeyState::PendingImport => "PendingImport",
            KeyState::PendingReplicaDeletion => "PendingReplicaDeletion",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    #[serde(rename = "AWS_KMS")]
    AwsKms,
    #[serde(rename = "EXTERNAL")]
    External,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::AwsKms => "AWS_KMS",
            Origin::External => "EXTERNAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationType {
    #[serde(rename = "AUTOMATIC")]
    Automatic,
    #[serde(rename = "ON_DEMAND")]
    OnDemand,
}

impl RotationType {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationType::Automatic => "AUTOMATIC",
            RotationType::OnDemand => "ON_DEMAND",
        }
    }
}

/// One generation of a CMK's material. Version 1 is the original; each
/// rotation appends one. Earlier versions are kept for decryption until the
/// key itself is deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyVersion {
    pub version: u32,
    pub created: Timestamp,
    /// None for version 1, which was not made by a rotation.
    pub rotation_type: Option<RotationType>,
    pub material: KeyMaterial,
}

/// Parameters handed out by GetParametersForImport, valid for 24 hours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingImport {
    pub token: Vec<u8>,
    pub wrapping_algorithm: String,
    /// PKCS#8 DER of the RSA private wrapping key.
    pub private_key: SecretBytes,
    pub valid_to: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Key {
    pub key_id: Uuid,
    /// The region the key was created in: the only region that can see it.
    /// Empty in stores written before regions (layout 1); `StoreData::upgrade`
    /// fills in the store's default region, so those keys keep their ARNs.
    #[serde(default)]
    pub region: String,
    pub description: String,
    pub creation_date: Timestamp,
    pub origin: Origin,
    pub state: KeyState,
    /// Set while PendingDeletion: when the material is destroyed.
    pub deletion_date: Option<Timestamp>,
    pub pending_window_days: Option<u32>,
    /// Some(period in days) when automatic rotation is on.
    pub rotation_period_days: Option<u32>,
    pub next_rotation: Option<Timestamp>,
    pub versions: Vec<KeyVersion>,
    pub policy: String,
    /// `policy`, parsed: every cryptographic call checks the policy, and
    /// parsing JSON each time would dominate the cost of a local unwrap.
    /// Reset by `set_policy`; empty after loading the store.
    #[serde(skip)]
    pub parsed_policy: std::sync::OnceLock<super::policy::PolicyDocument>,
    pub tags: Vec<Tag>,
    pub pending_import: Option<PendingImport>,
    /// SYMMETRIC_DEFAULT for stores written before other specs existed.
    #[serde(default)]
    pub key_spec: KeySpec,
    #[serde(default)]
    pub key_usage: KeyUsage,
    /// The material of a key that is not SYMMETRIC_DEFAULT: PKCS#8 DER of
    /// an RSA or ECC private key, or the raw HMAC key. Such keys never
    /// rotate, so they have this one material for life and no `versions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_material: Option<SecretBytes>,
    /// After DeleteImportedKeyMaterial: a digest of the deleted material,
    /// so that only the same material can be imported again (as AWS
    /// requires) without keeping the material itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_material_digest: Option<Vec<u8>>,
    /// The key's grants (grants.rs), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<super::grants::Grant>,
    /// Set on each key of a multi-Region key (its primary and every
    /// replica, one record per region; see model/multi_region.rs). Then
    /// `key_id` is only this record's place in `StoreData::keys`, and the
    /// key's id is `mrk-` + the shared `MultiRegion::id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_region: Option<MultiRegion>,
}

impl Key {
    /// Whether the key has material to use (not waiting for an import).
    pub fn has_material(&self) -> bool {
        !self.versions.is_empty() || self.private_material.is_some()
    }

    pub fn set_policy(&mut self, policy: &str) {
        self.policy = policy.to_string();
        self.parsed_policy = std::sync::OnceLock::new();
    }

    /// The parsed key policy (parsed once per loaded copy of the store).
    pub fn policy_document(&self) -> Result<&super::policy::PolicyDocument> {
        if let Some(doc) = self.parsed_policy.get() {
            return Ok(doc);
        }
        let doc = super::policy::PolicyDocument::parse(&self.policy)?;
        Ok(self.parsed_policy.get_or_init(|| doc))
    }

    pub fn current_version(&self) -> Option<&KeyVersion> {
        self.versions.last()
    }

    pub fn version(&self, v: u32) -> Option<&KeyVersion> {
        self.versions.iter().find(|k| k.version == v)
    }

    /// Adds a new version with fresh material and makes it current.
    pub fn rotate(&mut self, now: Timestamp, kind: RotationType) {
        let version = self.versions.last().map_or(1, |v| v.version + 1);
        self.versions.push(KeyVersion {
            version,
            created: now,
            rotation_type: Some(kind),
            material: KeyMaterial::random(),
        });
    }

    /// Refuses cryptographic use unless Enabled, with the exception AWS gives.
    pub fn require_usable(&self, arn: &str) -> Result<()> {
        match self.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled(format!("{arn} is disabled."))),
            state => Err(KmsError::InvalidState(format!(
                "{arn} is pending {}.",
                match state {
                    KeyState::PendingDeletion => "deletion",
                    KeyState::PendingReplicaDeletion => "replica deletion",
                    _ => "import",
                }
            ))),
        }
    }

    pub fn invalid_state(&self, arn: &str, op: &str) -> KmsError {
        KmsError::InvalidState(format!(
            "{arn} is {} and cannot be used for {op}.",
            self.state.as_str()
        ))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alias {
    pub target: Uuid,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// The layout of [`StoreData`] this build writes. 1: one region per store,
/// aliases in `aliases`; 2: every key names its region, aliases are kept per
/// region in `aliases_by_region`; 3: multi-Region keys, one record per
/// region sharing an id (`Key::multi_region`), so a map key of `keys` is no
/// longer always the key's id. Older layouts are upgraded when read; a
/// build of layout 2 must refuse a layout-3 store, as it would show the
/// records of a multi-Region key as unrelated keys.
pub const STORE_LAYOUT: u32 = 3;

/// Everything the store holds. Serialized as JSON, then sealed as a whole
/// under the root key (see store.rs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreData {
    /// Absent (1) in stores written before regions.
    #[serde(default = "layout_one")]
    pub layout: u32,
    /// The default region: of requests that name none (the embedded store,
    /// the Unix socket without SigV4) and of keys from layout 1.
    pub region: String,
    /// The account of every ARN; IAM is global, like the account.
    pub account: String,
    pub keys: BTreeMap<Uuid, Key>,
    /// Region → full alias name ("alias/…") → target. Aliases are regional at
    /// AWS: the same name may point at different keys in two regions.
    #[serde(default)]
    pub aliases_by_region: BTreeMap<String, BTreeMap<String, Alias>>,
    /// Layout 1's aliases (all of the default region); moved on upgrade.
    #[serde(default, rename = "aliases", skip_serializing)]
    legacy_aliases: BTreeMap<String, Alias>,
    /// Users, groups and access keys of `kmsfs kms serve` (see iam.rs).
    #[serde(default, skip_serializing_if = "super::iam::IamData::is_empty")]
    pub iam: super::iam::IamData,
    /// GetKeyLastUsage's records, as last written (LocalKms holds newer
    /// ones in memory until its next write; see local/usage.rs).
    #[serde(default, skip_serializing_if = "UsageRecords::is_empty")]
    pub usage: UsageRecords,
}

/// The last successful cryptographic use of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUse {
    pub when: Timestamp,
    /// The AWS operation name (Encrypt, Decrypt, …).
    pub operation: String,
}

/// Last uses per key, and since when they are recorded at all (stores made
/// before kmsfs tracked usage have keys older than that).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UsageRecords {
    #[serde(default)]
    pub tracking_since: Option<Timestamp>,
    #[serde(default)]
    pub last: BTreeMap<Uuid, LastUse>,
}

impl UsageRecords {
    pub fn is_empty(&self) -> bool {
        self.tracking_since.is_none() && self.last.is_empty()
    }
}

fn layout_one() -> u32 {
    1
}

/// What a lookup may name.
pub enum KeyRef<'a> {
    Id(Uuid),
    /// `mrk-…`: the id shared by the keys of a multi-Region key.
    MultiRegion(Uuid),
    Alias(&'a str),
}

impl StoreData {
    pub fn new(region: &str, account: &str) -> StoreData {
        StoreData {
            layout: STORE_LAYOUT,
            region: region.into(),
            account: account.into(),
            keys: BTreeMap::new(),
            aliases_by_region: BTreeMap::new(),
            legacy_aliases: BTreeMap::new(),
            iam: Default::default(),
            usage: Default::default(),
        }
    }

    /// Brings contents read from disk to [`STORE_LAYOUT`]; refuses layouts
    /// from a newer build rather than dropping what it does not know.
    pub fn upgrade(&mut self) -> Result<()> {
        if self.layout > STORE_LAYOUT {
            return Err(KmsError::store(format!(
                "the key store has layout {}, newer than this build understands ({STORE_LAYOUT}); it was left untouched",
                self.layout
            )));
        }
        for key in self.keys.values_mut() {
            if key.region.is_empty() {
                key.region = self.region.clone();
            }
        }
        if !self.legacy_aliases.is_empty() {
            let legacy = std::mem::take(&mut self.legacy_aliases);
            self.aliases_by_region
                .entry(self.region.clone())
                .or_default()
                .extend(legacy);
        }
        // 2 → 3 converts nothing: no multi-Region key existed before 3, and
        // every single-Region key stays where it is, under its own id.
        self.layout = STORE_LAYOUT;
        Ok(())
    }

    /// The region a request is served in: the one it names, else the default.
    pub fn region_or_default<'a>(&'a self, requested: Option<&'a str>) -> &'a str {
        requested.unwrap_or(&self.region)
    }

    /// The ARN of key `id`, in the key's own region.
    pub fn key_arn(&self, id: &Uuid) -> String {
        match self.keys.get(id) {
            Some(k) => format!(
                "arn:aws:kms:{}:{}:key/{}",
                k.region,
                self.account,
                k.public_id()
            ),
            None => self.key_arn_in(&self.region, id),
        }
    }

    /// The ARN key `id` would have in `region` (for "does not exist" errors).
    pub fn key_arn_in(&self, region: &str, id: &Uuid) -> String {
        format!("arn:aws:kms:{region}:{}:key/{id}", self.account)
    }

    pub fn alias_arn(&self, region: &str, alias: &str) -> String {
        format!("arn:aws:kms:{region}:{}:{alias}", self.account)
    }

    /// The aliases of `region`, by name.
    pub fn aliases(&self, region: &str) -> impl Iterator<Item = (&String, &Alias)> {
        self.aliases_by_region.get(region).into_iter().flatten()
    }

    pub fn alias(&self, region: &str, name: &str) -> Option<&Alias> {
        self.aliases_by_region.get(region)?.get(name)
    }

    /// The alias table of `region`, created on first use.
    pub fn aliases_mut(&mut self, region: &str) -> &mut BTreeMap<String, Alias> {
        self.aliases_by_region
            .entry(region.to_string())
            .or_default()
    }

    /// Parses a key id, key ARN, alias name or alias ARN sent to `region`
    /// (None: the request named no region). Returns the region the reference
    /// is bound to: an ARN's own, else the request's.
    pub fn parse_ref<'a>(
        &self,
        region: Option<&'a str>,
        key_id: &'a str,
    ) -> Result<(Option<&'a str>, KeyRef<'a>)> {
        let not_found = || KmsError::NotFound(format!("Invalid keyId '{key_id}'"));
        if let Some(rest) = key_id.strip_prefix("arn:") {
            // arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            if parts.len() != 5 || parts[1] != "kms" || parts[2].is_empty() {
                return Err(not_found());
            }
            // AWS answers a key of another account or region as absent:
            // nothing tells the caller whether it exists there.
            if parts[3] != self.account || region.is_some_and(|r| r != parts[2]) {
                return Err(KmsError::NotFound(format!("Key '{key_id}' does not exist")));
            }
            let bound = Some(parts[2]);
            let resource = parts[4];
            if let Some(id) = resource.strip_prefix("key/") {
                return multi_region::parse_key_id(id)
                    .map(|id| (bound, id))
                    .ok_or_else(not_found);
            }
            if resource.starts_with("alias/") {
                return Ok((
                    bound,
                    KeyRef::Alias(&key_id[key_id.len() - resource.len()..]),
                ));
            }
            return Err(not_found());
        }
        if key_id.starts_with("alias/") {
            return Ok((region, KeyRef::Alias(key_id)));
        }
        multi_region::parse_key_id(key_id)
            .map(|id| (region, id))
            .ok_or_else(not_found)
    }

    /// Resolves any key reference sent to `region` to the key's id. A key of
    /// another region is NotFound; with no region, a bare key id finds its
    /// key wherever it lives and an alias is looked up in the default region.
    pub fn resolve(&self, region: Option<&str>, key_id: &str) -> Result<Uuid> {
        let (bound, reference) = self.parse_ref(region, key_id)?;
        // A bare UUID names a single-Region key only: the records of a
        // multi-Region key are found by their `mrk-` id.
        let single_region_only = matches!(reference, KeyRef::Id(_));
        let id = match reference {
            KeyRef::Id(id) => id,
            KeyRef::MultiRegion(mrk) => {
                let in_region = self.region_or_default(bound);
                return self.multi_region_key_in(bound, &mrk).ok_or_else(|| {
                    KmsError::NotFound(format!(
                        "Key 'arn:aws:kms:{in_region}:{}:key/{}' does not exist",
                        self.account,
                        multi_region::mrk_id(&mrk)
                    ))
                });
            }
            KeyRef::Alias(name) => {
                let in_region = self.region_or_default(bound);
                self.alias(in_region, name)
                    .ok_or_else(|| {
                        KmsError::NotFound(format!(
                            "Alias {} is not found.",
                            self.alias_arn(in_region, name)
                        ))
                    })?
                    .target
            }
        };
        match self.keys.get(&id) {
            Some(key)
                if bound.is_none_or(|b| b == key.region)
                    && !(single_region_only && key.multi_region.is_some()) =>
            {
                Ok(id)
            }
            _ => Err(KmsError::NotFound(format!(
                "Key '{}' does not exist",
                self.key_arn_in(self.region_or_default(bound), &id)
            ))),
        }
    }

    /// Resolves a reference that must be a key id or key ARN (not an alias),
    /// as AWS requires for management calls such as ScheduleKeyDeletion.
    pub fn resolve_key_only(&self, region: Option<&str>, key_id: &str) -> Result<Uuid> {
        match self.parse_ref(region, key_id)?.1 {
            KeyRef::Alias(_) => Err(KmsError::NotFound(format!(
                "Invalid keyId '{key_id}': this operation takes a key id or key ARN, not an alias"
            ))),
            KeyRef::Id(_) | KeyRef::MultiRegion(_) => self.resolve(region, key_id),
        }
    }

    pub fn key(&self, id: &Uuid) -> Result<&Key> {
        self.keys
            .get(id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{}' does not exist", self.key_arn(id))))
    }

    pub fn key_mut(&mut self, id: &Uuid) -> Result<&mut Key> {
        let arn = self.key_arn(id);
        self.keys
            .get_mut(id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{arn}' does not exist")))
    }

    /// Whether `maintain(now)` would change anything.
    pub fn needs_maintenance(&self, now: Timestamp) -> bool {
        self.keys.values().any(|k| {
            k.deletion_date.is_some_and(|d| now >= d)
                || (k.state == KeyState::Enabled && k.next_rotation.is_some_and(|r| now >= r))
        })
    }

    /// Applies what time alone decides: destroys keys whose deletion window
    /// has passed (their material, metadata and aliases are removed from the
    /// store, not flagged), and rotates keys whose rotation date has come.
    /// Returns the ids of destroyed keys and of rotated keys, for the audit log.
    pub fn maintain(&mut self, now: Timestamp) -> (Vec<Uuid>, Vec<Uuid>) {
        let doomed: Vec<Uuid> = self
            .keys
            .values()
            .filter(|k| k.deletion_date.is_some_and(|d| now >= d))
            .map(|k| k.key_id)
            .collect();
        for id in &doomed {
            self.keys.remove(id);
            self.usage.last.remove(id);
            for aliases in self.aliases_by_region.values_mut() {
                aliases.retain(|_, a| a.target != *id);
            }
        }
        self.aliases_by_region
            .retain(|_, aliases| !aliases.is_empty());
        if !doomed.is_empty() {
            self.start_primary_deletions(now);
        }
        let mut rotated = Vec::new();
        for key in self.keys.values_mut() {
            if key.state != KeyState::Enabled {
                continue;
            }
            if let (Some(next), Some(period)) = (key.next_rotation, key.rotation_period_days)
                && now >= next
            {
                // Rotate once even if several periods were missed (AWS
                // does not catch up either), then schedule from now.
                key.rotate(now, RotationType::Automatic);
                key.next_rotation = Some(now + i64::from(period) * SECONDS_PER_DAY);
                rotated.push(key.key_id);
            }
        }
        (doomed, rotated)
    }
}

/// AWS alias naming rules.
pub fn validate_alias_name(name: &str) -> Result<()> {
    let rest = name.strip_prefix("alias/").ok_or_else(|| {
        KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: Member must begin with alias/"
        ))
    })?;
    if rest.is_empty() || name.len() > 256 {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: Member must have length between 7 and 256"
        )));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )));
    }
    if rest.starts_with("aws/") {
        return Err(KmsError::InvalidAliasName(format!(
            "Alias {name} must not begin with alias/aws/: that prefix is reserved for AWS managed keys"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(now: Timestamp) -> Key {
        Key {
            key_id: Uuid::new_v4(),
            region: "local".into(),
            description: String::new(),
            creation_date: now,
            origin: Origin::AwsKms,
            state: KeyState::Enabled,
            deletion_date: None,
            pending_window_days: None,
            rotation_period_days: None,
            next_rotation: None,
            versions: vec![KeyVersion {
                version: 1,
                created: now,
                rotation_type: None,
                material: KeyMaterial::random(),
            }],
            policy: String::new(),
            parsed_policy: Default::default(),
            tags: vec![],
            pending_import: None,
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            private_material: None,
            deleted_material_digest: None,
            grants: Vec::new(),
            multi_region: None,
        }
    }

    /// A key as stores wrote it before key specs existed (no key_spec,
    /// key_usage or private_material) loads as a symmetric key.
    #[test]
    fn keys_of_old_stores_load_as_symmetric() {
        let old = r#"{"key_id": "704493cd-90ba-4c14-a14d-a430ff940fdc", "description": "",
            "creation_date": 1795886161, "origin": "AWS_KMS", "state": "Enabled",
            "deletion_date": null, "pending_window_days": null,
            "rotation_period_days": 365, "next_rotation": 1827422161,
            "versions": [{"version": 1, "created": 1795886161, "rotation_type": null,
                          "material": "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="}],
            "policy": "{}", "tags": [{"key": "team", "value": "storage"}],
            "pending_import": null}"#;
        let key: Key = serde_json::from_str(old).unwrap();
        assert_eq!(key.key_spec, KeySpec::SymmetricDefault);
        assert_eq!(key.key_usage, KeyUsage::EncryptDecrypt);
        assert!(key.private_material.is_none());
        assert_eq!(key.versions[0].material.as_bytes(), &[7u8; 32]);
        // Written back, a symmetric key has no private_material field, and
        // its new fields read back the same.
        let json = serde_json::to_value(&key).unwrap();
        assert!(json.get("private_material").is_none());
        assert_eq!(json["key_spec"], "SYMMETRIC_DEFAULT");
        assert_eq!(json["key_usage"], "ENCRYPT_DECRYPT");
    }

    #[test]
    fn private_material_is_kept_and_never_printed() {
        let mut k = key(0);
        k.key_spec = KeySpec::Hmac256;
        k.key_usage = KeyUsage::GenerateVerifyMac;
        k.versions.clear();
        k.private_material = Some(SecretBytes(zeroize::Zeroizing::new(vec![0x41; 32])));
        assert!(k.has_material());
        let shown = format!("{k:?}");
        assert!(
            !shown.contains("65, 65") && !shown.contains("QUFB"),
            "{shown}"
        );
        let back: Key = serde_json::from_str(&serde_json::to_string(&k).unwrap()).unwrap();
        assert_eq!(back.key_spec, KeySpec::Hmac256);
        assert_eq!(back.private_material.unwrap().0.as_slice(), &[0x41; 32]);
    }

    #[test]
    fn alias_rules() {
        assert!(validate_alias_name("alias/ok-name_1/x").is_ok());
        assert!(matches!(
            validate_alias_name("noprefix"),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            validate_alias_name("alias/"),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            validate_alias_name("alias/sp ace"),
            Err(KmsError::Validation(_))
        ));
        assert!(matches!(
            validate_alias_name("alias/aws/ebs"),
            Err(KmsError::InvalidAliasName(_))
        ));
    }

    #[test]
    fn references_resolve() {
        let mut data = StoreData::new("local", "000000000000");
        let k = key(0);
        let id = k.key_id;
        data.keys.insert(id, k);
        data.aliases_mut("local").insert(
            "alias/a".into(),
            Alias {
                target: id,
                created: 0,
                updated: 0,
            },
        );
        for region in [None, Some("local")] {
            assert_eq!(data.resolve(region, &id.to_string()).unwrap(), id);
            assert_eq!(data.resolve(region, &data.key_arn(&id)).unwrap(), id);
            assert_eq!(data.resolve(region, "alias/a").unwrap(), id);
            let alias_arn = data.alias_arn("local", "alias/a");
            assert_eq!(data.resolve(region, &alias_arn).unwrap(), id);
            assert!(matches!(
                data.resolve(region, "alias/b"),
                Err(KmsError::NotFound(_))
            ));
            assert!(matches!(
                data.resolve(region, "garbage"),
                Err(KmsError::NotFound(_))
            ));
            assert!(matches!(
                data.resolve_key_only(region, "alias/a"),
                Err(KmsError::NotFound(_))
            ));
        }
        let foreign = format!("arn:aws:kms:local:123456789012:key/{id}");
        assert!(matches!(
            data.resolve(None, &foreign),
            Err(KmsError::NotFound(m)) if m == format!("Key '{foreign}' does not exist")
        ));
    }

    #[test]
    fn keys_and_aliases_are_regional() {
        let mut data = StoreData::new("local", "000000000000");
        let k = key(0);
        let id = k.key_id;
        data.keys.insert(id, k);
        data.aliases_mut("local").insert(
            "alias/a".into(),
            Alias {
                target: id,
                created: 0,
                updated: 0,
            },
        );
        let elsewhere = Some("eu-west-1");
        let not_found = |r: Result<Uuid>| matches!(r, Err(KmsError::NotFound(_)));
        assert!(not_found(data.resolve(elsewhere, &id.to_string())));
        assert!(not_found(data.resolve(elsewhere, &data.key_arn(&id))));
        assert!(not_found(data.resolve(elsewhere, "alias/a")));
        // The ARN's region, not the request's, binds the reference…
        let arn_elsewhere = data.key_arn_in("eu-west-1", &id);
        assert!(not_found(data.resolve(None, &arn_elsewhere)));
        // …and the not-found message names the region asked about.
        let Err(KmsError::NotFound(m)) = data.resolve(elsewhere, &id.to_string()) else {
            panic!("found from another region");
        };
        assert!(m.contains(":eu-west-1:"), "{m}");
        // The same alias name may point elsewhere in another region.
        let mut k2 = key(0);
        k2.region = "eu-west-1".into();
        let id2 = k2.key_id;
        data.keys.insert(id2, k2);
        data.aliases_mut("eu-west-1").insert(
            "alias/a".into(),
            Alias {
                target: id2,
                created: 0,
                updated: 0,
            },
        );
        assert_eq!(data.resolve(elsewhere, "alias/a").unwrap(), id2);
        assert_eq!(data.resolve(Some("local"), "alias/a").unwrap(), id);
        assert_eq!(data.resolve(None, "alias/a").unwrap(), id);
        assert_eq!(data.resolve(None, &id2.to_string()).unwrap(), id2);
    }

    /// The records of a multi-Region key are found by `mrk-` id in their
    /// region only; neither their map keys nor the shared id written as a
    /// UUID name them, and a rotation reaches every record.
    #[test]
    fn multi_region_records_resolve_by_mrk_id_only() {
        let mut data = StoreData::new("local", "000000000000");
        let mrk = Uuid::new_v4();
        let mut handles = vec![];
        for (region, primary) in [("us-east-1", true), ("eu-west-1", false)] {
            let mut k = key(0);
            k.region = region.into();
            k.multi_region = Some(MultiRegion { id: mrk, primary });
            handles.push(k.key_id);
            data.keys.insert(k.key_id, k);
        }
        let text = format!("mrk-{}", mrk.simple());
        assert_eq!(data.resolve(Some("us-east-1"), &text).unwrap(), handles[0]);
        assert_eq!(data.resolve(Some("eu-west-1"), &text).unwrap(), handles[1]);
        assert_eq!(
            data.resolve(None, &text).unwrap(),
            handles[0],
            "the primary"
        );
        assert!(
            matches!(data.resolve(Some("ap-south-1"), &text), Err(KmsError::NotFound(m)) if m.contains(&text))
        );
        let eu_arn = format!("arn:aws:kms:eu-west-1:000000000000:key/{text}");
        assert_eq!(data.key_arn(&handles[1]), eu_arn);
        assert_eq!(data.resolve(None, &eu_arn).unwrap(), handles[1]);
        for region in [None, Some("us-east-1"), Some("eu-west-1")] {
            for uuid in [handles[0], handles[1], mrk] {
                assert!(matches!(
                    data.resolve(region, &uuid.to_string()),
                    Err(KmsError::NotFound(_))
                ));
            }
        }
        assert_eq!(
            data.ciphertext_key(Some("eu-west-1"), &mrk),
            Some(handles[1])
        );
        data.key_mut(&handles[0])
            .unwrap()
            .rotate(5, RotationType::OnDemand);
        data.sync_multi_region();
        let replica = data.key(&handles[1]).unwrap();
        assert_eq!(replica.versions.len(), 2);
        assert_eq!(
            replica.versions[1].material.as_bytes(),
            data.key(&handles[0]).unwrap().versions[1]
                .material
                .as_bytes()
        );
    }

    #[test]
    fn layout_one_stores_upgrade_keeping_their_arns() {
        let id = "704493cd-90ba-4c14-a14d-a430ff940fdc";
        let json = format!(
            r#"{{"region":"local","account":"000000000000","keys":{{"{id}":{{
              "key_id":"{id}","description":"","creation_date":1795886161,
              "origin":"AWS_KMS","state":"Enabled","deletion_date":null,
              "pending_window_days":null,"rotation_period_days":null,
              "next_rotation":null,"versions":[],"policy":"","tags":[],
              "pending_import":null}}}},
              "aliases":{{"alias/t":{{"target":"{id}","created":1,"updated":1}}}}}}"#
        );
        let mut data: StoreData = serde_json::from_str(&json).unwrap();
        assert_eq!(data.layout, 1);
        data.upgrade().unwrap();
        assert_eq!(data.layout, STORE_LAYOUT);
        let uuid = Uuid::parse_str(id).unwrap();
        assert_eq!(
            data.key_arn(&uuid),
            format!("arn:aws:kms:local:000000000000:key/{id}")
        );
        assert_eq!(data.resolve(Some("local"), "alias/t").unwrap(), uuid);
        let written = serde_json::to_value(&data).unwrap();
        assert!(written.get("aliases").is_none(), "{written}");
        assert_eq!(written["layout"], STORE_LAYOUT);
        assert_eq!(written["keys"][id]["region"], "local");

        let mut future = data.clone();
        future.layout = STORE_LAYOUT + 1;
        assert!(matches!(future.upgrade(), Err(KmsError::Store(_))));
    }

    #[test]
    fn maintenance_rotates_and_destroys() {
        let mut data = StoreData::new("local", "000000000000");
        let mut rotating = key(0);
        rotating.rotation_period_days = Some(90);
        rotating.next_rotation = Some(90 * SECONDS_PER_DAY);
        let rid = rotating.key_id;
        let mut doomed = key(0);
        doomed.state = KeyState::PendingDeletion;
        doomed.deletion_date = Some(7 * SECONDS_PER_DAY);
        let did = doomed.key_id;
        data.keys.insert(rid, rotating);
        data.keys.insert(did, doomed);
        data.aliases_mut("local").insert(
            "alias/d".into(),
            Alias {
                target: did,
                created: 0,
                updated: 0,
            },
        );

        assert!(!data.needs_maintenance(7 * SECONDS_PER_DAY - 1));
        assert!(data.needs_maintenance(7 * SECONDS_PER_DAY));
        let (gone, rotated) = data.maintain(7 * SECONDS_PER_DAY);
        assert_eq!(gone, vec![did]);
        assert!(rotated.is_empty());
        assert!(!data.keys.contains_key(&did));
        assert!(data.aliases("local").next().is_none());

        let (_, rotated) = data.maintain(90 * SECONDS_PER_DAY);
        assert_eq!(rotated, vec![rid]);
        let k = data.key(&rid).unwrap();
        assert_eq!(k.versions.len(), 2);
        assert_eq!(k.next_rotation, Some(180 * SECONDS_PER_DAY));
        assert!(!data.needs_maintenance(90 * SECONDS_PER_DAY + 1));
    }
}
