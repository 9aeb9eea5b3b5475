//! Multi-Region keys through the library interface: CreateKey with
//! MultiRegion, ReplicateKey, ciphertexts across regions, shared rotation,
//! UpdatePrimaryRegion, and deletion of a primary that has replicas.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tempfile::TempDir;

use kmsfs_kms::blob::EncryptionContext;
use kmsfs_kms::clock::{Clock, ManualClock};
use kmsfs_kms::local::{CreateKeyInput, LocalKms, ReplicateKeyInput};
use kmsfs_kms::model::{Origin, SECONDS_PER_DAY};
use kmsfs_kms::store::RootSecret;
use kmsfs_kms::{Caller, KeyState, KmsError};

const T0: i64 = 1_700_000_000;
const DAY: i64 = SECONDS_PER_DAY;
const US: &str = "us-east-1";
const EU: &str = "eu-west-1";

fn caller(uid: u32, region: &str) -> Caller {
    Caller {
        uid,
        gid: uid,
        groups: vec![],
        iam_user: None,
        region: Some(region.into()),
    }
}

fn owner(region: &str) -> Caller {
    caller(1000, region)
}

fn code<T>(r: Result<T, KmsError>) -> &'static str {
    match r {
        Ok(_) => panic!("the call succeeded but was expected to fail"),
        Err(e) => e.code(),
    }
}

struct Env {
    _dir: TempDir,
    clock: Arc<ManualClock>,
    kms: LocalKms,
    path: std::path::PathBuf,
}

fn open(path: &Path, clock: &Arc<ManualClock>) -> LocalKms {
    let clock: Arc<dyn Clock> = clock.clone();
    LocalKms::open(path, &RootSecret::KeyFile, clock)
        .unwrap()
        .with_owner(owner("local").uid)
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore");
        let clock = Arc::new(ManualClock::new(T0));
        let kms = open(&path, &clock);
        Env {
            _dir: dir,
            clock,
            kms,
            path,
        }
    }

    fn mrk(&self) -> String {
        let info = self
            .kms
            .create_key(
                &owner(US),
                CreateKeyInput {
                    multi_region: true,
                    ..Default::default()
                },
            )
            .unwrap();
        info.key_id
    }

    fn replicate(&self, key: &str, region: &str) -> kmsfs_kms::local::ReplicaInfo {
        self.kms
            .replicate_key(&owner(US), key, replica_in(region))
            .unwrap()
    }

    fn encrypt(&self, region: &str, key: &str, plaintext: &[u8]) -> Vec<u8> {
        self.kms
            .encrypt(&owner(region), key, plaintext, &EncryptionContext::new())
            .unwrap()
            .ciphertext_blob
    }

    fn decrypt(&self, region: &str, blob: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.kms
            .decrypt(&owner(region), blob, &EncryptionContext::new(), None)
            .map(|d| d.plaintext.to_vec())
    }

    fn state(&self, region: &str, key: &str) -> KeyState {
        self.kms.describe_key(&owner(region), key).unwrap().state
    }
}

fn replica_in(region: &str) -> ReplicateKeyInput {
    ReplicateKeyInput {
        replica_region: region.into(),
        policy: None,
        bypass_policy_lockout_safety_check: false,
        description: None,
        tags: vec![],
    }
}

