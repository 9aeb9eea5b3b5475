//! The contents of the key store: CMKs, their versions, aliases, and the pure
//! rules of their life cycle (states, rotation schedule, deletion window).
//! Nothing here does I/O or reads the clock: `now` is always passed in, so
//! tests can move time at will.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{KmsError, Result};
use super::material::{KeyMaterial, SecretBytes};

pub const SECONDS_PER_DAY: i64 = 86_400;

pub use super::clock::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
    PendingImport,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
            KeyState::PendingImport => "PendingImport",
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
    /// After DeleteImportedKeyMaterial: a digest of the deleted material,
    /// so that only the same material can be imported again (as AWS
    /// requires) without keeping the material itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_material_digest: Option<Vec<u8>>,
}

impl Key {
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
                if state == KeyState::PendingDeletion {
                    "deletion"
                } else {
                    "import"
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

/// Everything the store holds. Serialized as JSON, then sealed as a whole
/// under the root key (see store.rs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreData {
    pub region: String,
    pub account: String,
    pub keys: BTreeMap<Uuid, Key>,
    /// Full alias name ("alias/…") → target.
    pub aliases: BTreeMap<String, Alias>,
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

/// What a lookup may name.
pub enum KeyRef<'a> {
    Id(Uuid),
    Alias(&'a str),
}

impl StoreData {
    pub fn new(region: &str, account: &str) -> StoreData {
        StoreData {
            region: region.into(),
            account: account.into(),
            keys: BTreeMap::new(),
            aliases: BTreeMap::new(),
            iam: Default::default(),
            usage: Default::default(),
        }
    }

    pub fn key_arn(&self, id: &Uuid) -> String {
        format!("arn:aws:kms:{}:{}:key/{id}", self.region, self.account)
    }

    pub fn alias_arn(&self, alias: &str) -> String {
        format!("arn:aws:kms:{}:{}:{alias}", self.region, self.account)
    }

    /// Parses a key id, key ARN, alias name or alias ARN.
    pub fn parse_ref<'a>(&self, key_id: &'a str) -> Result<KeyRef<'a>> {
        let not_found = || KmsError::NotFound(format!("Invalid keyId '{key_id}'"));
        if let Some(rest) = key_id.strip_prefix("arn:") {
            // arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            if parts.len() != 5 || parts[1] != "kms" {
                return Err(not_found());
            }
            if parts[2] != self.region || parts[3] != self.account {
                return Err(KmsError::NotFound(format!(
                    "Key '{key_id}' does not exist (it names another region or account)"
                )));
            }
            let resource = parts[4];
            if let Some(id) = resource.strip_prefix("key/") {
                return Uuid::parse_str(id).map(KeyRef::Id).map_err(|_| not_found());
            }
            if resource.starts_with("alias/") {
                return Ok(KeyRef::Alias(&key_id[key_id.len() - resource.len()..]));
            }
            return Err(not_found());
        }
        if key_id.starts_with("alias/") {
            return Ok(KeyRef::Alias(key_id));
        }
        Uuid::parse_str(key_id)
            .map(KeyRef::Id)
            .map_err(|_| not_found())
    }

    /// Resolves any key reference to the key's id.
    pub fn resolve(&self, key_id: &str) -> Result<Uuid> {
        let id = match self.parse_ref(key_id)? {
            KeyRef::Id(id) => id,
            KeyRef::Alias(name) => {
                self.aliases
                    .get(name)
                    .ok_or_else(|| {
                        KmsError::NotFound(format!("Alias {} is not found.", self.alias_arn(name)))
                    })?
                    .target
            }
        };
        if self.keys.contains_key(&id) {
            Ok(id)
        } else {
            Err(KmsError::NotFound(format!(
                "Key '{}' does not exist",
                self.key_arn(&id)
            )))
        }
    }

    /// Resolves a reference that must be a key id or key ARN (not an alias),
    /// as AWS requires for management calls such as ScheduleKeyDeletion.
    pub fn resolve_key_only(&self, key_id: &str) -> Result<Uuid> {
        match self.parse_ref(key_id)? {
            KeyRef::Alias(_) => Err(KmsError::NotFound(format!(
                "Invalid keyId '{key_id}': this operation takes a key id or key ARN, not an alias"
            ))),
            KeyRef::Id(_) => self.resolve(key_id),
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
            self.aliases.retain(|_, a| a.target != *id);
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
            deleted_material_digest: None,
        }
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
        data.aliases.insert(
            "alias/a".into(),
            Alias {
                target: id,
                created: 0,
                updated: 0,
            },
        );
        assert_eq!(data.resolve(&id.to_string()).unwrap(), id);
        assert_eq!(data.resolve(&data.key_arn(&id)).unwrap(), id);
        assert_eq!(data.resolve("alias/a").unwrap(), id);
        assert_eq!(data.resolve(&data.alias_arn("alias/a")).unwrap(), id);
        assert!(matches!(
            data.resolve("alias/b"),
            Err(KmsError::NotFound(_))
        ));
        assert!(matches!(
            data.resolve("garbage"),
            Err(KmsError::NotFound(_))
        ));
        assert!(matches!(
            data.resolve_key_only("alias/a"),
            Err(KmsError::NotFound(_))
        ));
        let foreign = format!("arn:aws:kms:us-east-1:123456789012:key/{id}");
        assert!(matches!(data.resolve(&foreign), Err(KmsError::NotFound(_))));
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
        data.aliases.insert(
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
        assert!(data.aliases.is_empty());

        let (_, rotated) = data.maintain(90 * SECONDS_PER_DAY);
        assert_eq!(rotated, vec![rid]);
        let k = data.key(&rid).unwrap();
        assert_eq!(k.versions.len(), 2);
        assert_eq!(k.next_rotation, Some(180 * SECONDS_PER_DAY));
        assert!(!data.needs_maintenance(90 * SECONDS_PER_DAY + 1));
    }
}