#[test]
fn primary_keys_have_mrk_ids_and_a_configuration() {
    let env = Env::new();
    let key = env.mrk();
    let hex = key.strip_prefix("mrk-").expect("an mrk- id");
    assert_eq!(hex.len(), 32);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let info = env.kms.describe_key(&owner(US), &key).unwrap();
    assert_eq!(info.arn, format!("arn:aws:kms:{US}:000000000000:key/{key}"));
    let config = info.multi_region.expect("a multi-Region configuration");
    assert!(config.primary);
    assert_eq!(config.key_type(), "PRIMARY");
    assert_eq!(config.primary_key, (info.arn.clone(), US.to_string()));
    assert!(config.replica_keys.is_empty());
    // Found by its ARN and listed under its mrk- id; the same 128 bits
    // written as a UUID name no key.
    assert_eq!(
        env.kms.describe_key(&owner(US), &info.arn).unwrap().key_id,
        key
    );
    let listed = env.kms.list_keys(&owner(US)).unwrap();
    assert_eq!(listed, vec![(key.clone(), info.arn.clone())]);
    let as_uuid = uuid::Uuid::parse_str(hex).unwrap().to_string();
    assert_eq!(
        code(env.kms.describe_key(&owner(US), &as_uuid)),
        "NotFoundException"
    );

    // Single-Region keys keep UUIDs and have no configuration.
    let single = env
        .kms
        .create_key(&owner(US), CreateKeyInput::default())
        .unwrap();
    assert!(uuid::Uuid::parse_str(&single.key_id).is_ok());
    assert!(single.multi_region.is_none());

    // Asymmetric and HMAC specs may be multi-Region; imported material not.
    for spec in ["RSA_2048", "HMAC_256", "ECC_NIST_P256"] {
        let usage = if spec.starts_with("HMAC") {
            "GENERATE_VERIFY_MAC"
        } else {
            "SIGN_VERIFY"
        };
        let k = env
            .kms
            .create_key(
                &owner(US),
                CreateKeyInput {
                    key_spec: spec.into(),
                    key_usage: usage.into(),
                    multi_region: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(k.key_id.starts_with("mrk-"), "{spec}");
        let r = env.replicate(&k.key_id, EU);
        assert_eq!(r.metadata.key_spec, k.key_spec);
    }
    let imported = env.kms.create_key(
        &owner(US),
        CreateKeyInput {
            origin: Origin::External,
            multi_region: true,
            ..Default::default()
        },
    );
    assert_eq!(code(imported), "UnsupportedOperationException");
}

#[test]
fn replicas_share_id_and_material_but_not_the_rest() {
    let env = Env::new();
    let key = env.mrk();
    let before = env.encrypt(US, &key, b"from the primary");
    let replica = env
        .kms
        .replicate_key(
            &owner(US),
            &key,
            ReplicateKeyInput {
                description: Some("the Irish copy".into()),
                tags: vec![("site".into(), "dublin".into())],
                ..replica_in(EU)
            },
        )
        .unwrap();
    let meta = &replica.metadata;
    assert_eq!(meta.key_id, key);
    assert_eq!(meta.arn, format!("arn:aws:kms:{EU}:000000000000:key/{key}"));
    assert_eq!(meta.description, "the Irish copy");
    assert_eq!(meta.state, KeyState::Enabled);
    assert_eq!(
        replica.tags,
        vec![("site".to_string(), "dublin".to_string())]
    );
    assert!(
        replica.policy.contains("kms:*"),
        "default policy: {}",
        replica.policy
    );
    let config = meta.multi_region.clone().unwrap();
    assert!(!config.primary);
    assert_eq!(config.primary_key.1, US);
    assert_eq!(
        config.replica_keys,
        vec![(meta.arn.clone(), EU.to_string())]
    );
    // The primary now lists its replica; its own description is untouched.
    let primary = env.kms.describe_key(&owner(US), &key).unwrap();
    assert_eq!(
        primary.multi_region.unwrap().replica_keys,
        config.replica_keys
    );
    assert_eq!(primary.description, "");

    // A ciphertext of either decrypts in both regions …
    assert_eq!(env.decrypt(EU, &before).unwrap(), b"from the primary");
    let from_eu = env.encrypt(EU, &key, b"from the replica");
    assert_eq!(env.decrypt(US, &from_eu).unwrap(), b"from the replica");
    let d = env
        .kms
        .decrypt(&owner(EU), &before, &EncryptionContext::new(), Some(&key))
        .unwrap();
    assert_eq!(d.key_arn, meta.arn, "answered by the region's own key");
    // … but not where the key has no replica, and a single-Region key's
    // ciphertext stays in its region.
    assert_eq!(
        code(env.decrypt("ap-south-1", &before)),
        "InvalidCiphertextException"
    );
    let single = env
        .kms
        .create_key(&owner(US), CreateKeyInput::default())
        .unwrap();
    let single_blob = env.encrypt(US, &single.key_id, b"stays");
    assert_eq!(
        code(env.decrypt(EU, &single_blob)),
        "InvalidCiphertextException"
    );

    // State is per region: a disabled replica refuses, the primary does not.
    env.kms.disable_key(&owner(EU), &key).unwrap();
    assert_eq!(code(env.decrypt(EU, &before)), "DisabledException");
    assert_eq!(env.decrypt(US, &from_eu).unwrap(), b"from the replica");
    env.kms.enable_key(&owner(EU), &key).unwrap();

    // Aliases are regional: one in EU does not exist in US.
    env.kms.create_alias(&owner(EU), "alias/mrk", &key).unwrap();
    let aliases = env.kms.list_aliases(&owner(EU), None).unwrap();
    assert_eq!(aliases[0].target, key);
    assert!(env.kms.list_aliases(&owner(US), None).unwrap().is_empty());
    let via_alias = env.encrypt(EU, "alias/mrk", b"via the alias");
    assert_eq!(env.decrypt(US, &via_alias).unwrap(), b"via the alias");

    // Everything survives a reopen of the store.
    let again = open(&env.path, &env.clock);
    let d = again
        .decrypt(&owner(EU), &from_eu, &EncryptionContext::new(), None)
        .unwrap();
    assert_eq!(d.plaintext.to_vec(), b"from the replica");
}

#[test]
fn replication_refusals() {
    let env = Env::new();
    let key = env.mrk();
    env.replicate(&key, EU);
    let single = env
        .kms
        .create_key(&owner(US), CreateKeyInput::default())
        .unwrap();
    let r = |who: &Caller, key: &str, region: &str| {
        code(env.kms.replicate_key(who, key, replica_in(region)))
    };
    assert_eq!(
        r(&owner(US), &single.key_id, EU),
        "UnsupportedOperationException"
    );
    assert_eq!(
        r(&owner(EU), &key, "ap-south-1"),
        "UnsupportedOperationException"
    );
    assert_eq!(r(&owner(US), &key, EU), "AlreadyExistsException");
    assert_eq!(r(&owner(US), &key, US), "AlreadyExistsException");
    for bad in ["EU_WEST", "", "eu west"] {
        assert_eq!(r(&owner(US), &key, bad), "ValidationException", "{bad:?}");
    }
    // The key must be named in its region; aliases are not accepted.
    assert_eq!(
        r(&owner(EU), "alias/none", "ap-south-1"),
        "NotFoundException"
    );
    // kms:ReplicateKey on the primary is needed.
    assert_eq!(
        r(&caller(2000, US), &key, "ap-south-1"),
        "AccessDeniedException"
    );
    // A malformed policy is refused before anything is made.
    let bad_policy = env.kms.replicate_key(
        &owner(US),
        &key,
        ReplicateKeyInput {
            policy: Some("{not json".into()),
            ..replica_in("ap-south-1")
        },
    );
    assert_eq!(code(bad_policy), "MalformedPolicyDocumentException");
    assert_eq!(
        code(env.kms.describe_key(&owner("ap-south-1"), &key)),
        "NotFoundException"
    );
    // A disabled primary is not replicated.
    env.kms.disable_key(&owner(US), &key).unwrap();
    assert_eq!(r(&owner(US), &key, "ap-south-1"), "DisabledException");
}

#[test]
fn policies_are_per_region() {
    let env = Env::new();
    let key = env.mrk();
    let user = 2000;
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"User": ["1000"]}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"User": [user.to_string()]},
         "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]})
    .to_string();
    env.kms
        .replicate_key(
            &owner(US),
            &key,
            ReplicateKeyInput {
                policy: Some(policy),
                ..replica_in(EU)
            },
        )
        .unwrap();
    let blob = env.encrypt(US, &key, b"secret");
    let ctx = EncryptionContext::new();
    // The replica's policy lets the user decrypt in EU; the primary's
    // (the default: its creator only) does not in US.
    let d = env
        .kms
        .decrypt(&caller(user, EU), &blob, &ctx, None)
        .unwrap();
    assert_eq!(d.plaintext.to_vec(), b"secret");
    assert_eq!(
        code(env.kms.decrypt(&caller(user, US), &blob, &ctx, None)),
        "AccessDeniedException"
    );
    assert_eq!(
        code(env.kms.encrypt(&caller(user, US), &key, b"x", &ctx)),
        "AccessDeniedException"
    );
    assert!(env.kms.encrypt(&caller(user, EU), &key, b"x", &ctx).is_ok());
}

#[test]
fn rotation_is_shared_and_managed_on_the_primary() {
    let env = Env::new();
    let key = env.mrk();
    env.replicate(&key, EU);
    let v1 = env.encrypt(US, &key, b"v1");
    let (_, version) = env.kms.rotate_key_on_demand(&owner(US), &key).unwrap();
    assert_eq!(version, 2);
    let replica = env.kms.describe_key(&owner(EU), &key).unwrap();
    assert_eq!(
        replica.current_version,
        Some(2),
        "the replica got version 2"
    );
    let v2 = env.encrypt(EU, &key, b"v2");
    for region in [US, EU] {
        assert_eq!(env.decrypt(region, &v1).unwrap(), b"v1");
        assert_eq!(env.decrypt(region, &v2).unwrap(), b"v2");
    }
    let rotations = env.kms.list_key_rotations(&owner(EU), &key).unwrap();
    assert_eq!(rotations.len(), 1);

    // The replica's rotation cannot be managed.
    assert_eq!(
        code(env.kms.rotate_key_on_demand(&owner(EU), &key)),
        "UnsupportedOperationException"
    );
    assert_eq!(
        code(env.kms.enable_key_rotation(&owner(EU), &key, None)),
        "UnsupportedOperationException"
    );
    assert_eq!(
        code(env.kms.disable_key_rotation(&owner(EU), &key)),
        "UnsupportedOperationException"
    );
    // Automatic rotation set on the primary shows on, and reaches, the replica.
    env.kms
        .enable_key_rotation(&owner(US), &key, Some(90))
        .unwrap();
    let status = env.kms.get_key_rotation_status(&owner(EU), &key).unwrap();
    assert!(status.enabled);
    assert_eq!(status.period_days, Some(90));
    assert!(status.arn.contains(EU));
    env.clock.advance(90 * DAY);
    let replica = env.kms.describe_key(&owner(EU), &key).unwrap();
    assert_eq!(replica.current_version, Some(3));
    let v3 = env.encrypt(EU, &key, b"v3");
    assert_eq!(env.decrypt(US, &v3).unwrap(), b"v3");
}

#[test]
fn update_primary_region_swaps_the_roles() {
    let env = Env::new();
    let key = env.mrk();
    env.replicate(&key, EU);
    env.kms
        .enable_key_rotation(&owner(US), &key, Some(180))
        .unwrap();
    // Only the primary names the change, and the region must hold a replica.
    assert_eq!(
        code(env.kms.update_primary_region(&owner(EU), &key, US)),
        "UnsupportedOperationException"
    );
    assert_eq!(
        code(
            env.kms
                .update_primary_region(&owner(US), &key, "ap-south-1")
        ),
        "NotFoundException"
    );
    assert_eq!(
        code(
            env.kms
                .update_primary_region(&owner(US), &key, "Not A Region")
        ),
        "ValidationException"
    );
    env.kms.disable_key(&owner(EU), &key).unwrap();
    assert_eq!(
        code(env.kms.update_primary_region(&owner(US), &key, EU)),
        "DisabledException"
    );
    env.kms.enable_key(&owner(EU), &key).unwrap();
    // Naming the primary's own region changes nothing.
    env.kms.update_primary_region(&owner(US), &key, US).unwrap();

    env.kms.update_primary_region(&owner(US), &key, EU).unwrap();
    let eu = env
        .kms
        .describe_key(&owner(EU), &key)
        .unwrap()
        .multi_region
        .unwrap();
    let us = env
        .kms
        .describe_key(&owner(US), &key)
        .unwrap()
        .multi_region
        .unwrap();
    assert!(eu.primary && !us.primary);
    assert_eq!(eu.primary_key.1, EU);
    assert_eq!(us.primary_key, eu.primary_key);
    assert_eq!(eu.replica_keys.len(), 1);
    assert_eq!(eu.replica_keys[0].1, US);
    // Rotation moved with the role.
    let status = env.kms.get_key_rotation_status(&owner(US), &key).unwrap();
    assert_eq!(status.period_days, Some(180));
    assert_eq!(
        code(env.kms.rotate_key_on_demand(&owner(US), &key)),
        "UnsupportedOperationException"
    );
    env.kms.rotate_key_on_demand(&owner(EU), &key).unwrap();
    assert_eq!(
        env.kms
            .describe_key(&owner(US), &key)
            .unwrap()
            .current_version,
        Some(2)
    );
    // The new primary replicates; the old one no longer does.
    assert_eq!(
        code(
            env.kms
                .replicate_key(&owner(US), &key, replica_in("ap-south-1"))
        ),
        "UnsupportedOperationException"
    );
    env.kms
        .replicate_key(&owner(EU), &key, replica_in("ap-south-1"))
        .unwrap();
}

#[test]
fn a_primary_with_replicas_waits_for_them() {
    let env = Env::new();
    let key = env.mrk();
    env.replicate(&key, EU);
    let blob = env.encrypt(US, &key, b"kept by the replica");
    let (_, date, days) = env
        .kms
        .schedule_key_deletion(&owner(US), &key, Some(7))
        .unwrap();
    assert_eq!((date, days), (None, 7));
    assert_eq!(env.state(US, &key), KeyState::PendingReplicaDeletion);
    assert_eq!(code(env.decrypt(US, &blob)), "KMSInvalidStateException");
    assert_eq!(
        code(
            env.kms
                .replicate_key(&owner(US), &key, replica_in("ap-south-1"))
        ),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(env.kms.schedule_key_deletion(&owner(US), &key, Some(7))),
        "KMSInvalidStateException"
    );
    // Time alone does not delete it while the replica exists.
    env.clock.advance(60 * DAY);
    assert_eq!(env.state(US, &key), KeyState::PendingReplicaDeletion);
    assert_eq!(env.decrypt(EU, &blob).unwrap(), b"kept by the replica");

    // Cancel and schedule again works as for any key.
    env.kms.cancel_key_deletion(&owner(US), &key).unwrap();
    assert_eq!(env.state(US, &key), KeyState::Disabled);
    env.kms
        .schedule_key_deletion(&owner(US), &key, Some(10))
        .unwrap();

    // The replica is deleted as any key; then the primary's window starts.
    let (_, replica_date, _) = env
        .kms
        .schedule_key_deletion(&owner(EU), &key, Some(7))
        .unwrap();
    assert_eq!(replica_date, Some(env.clock.now() + 7 * DAY));
    env.clock.advance(7 * DAY);
    assert_eq!(
        code(env.kms.describe_key(&owner(EU), &key)),
        "NotFoundException"
    );
    let primary = env.kms.describe_key(&owner(US), &key).unwrap();
    assert_eq!(primary.state, KeyState::PendingDeletion);
    assert_eq!(primary.deletion_date, Some(env.clock.now() + 10 * DAY));
    assert!(primary.multi_region.unwrap().replica_keys.is_empty());
    env.clock.advance(10 * DAY);
    assert_eq!(
        code(env.kms.describe_key(&owner(US), &key)),
        "NotFoundException"
    );
    assert_eq!(code(env.decrypt(US, &blob)), "NotFoundException");
}

/// A store written by the code before multi-Region keys (layout 2,
/// tests/fixtures/keystore_layout2, made by gen_keystore_layout2.rs) opens:
/// its keys keep their ARNs, aliases and versions, its ciphertexts decrypt
/// in their region only, reading leaves the file as it was, and the first
/// change writes layout 3, which then holds multi-Region keys beside them.
#[test]
fn layout_two_stores_open_unchanged() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keystore_layout2");
    let dir = tempfile::tempdir().unwrap();
    for name in ["keystore", "keystore.rootkey"] {
        std::fs::copy(fixture.join(name), dir.path().join(name)).unwrap();
        // git keeps no 0600 mode, and kmsfs refuses a root key others may read.
        std::fs::set_permissions(
            dir.path().join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }
    let path = dir.path().join("keystore");
    let original = std::fs::read(&path).unwrap();
    let clock = Arc::new(ManualClock::new(T0 + DAY));
    let kms = open(&path, &clock);
    let listing = std::fs::read_to_string(fixture.join("keys.txt")).unwrap();
    let mut seen = 0;
    for line in listing.lines() {
        let [region, arn, blob_hex] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("bad keys.txt line {line:?}");
        };
        let blob: Vec<u8> = (0..blob_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&blob_hex[i..i + 2], 16).unwrap())
            .collect();
        let who = owner(region);
        let info = kms.describe_key(&who, arn).unwrap();
        assert_eq!(info.arn, arn);
        assert!(arn.starts_with(&format!("arn:aws:kms:{region}:111122223333:key/")));
        assert!(info.multi_region.is_none());
        assert_eq!(info.current_version, Some(2));
        assert_eq!(info.description, format!("layout 2 key in {region}"));
        assert_eq!(kms.describe_key(&who, "alias/old").unwrap().arn, arn);
        let d = kms
            .decrypt(&who, &blob, &EncryptionContext::new(), None)
            .unwrap();
        assert_eq!(d.plaintext.to_vec(), region.as_bytes());
        assert_eq!(d.key_arn, arn);
        let elsewhere = if region == US { EU } else { US };
        assert_eq!(
            code(kms.decrypt(&owner(elsewhere), &blob, &EncryptionContext::new(), None)),
            "InvalidCiphertextException"
        );
        seen += 1;
    }
    assert_eq!(seen, 2);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "reading rewrote the store"
    );

    let mrk = kms
        .create_key(
            &owner(US),
            CreateKeyInput {
                multi_region: true,
                ..Default::default()
            },
        )
        .unwrap();
    kms.replicate_key(&owner(US), &mrk.key_id, replica_in(EU))
        .unwrap();
    let store = kmsfs_kms::store::KeyStore::open(&path, &RootSecret::KeyFile).unwrap();
    assert_eq!(store.data().layout, kmsfs_kms::model::STORE_LAYOUT);
    assert_eq!(kmsfs_kms::model::STORE_LAYOUT, 3);
    assert_eq!(store.data().keys.len(), 4);
    let again = open(&path, &clock);
    assert_eq!(again.list_keys(&owner(EU)).unwrap().len(), 2);
    assert_eq!(
        again
            .describe_key(&owner(EU), "alias/old")
            .unwrap()
            .current_version,
        Some(2)
    );
}
