//! The embedded key service through its library interface: every key state
//! transition and refusal, aliases, rotation, deletion, encryption context,
//! tampering, data key sizes, key policy, key material import, the audit log
//! and concurrent writers. Time is a `ManualClock`, moved by days at will.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tempfile::TempDir;

use kmsfs_kms::blob::{self, EncryptionContext};
use kmsfs_kms::clock::{Clock, ManualClock};
use kmsfs_kms::local::{CreateKeyInput, LocalKms};
use kmsfs_kms::model::{Origin, RotationType, SECONDS_PER_DAY};
use kmsfs_kms::policy::{ADMIN_ACTIONS, USER_ACTIONS};
use kmsfs_kms::store::{KeyStore, RootSecret};
use kmsfs_kms::{Caller, KeyService, KeyState, KmsError, api};

const T0: i64 = 1_700_000_000;
const DAY: i64 = SECONDS_PER_DAY;

/// The creator of every key in these tests (the default policy gives it all).
fn owner() -> Caller {
    Caller {
        uid: 1000,
        gid: 1000,
        groups: vec![],
        iam_user: None,
        region: None,
    }
}

struct Env {
    _dir: TempDir,
    path: PathBuf,
    clock: Arc<ManualClock>,
    kms: LocalKms,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore");
        let clock = Arc::new(ManualClock::new(T0));
        let kms = open(&path, &clock);
        Env {
            _dir: dir,
            path,
            clock,
            kms,
        }
    }

    /// A second, independent service over the same store file (what another
    /// process would see).
    fn reopen(&self) -> LocalKms {
        open(&self.path, &self.clock)
    }

    fn key(&self) -> String {
        self.key_with(CreateKeyInput::default())
    }

    fn key_with(&self, input: CreateKeyInput) -> String {
        self.kms
            .create_key(&owner(), input)
            .unwrap()
            .key_id
            .to_string()
    }

    fn state(&self, key: &str) -> KeyState {
        self.kms.describe_key(&owner(), key).unwrap().state
    }

    fn encrypt(&self, key: &str, plaintext: &[u8]) -> Vec<u8> {
        self.kms
            .encrypt(&owner(), key, plaintext, &no_ctx())
            .unwrap()
            .ciphertext_blob
    }

    fn decrypt(&self, blob: &[u8]) -> Vec<u8> {
        self.kms
            .decrypt(&owner(), blob, &no_ctx(), None)
            .unwrap()
            .plaintext
            .to_vec()
    }
}

fn open(path: &Path, clock: &Arc<ManualClock>) -> LocalKms {
    let clock: Arc<dyn Clock> = clock.clone();
    LocalKms::open(path, &RootSecret::KeyFile, clock)
        .unwrap()
        .with_owner(owner().uid)
}

fn no_ctx() -> EncryptionContext {
    EncryptionContext::new()
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The AWS exception name of a failed call; panics on success.
fn code<T>(r: Result<T, KmsError>) -> &'static str {
    match r {
        Ok(_) => panic!("the call succeeded but was expected to fail"),
        Err(e) => e.code(),
    }
}

fn policy(statements: Value) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn version_of(blob_bytes: &[u8]) -> u32 {
    blob::parse_header(blob_bytes).unwrap().key_version
}

// ---------------------------------------------------------------------------
// Key states
// ---------------------------------------------------------------------------

#[test]
fn new_key_is_enabled_with_version_one() {
    let env = Env::new();
    let info = env
        .kms
        .create_key(
            &owner(),
            CreateKeyInput {
                description: "test key".into(),
                ..CreateKeyInput::default()
            },
        )
        .unwrap();
    assert_eq!(info.state, KeyState::Enabled);
    assert_eq!(info.origin, Origin::AwsKms);
    assert_eq!(info.current_version, Some(1));
    assert_eq!(info.creation_date, T0);
    assert!(info.arn.ends_with(&format!(":key/{}", info.key_id)));
    let again = env.kms.describe_key(&owner(), &info.arn).unwrap();
    assert_eq!(again.description, "test key");
    assert_eq!(again.key_id, info.key_id);
}

#[test]
fn create_key_refuses_unsupported_usage_and_spec() {
    let env = Env::new();
    let usage = CreateKeyInput {
        key_usage: "SIGN_VERIFY".into(),
        ..CreateKeyInput::default()
    };
    assert_eq!(
        code(env.kms.create_key(&owner(), usage)),
        "ValidationException"
    );
    // ECC keys sign or agree on keys; they do not encrypt.
    let spec = CreateKeyInput {
        key_spec: "ECC_NIST_P256".into(),
        ..CreateKeyInput::default()
    };
    assert_eq!(
        code(env.kms.create_key(&owner(), spec)),
        "ValidationException"
    );
    let r = api::handle(
        &env.kms,
        &owner(),
        "CreateKey",
        &json!({"Origin": "AWS_CLOUDHSM"}),
    );
    // kmsfs has no custom key stores, so none can hold the key.
    assert_eq!(code(r), "CustomKeyStoreNotFoundException");
    assert!(env.kms.list_keys(&owner()).unwrap().is_empty());
}

#[test]
fn disable_and_enable() {
    let env = Env::new();
    let key = env.key();
    let before = env.encrypt(&key, b"hello");

    env.kms.disable_key(&owner(), &key).unwrap();
    assert_eq!(env.state(&key), KeyState::Disabled);
    // Disabling twice is allowed, as in AWS.
    env.kms.disable_key(&owner(), &key).unwrap();
    let r = env.kms.encrypt(&owner(), &key, b"x", &no_ctx());
    assert!(matches!(r, Err(KmsError::Disabled(_))), "{r:?}");
    assert_eq!(code(r), "DisabledException");
    assert_eq!(
        code(env.kms.decrypt(&owner(), &before, &no_ctx(), None)),
        "DisabledException"
    );
    assert_eq!(
        code(
            env.kms
                .generate_data_key(&owner(), &key, 32, &no_ctx(), true)
        ),
        "DisabledException"
    );
    assert_eq!(
        code(
            env.kms
                .generate_data_key(&owner(), &key, 32, &no_ctx(), false)
        ),
        "DisabledException"
    );
    assert_eq!(
        code(env.kms.rotate_key_on_demand(&owner(), &key)),
        "DisabledException"
    );
    // Management still works on a disabled key.
    env.kms
        .create_alias(&owner(), "alias/disabled", &key)
        .unwrap();
    assert_eq!(
        env.kms
            .describe_key(&owner(), "alias/disabled")
            .unwrap()
            .state,
        KeyState::Disabled
    );

    env.kms.enable_key(&owner(), &key).unwrap();
    assert_eq!(env.state(&key), KeyState::Enabled);
    env.kms.enable_key(&owner(), &key).unwrap();
    assert_eq!(env.decrypt(&before), b"hello");
}

#[test]
fn deletion_windows_and_cancel() {
    let env = Env::new();
    let key = env.key();
    let blob_bytes = env.encrypt(&key, b"keep me");

    for days in [0, 6, 31, 365] {
        let r = env.kms.schedule_key_deletion(&owner(), &key, Some(days));
        assert!(matches!(r, Err(KmsError::Validation(_))), "{days}: {r:?}");
        assert_eq!(env.state(&key), KeyState::Enabled, "{days}");
    }
    // Aliases are not accepted by ScheduleKeyDeletion (AWS wants a key id or ARN).
    env.kms
        .create_alias(&owner(), "alias/doomed", &key)
        .unwrap();
    assert_eq!(
        code(
            env.kms
                .schedule_key_deletion(&owner(), "alias/doomed", Some(7))
        ),
        "NotFoundException"
    );

    let (arn, date, days) = env
        .kms
        .schedule_key_deletion(&owner(), &key, Some(7))
        .unwrap();
    assert!(arn.ends_with(&key));
    assert_eq!((date, days), (Some(T0 + 7 * DAY), 7));
    let info = env.kms.describe_key(&owner(), &key).unwrap();
    assert_eq!(info.state, KeyState::PendingDeletion);
    assert_eq!(info.deletion_date, Some(T0 + 7 * DAY));
    assert_eq!(info.pending_window_days, Some(7));

    // Everything cryptographic, and most management, is refused meanwhile.
    let r = env.kms.encrypt(&owner(), &key, b"x", &no_ctx());
    assert!(matches!(r, Err(KmsError::InvalidState(_))), "{r:?}");
    assert_eq!(code(r), "KMSInvalidStateException");
    for r in [
        env.kms
            .decrypt(&owner(), &blob_bytes, &no_ctx(), None)
            .map(|_| ()),
        env.kms
            .generate_data_key(&owner(), &key, 16, &no_ctx(), true)
            .map(|_| ()),
        env.kms.enable_key(&owner(), &key),
        env.kms.disable_key(&owner(), &key),
        env.kms
            .schedule_key_deletion(&owner(), &key, Some(8))
            .map(|_| ()),
        env.kms.create_alias(&owner(), "alias/late", &key),
        env.kms.update_alias(&owner(), "alias/doomed", &key),
        env.kms.enable_key_rotation(&owner(), &key, None),
        env.kms.rotate_key_on_demand(&owner(), &key).map(|_| ()),
    ] {
        assert_eq!(code(r), "KMSInvalidStateException");
    }
    // Describing, listing and reading the policy still work.
    env.kms.get_key_policy(&owner(), &key, None).unwrap();
    assert!(
        env.kms
            .list_keys(&owner())
            .unwrap()
            .iter()
            .any(|(id, _)| *id == key)
    );

    // Cancel leaves the key Disabled, not Enabled.
    let cancelled = env.kms.cancel_key_deletion(&owner(), &key).unwrap();
    assert!(cancelled.ends_with(&key));
    let info = env.kms.describe_key(&owner(), &key).unwrap();
    assert_eq!(info.state, KeyState::Disabled);
    assert_eq!(info.deletion_date, None);
    assert_eq!(info.pending_window_days, None);
    assert_eq!(
        code(env.kms.cancel_key_deletion(&owner(), &key)),
        "KMSInvalidStateException"
    );
    // Long after the old deletion date, the key is still there.
    env.clock.advance(40 * DAY);
    assert_eq!(
        env.reopen().describe_key(&owner(), &key).unwrap().state,
        KeyState::Disabled
    );
    env.kms.enable_key(&owner(), &key).unwrap();
    assert_eq!(env.decrypt(&blob_bytes), b"keep me");

    // The widest window is accepted too, and is the default.
    let (_, date, days) = env
        .kms
        .schedule_key_deletion(&owner(), &key, Some(30))
        .unwrap();
    assert_eq!((date, days), (Some(env.clock.now() + 30 * DAY), 30));
    env.kms.cancel_key_deletion(&owner(), &key).unwrap();
    let (_, _, days) = env.kms.schedule_key_deletion(&owner(), &key, None).unwrap();
    assert_eq!(days, 30);
}

#[test]
fn material_is_destroyed_after_the_window() {
    let env = Env::new();
    let doomed = env.key();
    let survivor = env.key();
    env.kms
        .create_alias(&owner(), "alias/doomed", &doomed)
        .unwrap();
    let old = env.encrypt(&doomed, b"soon unreadable");
    env.kms.rotate_key_on_demand(&owner(), &doomed).unwrap();
    let old_v2 = env.encrypt(&doomed, b"also unreadable");
    let kept = env.encrypt(&survivor, b"still readable");
    env.kms
        .schedule_key_deletion(&owner(), &doomed, Some(7))
        .unwrap();

    // One second before the deletion date: still there, still cancellable.
    env.clock.advance(7 * DAY - 1);
    assert_eq!(
        env.reopen().describe_key(&owner(), &doomed).unwrap().state,
        KeyState::PendingDeletion
    );
    env.clock.advance(1);

    let r = env.kms.describe_key(&owner(), &doomed);
    assert!(matches!(r, Err(KmsError::NotFound(_))), "{r:?}");
    for blob_bytes in [&old, &old_v2] {
        let r = env.kms.decrypt(&owner(), blob_bytes, &no_ctx(), None);
        assert!(matches!(r, Err(KmsError::NotFound(_))), "{r:?}");
    }
    assert_eq!(
        code(env.kms.cancel_key_deletion(&owner(), &doomed)),
        "NotFoundException"
    );
    assert_eq!(
        code(env.kms.describe_key(&owner(), "alias/doomed")),
        "NotFoundException"
    );
    assert!(env.kms.list_aliases(&owner(), None).unwrap().is_empty());
    assert_eq!(env.decrypt(&kept), b"still readable");

    // A fresh service over the same file agrees: gone for good.
    let fresh = env.reopen();
    let ids: Vec<String> = fresh
        .list_keys(&owner())
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    assert_eq!(ids, vec![survivor.clone()]);
    // And the unsealed store contents no longer mention the key at all.
    let store = KeyStore::open(&env.path, &RootSecret::KeyFile).unwrap();
    let contents = serde_json::to_string(store.data()).unwrap();
    assert!(
        !contents.contains(&doomed),
        "the store still mentions {doomed}"
    );
    assert!(contents.contains(&survivor));
    // The destruction is audited.
    let audit = std::fs::read_to_string(env.kms.audit_log().path().unwrap()).unwrap();
    assert!(audit.lines().any(|l| {
        let v: Value = serde_json::from_str(l).unwrap();
        v["eventName"] == "DeleteKey" && v["keyId"].as_str().unwrap().ends_with(&doomed)
    }));
}

#[test]
fn thirty_day_window_is_honoured() {
    let env = Env::new();
    let key = env.key();
    env.kms
        .schedule_key_deletion(&owner(), &key, Some(30))
        .unwrap();
    env.clock.advance(29 * DAY);
    assert_eq!(
        env.reopen().describe_key(&owner(), &key).unwrap().state,
        KeyState::PendingDeletion
    );
    env.clock.advance(DAY);
    assert_eq!(
        code(env.reopen().describe_key(&owner(), &key)),
        "NotFoundException"
    );
}

#[test]
fn pending_import_state() {
    let env = Env::new();
    let key = env.key_with(CreateKeyInput {
        origin: Origin::External,
        ..CreateKeyInput::default()
    });
    let info = env.kms.describe_key(&owner(), &key).unwrap();
    assert_eq!(info.state, KeyState::PendingImport);
    assert_eq!(info.origin, Origin::External);
    assert_eq!(info.current_version, None);

    let r = env.kms.encrypt(&owner(), &key, b"x", &no_ctx());
    assert!(matches!(r, Err(KmsError::InvalidState(_))), "{r:?}");
    assert_eq!(
        code(
            env.kms
                .generate_data_key(&owner(), &key, 32, &no_ctx(), true)
        ),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(env.kms.enable_key(&owner(), &key)),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(env.kms.disable_key(&owner(), &key)),
        "KMSInvalidStateException"
    );
    // Deletion can be scheduled and cancelled; cancel returns it to PendingImport.
    env.kms
        .schedule_key_deletion(&owner(), &key, Some(7))
        .unwrap();
    assert_eq!(env.state(&key), KeyState::PendingDeletion);
    env.kms.cancel_key_deletion(&owner(), &key).unwrap();
    assert_eq!(env.state(&key), KeyState::PendingImport);
}

#[test]
fn plaintext_size_limits() {
    let env = Env::new();
    let key = env.key();
    assert_eq!(
        code(env.kms.encrypt(&owner(), &key, b"", &no_ctx())),
        "ValidationException"
    );
    assert_eq!(
        code(env.kms.encrypt(&owner(), &key, &[0u8; 4097], &no_ctx())),
        "ValidationException"
    );
    let big = vec![0xA5u8; 4096];
    let b = env.encrypt(&key, &big);
    assert_eq!(b.len(), blob::PREFIX_LEN + 4096 + 16);
    assert_eq!(env.decrypt(&b), big);
    let one = env.encrypt(&key, b"z");
    assert_eq!(env.decrypt(&one), b"z");
}

// ---------------------------------------------------------------------------
// Key references and aliases
// ---------------------------------------------------------------------------

#[test]
fn keys_are_named_by_id_arn_alias_and_alias_arn() {
    let env = Env::new();
    let key = env.key();
    let arn = env.kms.describe_key(&owner(), &key).unwrap().arn;
    env.kms.create_alias(&owner(), "alias/named", &arn).unwrap();
    let alias_arn = arn.replace(&format!("key/{key}"), "alias/named");
    for name in [
        key.as_str(),
        arn.as_str(),
        "alias/named",
        alias_arn.as_str(),
    ] {
        let w = env.kms.encrypt(&owner(), name, b"x", &no_ctx()).unwrap();
        assert_eq!(w.key_arn, arn, "{name}");
        assert_eq!(
            blob::parse_header(&w.ciphertext_blob)
                .unwrap()
                .key_id
                .to_string(),
            key
        );
    }
    let foreign = format!("arn:aws:kms:us-east-1:123456789012:key/{key}");
    for bad in [
        "not-a-key",
        "alias/nope",
        "00000000-0000-0000-0000-000000000000",
        foreign.as_str(),
    ] {
        let r = env.kms.encrypt(&owner(), bad, b"x", &no_ctx());
        assert!(matches!(r, Err(KmsError::NotFound(_))), "{bad}: {r:?}");
    }
}

#[test]
fn alias_rules() {
    let env = Env::new();
    let k1 = env.key();
    let k2 = env.key();

    let r = env.kms.create_alias(&owner(), "alias/aws/ebs", &k1);
    assert!(matches!(r, Err(KmsError::InvalidAliasName(_))), "{r:?}");
    for bad in ["noprefix", "alias/", "alias/has space", "alias/é"] {
        assert_eq!(
            code(env.kms.create_alias(&owner(), bad, &k1)),
            "ValidationException",
            "{bad}"
        );
    }
    // An alias must point at a key, not at another alias.
    env.kms.create_alias(&owner(), "alias/a", &k1).unwrap();
    assert_eq!(
        code(env.kms.create_alias(&owner(), "alias/c", "alias/a")),
        "NotFoundException"
    );
    // One key per alias.
    let r = env.kms.create_alias(&owner(), "alias/a", &k2);
    assert!(matches!(r, Err(KmsError::AlreadyExists(_))), "{r:?}");
    let r = env.kms.create_alias(&owner(), "alias/a", &k1);
    assert!(matches!(r, Err(KmsError::AlreadyExists(_))), "{r:?}");
    // Many aliases per key.
    env.kms.create_alias(&owner(), "alias/b", &k1).unwrap();
    env.kms
        .create_alias(&owner(), "alias/Team_1/x-y", &k1)
        .unwrap();
    let of_k1: Vec<String> = env
        .kms
        .list_aliases(&owner(), Some(&k1))
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(of_k1, vec!["alias/Team_1/x-y", "alias/a", "alias/b"]);
    assert!(
        env.kms
            .list_aliases(&owner(), Some(&k2))
            .unwrap()
            .is_empty()
    );
    assert_eq!(env.kms.list_aliases(&owner(), None).unwrap().len(), 3);

    // UpdateAlias moves it to another key; new encryptions follow.
    env.clock.advance(60);
    env.kms.update_alias(&owner(), "alias/a", &k2).unwrap();
    let a = env
        .kms
        .list_aliases(&owner(), None)
        .unwrap()
        .into_iter()
        .find(|a| a.name == "alias/a")
        .unwrap();
    assert_eq!(a.target.to_string(), k2);
    assert_eq!((a.created, a.updated), (T0, T0 + 60));
    let b = env.encrypt("alias/a", b"x");
    assert_eq!(blob::parse_header(&b).unwrap().key_id.to_string(), k2);
    assert_eq!(
        code(env.kms.update_alias(&owner(), "alias/missing", &k2)),
        "NotFoundException"
    );
    assert_eq!(
        code(env.kms.update_alias(&owner(), "alias/a", "alias/b")),
        "NotFoundException"
    );

    // DeleteAlias removes the alias, not the key.
    env.kms.delete_alias(&owner(), "alias/a").unwrap();
    assert_eq!(
        code(env.kms.describe_key(&owner(), "alias/a")),
        "NotFoundException"
    );
    assert_eq!(env.state(&k2), KeyState::Enabled);
    assert_eq!(
        code(env.kms.delete_alias(&owner(), "alias/a")),
        "NotFoundException"
    );
    // The name is free again.
    env.kms.create_alias(&owner(), "alias/a", &k1).unwrap();
}

// ---------------------------------------------------------------------------
// Rotation
// ---------------------------------------------------------------------------

#[test]
fn on_demand_rotation_keeps_every_version() {
    let env = Env::new();
    let key = env.key();
    let mut blobs = vec![(env.encrypt(&key, b"v1"), b"v1".to_vec())];
    assert_eq!(version_of(&blobs[0].0), 1);
    for n in 2..=4u32 {
        env.clock.advance(DAY);
        let (arn, version) = env.kms.rotate_key_on_demand(&owner(), &key).unwrap();
        assert!(arn.ends_with(&key));
        assert_eq!(version, n);
        assert_eq!(
            env.kms
                .describe_key(&owner(), &key)
                .unwrap()
                .current_version,
            Some(n)
        );
        let text = format!("v{n}").into_bytes();
        let b = env.encrypt(&key, &text);
        assert_eq!(
            version_of(&b),
            n,
            "new ciphertext must use the newest version"
        );
        blobs.push((b, text));
    }
    // Every earlier version still decrypts, through a fresh service too.
    let fresh = env.reopen();
    for (b, text) in &blobs {
        let d = fresh.decrypt(&owner(), b, &no_ctx(), None).unwrap();
        assert_eq!(d.plaintext.as_slice(), text.as_slice());
        assert_eq!(d.key_version, version_of(b));
    }
    let rotations = env.kms.list_key_rotations(&owner(), &key).unwrap();
    let listed: Vec<(u32, i64, RotationType)> = rotations
        .iter()
        .map(|r| (r.version, r.date, r.kind))
        .collect();
    assert_eq!(
        listed,
        vec![
            (2, T0 + DAY, RotationType::OnDemand),
            (3, T0 + 2 * DAY, RotationType::OnDemand),
            (4, T0 + 3 * DAY, RotationType::OnDemand),
        ]
    );
    // On-demand rotation does not turn automatic rotation on.
    assert!(
        !env.kms
            .get_key_rotation_status(&owner(), &key)
            .unwrap()
            .enabled
    );

    // Versions are distinct keys: a v1 blob relabelled as v2 does not open.
    let mut relabelled = blobs[0].0.clone();
    relabelled[19..23].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(
        code(env.kms.decrypt(&owner(), &relabelled, &no_ctx(), None)),
        "InvalidCiphertextException"
    );
    // A version the key never had.
    relabelled[19..23].copy_from_slice(&99u32.to_be_bytes());
    assert_eq!(
        code(env.kms.decrypt(&owner(), &relabelled, &no_ctx(), None)),
        "InvalidCiphertextException"
    );
}

#[test]
fn automatic_rotation_after_the_period() {
    let env = Env::new();
    let key = env.key();
    for bad in [0, 89, 2561] {
        assert_eq!(
            code(env.kms.enable_key_rotation(&owner(), &key, Some(bad))),
            "ValidationException",
            "{bad}"
        );
    }
    let status = env.kms.get_key_rotation_status(&owner(), &key).unwrap();
    assert!(!status.enabled);
    assert_eq!(status.next_rotation, None);

    env.kms
        .enable_key_rotation(&owner(), &key, Some(90))
        .unwrap();
    let status = env.kms.get_key_rotation_status(&owner(), &key).unwrap();
    assert!(status.enabled);
    assert_eq!(status.period_days, Some(90));
    assert_eq!(status.next_rotation, Some(T0 + 90 * DAY));
    let b1 = env.encrypt(&key, b"first");

    env.clock.advance(90 * DAY - 1);
    assert_eq!(
        env.reopen()
            .describe_key(&owner(), &key)
            .unwrap()
            .current_version,
        Some(1)
    );
    env.clock.advance(1);
    // Opening the store applies the due rotation.
    let fresh = env.reopen();
    assert_eq!(
        fresh.describe_key(&owner(), &key).unwrap().current_version,
        Some(2)
    );
    let b2 = fresh
        .encrypt(&owner(), &key, b"second", &no_ctx())
        .unwrap()
        .ciphertext_blob;
    assert_eq!(version_of(&b2), 2);
    let status = fresh.get_key_rotation_status(&owner(), &key).unwrap();
    assert_eq!(status.next_rotation, Some(T0 + 180 * DAY));

    // A long-running service notices the next one without being reopened.
    env.clock.advance(90 * DAY);
    let b3 = env.encrypt(&key, b"third");
    assert_eq!(version_of(&b3), 3);
    for (b, text) in [(&b1, &b"first"[..]), (&b2, b"second"), (&b3, b"third")] {
        assert_eq!(env.decrypt(b), text);
    }
    let kinds: Vec<(u32, RotationType)> = env
        .kms
        .list_key_rotations(&owner(), &key)
        .unwrap()
        .into_iter()
        .map(|r| (r.version, r.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![(2, RotationType::Automatic), (3, RotationType::Automatic)]
    );

    // A disabled key does not rotate; nor does one whose rotation is off.
    env.kms.disable_key(&owner(), &key).unwrap();
    env.clock.advance(200 * DAY);
    assert_eq!(
        env.reopen()
            .describe_key(&owner(), &key)
            .unwrap()
            .current_version,
        Some(3)
    );
    // Re-enabled past its rotation date, it rotates at once (as AWS does),
    // and the schedule restarts from then.
    env.kms.enable_key(&owner(), &key).unwrap();
    assert_eq!(
        env.kms
            .describe_key(&owner(), &key)
            .unwrap()
            .current_version,
        Some(4)
    );
    let status = env.kms.get_key_rotation_status(&owner(), &key).unwrap();
    assert_eq!(status.next_rotation, Some(env.clock.now() + 90 * DAY));
    env.kms.disable_key_rotation(&owner(), &key).unwrap();
    let status = env.kms.get_key_rotation_status(&owner(), &key).unwrap();
    assert!(!status.enabled);
    assert_eq!(status.next_rotation, None);
    env.clock.advance(3000 * DAY);
    assert_eq!(
        env.reopen()
            .describe_key(&owner(), &key)
            .unwrap()
            .current_version,
        Some(4)
    );
    assert_eq!(env.decrypt(&b1), b"first");
}

// ---------------------------------------------------------------------------
// Ciphertext integrity
// ---------------------------------------------------------------------------

#[test]
fn encryption_context_must_match() {
    let env = Env::new();
    let key = env.key();
    let good = ctx(&[("file", "/a/b"), ("purpose", "test")]);
    let b = env
        .kms
        .encrypt(&owner(), &key, b"secret", &good)
        .unwrap()
        .ciphertext_blob;
    let d = env.kms.decrypt(&owner(), &b, &good, None).unwrap();
    assert_eq!(d.plaintext.as_slice(), b"secret");
    for wrong in [
        no_ctx(),
        ctx(&[("file", "/a/b")]),
        ctx(&[("file", "/a/c"), ("purpose", "test")]),
        ctx(&[("file", "/a/b"), ("purpose", "test"), ("extra", "1")]),
        ctx(&[("File", "/a/b"), ("purpose", "test")]),
    ] {
        let r = env.kms.decrypt(&owner(), &b, &wrong, None);
        assert!(
            matches!(r, Err(KmsError::InvalidCiphertext(_))),
            "{wrong:?}: {r:?}"
        );
    }
    // A blob made without a context does not open with one.
    let plain = env.encrypt(&key, b"secret");
    assert_eq!(
        code(env.kms.decrypt(&owner(), &plain, &good, None)),
        "InvalidCiphertextException"
    );
    // ReEncrypt checks the source context and binds the destination one.
    let other = env.key();
    assert_eq!(
        code(
            env.kms
                .re_encrypt(&owner(), &b, &no_ctx(), None, &other, &no_ctx())
        ),
        "InvalidCiphertextException"
    );
    let dest = ctx(&[("moved", "yes")]);
    let (_, w) = env
        .kms
        .re_encrypt(&owner(), &b, &good, None, &other, &dest)
        .unwrap();
    assert_eq!(
        code(env.kms.decrypt(&owner(), &w.ciphertext_blob, &good, None)),
        "InvalidCiphertextException"
    );
    let d = env
        .kms
        .decrypt(&owner(), &w.ciphertext_blob, &dest, None)
        .unwrap();
    assert_eq!(d.plaintext.as_slice(), b"secret");
}

#[test]
fn every_tampered_byte_is_refused() {
    let env = Env::new();
    let key = env.key();
    let c = ctx(&[("k", "v")]);
    let b = env
        .kms
        .encrypt(&owner(), &key, b"tamper-evident", &c)
        .unwrap()
        .ciphertext_blob;
    for i in 0..b.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = b.clone();
            bad[i] ^= mask;
            let r = env.kms.decrypt(&owner(), &bad, &c, None);
            match r {
                Err(KmsError::InvalidCiphertext(_)) | Err(KmsError::NotFound(_)) => {}
                other => panic!("byte {i} ^ {mask:#x}: {other:?}"),
            }
        }
    }
    // Truncated, extended and empty blobs.
    for bad in [&b[..b.len() - 1], &b[..20], &[][..]] {
        assert_eq!(
            code(env.kms.decrypt(&owner(), bad, &c, None)),
            "InvalidCiphertextException"
        );
    }
    let mut longer = b.clone();
    longer.push(0);
    assert_eq!(
        code(env.kms.decrypt(&owner(), &longer, &c, None)),
        "InvalidCiphertextException"
    );
    // The original still opens.
    assert_eq!(
        env.kms
            .decrypt(&owner(), &b, &c, None)
            .unwrap()
            .plaintext
            .as_slice(),
        b"tamper-evident"
    );
}

#[test]
fn decrypt_with_another_keys_id_is_refused() {
    let env = Env::new();
    let k1 = env.key();
    let k2 = env.key();
    env.kms.create_alias(&owner(), "alias/one", &k1).unwrap();
    let b = env.encrypt(&k1, b"mine");
    let r = env.kms.decrypt(&owner(), &b, &no_ctx(), Some(&k2));
    assert!(matches!(r, Err(KmsError::IncorrectKey(_))), "{r:?}");
    assert_eq!(code(r), "IncorrectKeyException");
    assert_eq!(
        code(
            env.kms
                .re_encrypt(&owner(), &b, &no_ctx(), Some(&k2), &k2, &no_ctx())
        ),
        "IncorrectKeyException"
    );
    for right in [k1.as_str(), "alias/one"] {
        let d = env
            .kms
            .decrypt(&owner(), &b, &no_ctx(), Some(right))
            .unwrap();
        assert_eq!(d.plaintext.as_slice(), b"mine");
    }
    assert_eq!(
        code(env.kms.decrypt(&owner(), &b, &no_ctx(), Some("alias/none"))),
        "NotFoundException"
    );
}

#[test]
fn re_encrypt_moves_to_the_destinations_newest_version() {
    let env = Env::new();
    let src = env.key();
    let dst = env.key();
    let b = env.encrypt(&src, b"payload");
    env.kms.rotate_key_on_demand(&owner(), &dst).unwrap();
    let (from, to) = env
        .kms
        .re_encrypt(&owner(), &b, &no_ctx(), Some(&src), &dst, &no_ctx())
        .unwrap();
    assert!(from.key_arn.ends_with(&src));
    assert_eq!(from.key_version, 1);
    assert!(to.key_arn.ends_with(&dst));
    let h = blob::parse_header(&to.ciphertext_blob).unwrap();
    assert_eq!((h.key_id.to_string(), h.key_version), (dst.clone(), 2));
    assert_eq!(env.decrypt(&to.ciphertext_blob), b"payload");
    // Re-encrypting under the same key after a rotation upgrades the version.
    env.kms.rotate_key_on_demand(&owner(), &src).unwrap();
    let (_, same) = env
        .kms
        .re_encrypt(&owner(), &b, &no_ctx(), None, &src, &no_ctx())
        .unwrap();
    assert_eq!(version_of(&same.ciphertext_blob), 2);
    assert_eq!(env.decrypt(&same.ciphertext_blob), b"payload");
    // A disabled destination refuses.
    env.kms.disable_key(&owner(), &dst).unwrap();
    assert_eq!(
        code(
            env.kms
                .re_encrypt(&owner(), &b, &no_ctx(), None, &dst, &no_ctx())
        ),
        "DisabledException"
    );
}

#[test]
fn key_service_trait() {
    let env = Env::new();
    let key = env.key();
    let svc: &dyn KeyService = &env.kms;
    let c = ctx(&[("inode", "42")]);
    let pair = svc.generate_data_key(&owner(), &key, &c).unwrap();
    assert_eq!(pair.plaintext.len(), 32);
    assert_eq!(pair.key_version, 1);
    assert!(!format!("{pair:?}").contains(&B64.encode(pair.plaintext.as_slice())));
    let d = svc.decrypt(&owner(), &pair.ciphertext_blob, &c).unwrap();
    assert_eq!(d.plaintext.as_slice(), pair.plaintext.as_slice());
    env.kms.rotate_key_on_demand(&owner(), &key).unwrap();
    let w = svc
        .re_encrypt(&owner(), &pair.ciphertext_blob, &c, &key)
        .unwrap();
    assert_eq!(w.key_version, 2);
    let d = svc.decrypt(&owner(), &w.ciphertext_blob, &c).unwrap();
    assert_eq!(d.plaintext.as_slice(), pair.plaintext.as_slice());
    let desc = svc.describe_key(&owner(), &key).unwrap();
    assert_eq!(
        (desc.state, desc.current_version),
        (KeyState::Enabled, Some(2))
    );
}

// ---------------------------------------------------------------------------
// Data keys through the AWS JSON mapping
// ---------------------------------------------------------------------------

#[test]
fn generate_data_key_sizes() {
    let env = Env::new();
    let key = env.key();
    let call = |req: Value| api::handle(&env.kms, &owner(), "GenerateDataKey", &req);
    let sized = |req: Value| {
        let out = call(req).unwrap();
        let plain = B64.decode(out["Plaintext"].as_str().unwrap()).unwrap();
        let wrapped = B64.decode(out["CiphertextBlob"].as_str().unwrap()).unwrap();
        assert!(out["KeyId"].as_str().unwrap().ends_with(&key));
        assert_eq!(env.decrypt(&wrapped), plain);
        plain.len()
    };
    assert_eq!(sized(json!({"KeyId": key, "KeySpec": "AES_256"})), 32);
    assert_eq!(sized(json!({"KeyId": key, "KeySpec": "AES_128"})), 16);
    for n in [1, 2, 31, 64, 1024] {
        assert_eq!(sized(json!({"KeyId": key, "NumberOfBytes": n})), n);
    }
    for bad in [
        json!({"KeyId": key, "NumberOfBytes": 0}),
        json!({"KeyId": key, "NumberOfBytes": 1025}),
        json!({"KeyId": key, "NumberOfBytes": -1}),
        json!({"KeyId": key, "KeySpec": "AES_512"}),
        json!({"KeyId": key, "KeySpec": "AES_256", "NumberOfBytes": 32}),
        json!({"KeyId": key}),
        json!({"KeySpec": "AES_256"}),
    ] {
        assert_eq!(code(call(bad.clone())), "ValidationException", "{bad}");
    }
    // Two data keys are never the same.
    let a = call(json!({"KeyId": key, "KeySpec": "AES_256"})).unwrap();
    let b = call(json!({"KeyId": key, "KeySpec": "AES_256"})).unwrap();
    assert_ne!(a["Plaintext"], b["Plaintext"]);

    let out = api::handle(
        &env.kms,
        &owner(),
        "GenerateDataKeyWithoutPlaintext",
        &json!({"KeyId": key, "NumberOfBytes": 24, "EncryptionContext": {"a": "b"}}),
    )
    .unwrap();
    assert!(out.get("Plaintext").is_none(), "{out}");
    let wrapped = B64.decode(out["CiphertextBlob"].as_str().unwrap()).unwrap();
    let d = env
        .kms
        .decrypt(&owner(), &wrapped, &ctx(&[("a", "b")]), None)
        .unwrap();
    assert_eq!(d.plaintext.len(), 24);
}

#[test]
fn api_maps_fields_and_errors() {
    let env = Env::new();
    let call = |op: &str, req: Value| api::handle(&env.kms, &owner(), op, &req);
    let created = call(
        "CreateKey",
        json!({"Description": "d", "Tags": [{"TagKey": "a", "TagValue": "b"}]}),
    )
    .unwrap();
    let meta = &created["KeyMetadata"];
    let key = meta["KeyId"].as_str().unwrap().to_string();
    assert_eq!(meta["KeyState"], "Enabled");
    assert_eq!(meta["Enabled"], true);
    assert_eq!(meta["Origin"], "AWS_KMS");
    assert_eq!(meta["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(meta["CreationDate"], T0);
    let enc = call(
        "Encrypt",
        json!({"KeyId": key, "Plaintext": B64.encode(b"hi")}),
    )
    .unwrap();
    assert_eq!(enc["EncryptionAlgorithm"], "SYMMETRIC_DEFAULT");
    let dec = call("Decrypt", json!({"CiphertextBlob": enc["CiphertextBlob"]})).unwrap();
    assert_eq!(dec["Plaintext"], B64.encode(b"hi"));
    assert_eq!(dec["KeyId"], enc["KeyId"]);
    assert_eq!(
        code(call(
            "Encrypt",
            json!({"KeyId": key, "Plaintext": B64.encode(b"hi"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"})
        )),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        code(call("Encrypt", json!({"KeyId": key}))),
        "ValidationException"
    );
    assert_eq!(
        code(call("Decrypt", json!({"CiphertextBlob": "!!not base64!!"}))),
        "ValidationException"
    );
    assert_eq!(code(call("CreateGrant", json!({}))), "ValidationException");
    assert_eq!(
        code(call("FrobnicateKey", json!({}))),
        "UnsupportedOperationException"
    );
    let sched = call(
        "ScheduleKeyDeletion",
        json!({"KeyId": key, "PendingWindowInDays": 7}),
    )
    .unwrap();
    assert_eq!(sched["KeyState"], "PendingDeletion");
    assert_eq!(sched["PendingWindowInDays"], 7);
    assert_eq!(sched["DeletionDate"], T0 + 7 * DAY);
    let meta = &call("DescribeKey", json!({"KeyId": key})).unwrap()["KeyMetadata"];
    assert_eq!(meta["Enabled"], false);
    assert_eq!(meta["DeletionDate"], T0 + 7 * DAY);
}

// ---------------------------------------------------------------------------
// Key policy
// ---------------------------------------------------------------------------

const ADMIN_GROUP: u32 = 4242;
const KEY_USER: u32 = 1001;

fn admin() -> Caller {
    Caller {
        uid: 2000,
        gid: 2000,
        groups: vec![ADMIN_GROUP],
        iam_user: None,
        region: None,
    }
}

fn key_user() -> Caller {
    Caller {
        uid: KEY_USER,
        gid: 1001,
        groups: vec![],
        iam_user: None,
        region: None,
    }
}

fn stranger() -> Caller {
    Caller {
        uid: 1002,
        gid: 1002,
        groups: vec![100],
        iam_user: None,
        region: None,
    }
}

fn split_policy() -> String {
    policy(json!([
        {"Sid": "Administration", "Effect": "Allow",
         "Principal": {"Group": [ADMIN_GROUP.to_string()]}, "Action": ADMIN_ACTIONS, "Resource": "*"},
        {"Sid": "Usage", "Effect": "Allow",
         "Principal": {"User": KEY_USER.to_string()}, "Action": USER_ACTIONS, "Resource": "*"},
        {"Sid": "Owner keeps the policy", "Effect": "Allow",
         "Principal": {"User": "1000"}, "Action": ["kms:PutKeyPolicy", "kms:DescribeKey"]}
    ]))
}

#[test]
fn default_policy_is_the_creator_only() {
    let env = Env::new();
    let key = env.key();
    let text = env.kms.get_key_policy(&owner(), &key, None).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["Statement"][0]["Principal"]["User"][0], "1000");
    let r = env.kms.encrypt(&stranger(), &key, b"x", &no_ctx());
    assert!(matches!(r, Err(KmsError::AccessDenied(_))), "{r:?}");
    assert_eq!(
        code(env.kms.describe_key(&stranger(), &key)),
        "AccessDeniedException"
    );
    assert_eq!(
        code(env.kms.disable_key(&stranger(), &key)),
        "AccessDeniedException"
    );
    // Root is not special: the policy decides.
    let root = Caller {
        uid: 0,
        gid: 0,
        groups: vec![0],
        iam_user: None,
        region: None,
    };
    assert_eq!(
        code(env.kms.encrypt(&root, &key, b"x", &no_ctx())),
        "AccessDeniedException"
    );
    assert_eq!(env.state(&key), KeyState::Enabled);
}

#[test]
fn administrators_manage_users_use_strangers_nothing() {
    let env = Env::new();
    let key = env.key();
    env.kms
        .put_key_policy(&owner(), &key, None, &split_policy(), false)
        .unwrap();
    assert_eq!(
        env.kms
            .get_key_policy(&admin(), &key, Some("default"))
            .unwrap(),
        split_policy()
    );
    let b = env
        .kms
        .encrypt(&key_user(), &key, b"for users", &no_ctx())
        .unwrap()
        .ciphertext_blob;

    // A stranger: nothing at all.
    let r = env.kms.encrypt(&stranger(), &key, b"x", &no_ctx());
    assert!(matches!(r, Err(KmsError::AccessDenied(_))), "{r:?}");
    assert_eq!(
        code(env.kms.decrypt(&stranger(), &b, &no_ctx(), None)),
        "AccessDeniedException"
    );
    assert_eq!(
        code(env.kms.describe_key(&stranger(), &key)),
        "AccessDeniedException"
    );

    // The administrator manages the key ...
    env.kms.disable_key(&admin(), &key).unwrap();
    assert_eq!(env.state(&key), KeyState::Disabled);
    env.kms.enable_key(&admin(), &key).unwrap();
    env.kms
        .create_alias(&admin(), "alias/admin-made", &key)
        .unwrap();
    env.kms.enable_key_rotation(&admin(), &key, None).unwrap();
    env.kms.rotate_key_on_demand(&admin(), &key).unwrap();
    env.kms.describe_key(&admin(), &key).unwrap();
    env.kms
        .schedule_key_deletion(&admin(), &key, Some(7))
        .unwrap();
    env.kms.cancel_key_deletion(&admin(), &key).unwrap();
    env.kms.enable_key(&admin(), &key).unwrap();
    // ... but cannot use it.
    for r in [
        env.kms.encrypt(&admin(), &key, b"x", &no_ctx()).map(|_| ()),
        env.kms.decrypt(&admin(), &b, &no_ctx(), None).map(|_| ()),
        env.kms
            .generate_data_key(&admin(), &key, 32, &no_ctx(), true)
            .map(|_| ()),
        env.kms
            .generate_data_key(&admin(), &key, 32, &no_ctx(), false)
            .map(|_| ()),
        env.kms
            .re_encrypt(&admin(), &b, &no_ctx(), None, &key, &no_ctx())
            .map(|_| ()),
    ] {
        assert!(matches!(r, Err(KmsError::AccessDenied(_))), "{r:?}");
    }

    // The key user uses it ...
    let d = env.kms.decrypt(&key_user(), &b, &no_ctx(), None).unwrap();
    assert_eq!(d.plaintext.as_slice(), b"for users");
    env.kms
        .generate_data_key(&key_user(), &key, 32, &no_ctx(), true)
        .unwrap();
    env.kms
        .re_encrypt(
            &key_user(),
            &b,
            &no_ctx(),
            None,
            "alias/admin-made",
            &no_ctx(),
        )
        .unwrap();
    env.kms.describe_key(&key_user(), &key).unwrap();
    // ... but cannot manage it.
    for r in [
        env.kms.disable_key(&key_user(), &key),
        env.kms
            .schedule_key_deletion(&key_user(), &key, Some(7))
            .map(|_| ()),
        env.kms
            .put_key_policy(&key_user(), &key, None, &split_policy(), true),
        env.kms.create_alias(&key_user(), "alias/user-made", &key),
        env.kms.delete_alias(&key_user(), "alias/admin-made"),
        env.kms.disable_key_rotation(&key_user(), &key),
        env.kms.rotate_key_on_demand(&key_user(), &key).map(|_| ()),
        env.kms.get_key_policy(&key_user(), &key, None).map(|_| ()),
    ] {
        assert!(matches!(r, Err(KmsError::AccessDenied(_))), "{r:?}");
    }
    assert_eq!(env.state(&key), KeyState::Enabled);
    assert_eq!(
        env.kms
            .describe_key(&admin(), &key)
            .unwrap()
            .current_version,
        Some(2)
    );
}

#[test]
fn explicit_deny_and_group_principals() {
    let env = Env::new();
    let key = env.key();
    let p = policy(json!([
        {"Effect": "Allow", "Principal": "*", "Action": "kms:*"},
        {"Effect": "Deny", "Principal": {"Group": "4242"}, "Action": "kms:Decrypt"}
    ]));
    env.kms
        .put_key_policy(&owner(), &key, None, &p, false)
        .unwrap();
    let b = env
        .kms
        .encrypt(&admin(), &key, b"x", &no_ctx())
        .unwrap()
        .ciphertext_blob;
    assert_eq!(
        code(env.kms.decrypt(&admin(), &b, &no_ctx(), None)),
        "AccessDeniedException"
    );
    env.kms.decrypt(&stranger(), &b, &no_ctx(), None).unwrap();
}

#[test]
fn put_key_policy_lockout_check() {
    let env = Env::new();
    let key = env.key();
    let original = env.kms.get_key_policy(&owner(), &key, None).unwrap();
    // A policy that would lock its author out of changing it again.
    let users_only = policy(json!([
        {"Effect": "Allow", "Principal": {"User": "1000"}, "Action": USER_ACTIONS}
    ]));
    let r = env
        .kms
        .put_key_policy(&owner(), &key, None, &users_only, false);
    assert!(
        matches!(r, Err(KmsError::MalformedPolicyDocument(_))),
        "{r:?}"
    );
    assert_eq!(
        env.kms.get_key_policy(&owner(), &key, None).unwrap(),
        original
    );
    // The same at creation.
    let r = env.kms.create_key(
        &owner(),
        CreateKeyInput {
            policy: Some(users_only.clone()),
            ..CreateKeyInput::default()
        },
    );
    assert_eq!(code(r), "MalformedPolicyDocumentException");
    assert_eq!(env.kms.list_keys(&owner()).unwrap().len(), 1);
    // Malformed documents, and policy names other than "default".
    for bad in [
        "{",
        r#"{"Statement": []}"#,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*"}]}"#,
    ] {
        assert_eq!(
            code(env.kms.put_key_policy(&owner(), &key, None, bad, true)),
            "MalformedPolicyDocumentException",
            "{bad}"
        );
    }
    assert_eq!(
        code(env.kms.get_key_policy(&owner(), &key, Some("other"))),
        "NotFoundException"
    );
    // With the bypass, it goes through, and the author is then locked out.
    env.kms
        .put_key_policy(&owner(), &key, None, &users_only, true)
        .unwrap();
    assert_eq!(
        code(
            env.kms
                .put_key_policy(&owner(), &key, None, &original, true)
        ),
        "AccessDeniedException"
    );
    assert_eq!(
        code(env.kms.disable_key(&owner(), &key)),
        "AccessDeniedException"
    );
    env.encrypt(&key, b"still usable");
    // A key created with a policy naming someone else, bypassing the check.
    let theirs = env
        .kms
        .create_key(
            &owner(),
            CreateKeyInput {
                policy: Some(split_policy().replace("\"1000\"", "\"7\"")),
                bypass_policy_lockout_safety_check: true,
                ..CreateKeyInput::default()
            },
        )
        .unwrap();
    let theirs = theirs.key_id.to_string();
    assert_eq!(
        code(env.kms.describe_key(&owner(), &theirs)),
        "AccessDeniedException"
    );
    env.kms
        .encrypt(&key_user(), &theirs, b"x", &no_ctx())
        .unwrap();
}

// ---------------------------------------------------------------------------
// Key material import (EXTERNAL origin)
// ---------------------------------------------------------------------------

fn wrap(public_der: &[u8], material: &[u8], sha1: bool) -> Vec<u8> {
    use rsa::pkcs8::DecodePublicKey;
    let public = rsa::PublicKey::from_public_key_der(public_der).unwrap();
    if sha1 {
        public.oaep_encrypt::<sha1::Sha1>(material).unwrap()
    } else {
        public.oaep_encrypt::<sha2::Sha256>(material).unwrap()
    }
}

fn random_material(n: usize) -> Vec<u8> {
    let mut m = vec![0u8; n];
    rand::fill(&mut m[..]);
    m
}

#[test]
fn import_key_material() {
    let env = Env::new();
    let key = env.key_with(CreateKeyInput {
        origin: Origin::External,
        ..CreateKeyInput::default()
    });
    // Import parameters are checked.
    assert_eq!(
        code(
            env.kms
                .get_parameters_for_import(&owner(), &key, "RSAES_PKCS1_V1_5", "RSA_2048")
        ),
        "ValidationException"
    );
    assert_eq!(
        code(
            env.kms
                .get_parameters_for_import(&owner(), &key, "RSAES_OAEP_SHA_256", "RSA_1024")
        ),
        "ValidationException"
    );
    let material = random_material(32);
    // Importing before asking for parameters.
    assert_eq!(
        code(
            env.kms
                .import_key_material(&owner(), &key, b"token", b"material", None)
        ),
        "InvalidImportTokenException"
    );

    let params = env
        .kms
        .get_parameters_for_import(&owner(), &key, "RSAES_OAEP_SHA_256", "RSA_2048")
        .unwrap();
    assert!(params.arn.ends_with(&key));
    assert_eq!(params.valid_to, T0 + DAY);
    let wrapped = wrap(&params.public_key, &material, false);

    // A wrong token.
    let mut wrong = params.import_token.clone();
    wrong[0] ^= 1;
    let r = env
        .kms
        .import_key_material(&owner(), &key, &wrong, &wrapped, None);
    assert!(matches!(r, Err(KmsError::InvalidImportToken(_))), "{r:?}");
    // Material that is not 32 bytes.
    let short = wrap(&params.public_key, &material[..16], false);
    assert_eq!(
        code(
            env.kms
                .import_key_material(&owner(), &key, &params.import_token, &short, None)
        ),
        "IncorrectKeyMaterialException"
    );
    // Garbage that does not unwrap.
    assert_eq!(
        code(
            env.kms
                .import_key_material(&owner(), &key, &params.import_token, &[7u8; 256], None)
        ),
        "InvalidCiphertextException"
    );
    // An expiring model is not offered.
    assert_eq!(
        code(env.kms.import_key_material(
            &owner(),
            &key,
            &params.import_token,
            &wrapped,
            Some("KEY_MATERIAL_EXPIRES")
        )),
        "UnsupportedOperationException"
    );
    assert_eq!(env.state(&key), KeyState::PendingImport);

    env.kms
        .import_key_material(
            &owner(),
            &key,
            &params.import_token,
            &wrapped,
            Some("KEY_MATERIAL_DOES_NOT_EXPIRE"),
        )
        .unwrap();
    let info = env.kms.describe_key(&owner(), &key).unwrap();
    assert_eq!(
        (info.state, info.current_version),
        (KeyState::Enabled, Some(1))
    );
    let b = env.encrypt(&key, b"imported");
    assert_eq!(env.decrypt(&b), b"imported");
    // The token was used up.
    assert_eq!(
        code(
            env.kms
                .import_key_material(&owner(), &key, &params.import_token, &wrapped, None)
        ),
        "InvalidImportTokenException"
    );

    // The ciphertext really is under the imported material: open it by hand.
    let header = blob::parse_header(&b).unwrap();
    let m = kmsfs_kms::material::KeyMaterial::from_slice(&material).unwrap();
    assert_eq!(
        blob::open(&m, &header, &b, &no_ctx()).unwrap().as_slice(),
        b"imported"
    );

    // Re-importing different material is refused; the same material is accepted.
    let again = env
        .kms
        .get_parameters_for_import(&owner(), &key, "RSAES_OAEP_SHA_1", "RSA_2048")
        .unwrap();
    let other = wrap(&again.public_key, &random_material(32), true);
    let r = env
        .kms
        .import_key_material(&owner(), &key, &again.import_token, &other, None);
    assert!(matches!(r, Err(KmsError::IncorrectKeyMaterial(_))), "{r:?}");
    let same = wrap(&again.public_key, &material, true);
    env.kms
        .import_key_material(&owner(), &key, &again.import_token, &same, None)
        .unwrap();
    assert_eq!(env.decrypt(&b), b"imported");

    // EXTERNAL keys do not rotate.
    for r in [
        env.kms.rotate_key_on_demand(&owner(), &key).map(|_| ()),
        env.kms.enable_key_rotation(&owner(), &key, None),
        env.kms.list_key_rotations(&owner(), &key).map(|_| ()),
    ] {
        assert!(matches!(r, Err(KmsError::UnsupportedOperation(_))), "{r:?}");
    }
    // And AWS_KMS keys take no imports.
    let native = env.key();
    assert_eq!(
        code(env.kms.get_parameters_for_import(
            &owner(),
            &native,
            "RSAES_OAEP_SHA_256",
            "RSA_2048"
        )),
        "UnsupportedOperationException"
    );
}

#[test]
fn import_token_expires_after_a_day() {
    let env = Env::new();
    let key = env.key_with(CreateKeyInput {
        origin: Origin::External,
        ..CreateKeyInput::default()
    });
    let params = env
        .kms
        .get_parameters_for_import(&owner(), &key, "RSAES_OAEP_SHA_256", "RSA_2048")
        .unwrap();
    let wrapped = wrap(&params.public_key, &random_material(32), false);
    env.clock.advance(DAY + 1);
    assert_eq!(
        code(
            env.kms
                .import_key_material(&owner(), &key, &params.import_token, &wrapped, None)
        ),
        "ExpiredImportTokenException"
    );
    assert_eq!(env.state(&key), KeyState::PendingImport);
}

// ---------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------

#[test]
fn audit_log_records_every_call_and_no_secrets() {
    let env = Env::new();
    let log_path = env.kms.audit_log().path().unwrap().to_path_buf();
    let start = std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .lines()
        .count();

    let c = ctx(&[("department", "audit")]);
    let key = env.key(); // 1: CreateKey
    let plaintext = b"a plaintext that must never be logged: 4f2c9a";
    let w = env.kms.encrypt(&owner(), &key, plaintext, &c).unwrap(); // 2
    env.kms
        .decrypt(&owner(), &w.ciphertext_blob, &c, None)
        .unwrap(); // 3
    let pair = env
        .kms
        .generate_data_key(&owner(), &key, 32, &c, true)
        .unwrap(); // 4
    let out = api::handle(
        &env.kms,
        &owner(),
        "GenerateDataKey",
        &json!({"KeyId": key, "KeySpec": "AES_128"}),
    )
    .unwrap(); // 5
    let api_key = out["Plaintext"].as_str().unwrap().to_string();
    env.kms.rotate_key_on_demand(&owner(), &key).unwrap(); // 6
    let _ = env
        .kms
        .decrypt(&owner(), &w.ciphertext_blob, &no_ctx(), None); // 7: failure
    let _ = env.kms.encrypt(&stranger(), &key, b"denied", &no_ctx()); // 8: failure
    env.kms.disable_key(&owner(), &key).unwrap(); // 9

    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .skip(start)
        .map(|l| serde_json::from_str(l).expect("every audit line is JSON"))
        .collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "CreateKey",
            "Encrypt",
            "Decrypt",
            "GenerateDataKey",
            "GenerateDataKey",
            "RotateKeyOnDemand",
            "Decrypt",
            "Encrypt",
            "DisableKey"
        ]
    );
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec![
            "Success",
            "Success",
            "Success",
            "Success",
            "Success",
            "Success",
            "InvalidCiphertextException",
            "AccessDeniedException",
            "Success"
        ]
    );
    for l in &lines {
        assert!(
            l["eventTime"].as_str().unwrap().starts_with("2023-11-14T"),
            "{l}"
        );
        assert!(l["keyId"].as_str().unwrap().ends_with(&key), "{l}");
    }
    assert_eq!(lines[1]["callerUid"], 1000);
    assert_eq!(lines[7]["callerUid"], 1002);
    assert_eq!(lines[1]["keyVersion"], 1);
    assert_eq!(
        lines[1]["encryptionContext"],
        json!({"department": "audit"})
    );
    assert_eq!(
        lines[3]["encryptionContext"],
        json!({"department": "audit"})
    );
    assert!(lines[6]["errorMessage"].as_str().is_some());

    // No plaintext, data key or key material, in any encoding we can think of.
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let secrets = [
        B64.encode(plaintext),
        String::from_utf8_lossy(plaintext).into_owned(),
        B64.encode(pair.plaintext.as_slice()),
        hex(pair.plaintext.as_slice()),
        api_key,
        B64.encode(&w.ciphertext_blob),
    ];
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "the audit log holds {s}");
    }
    let store = KeyStore::open(&env.path, &RootSecret::KeyFile).unwrap();
    let data = serde_json::to_value(store.data()).unwrap();
    let key_data = &data["keys"][&key];
    for v in key_data["versions"].as_array().unwrap() {
        let material = v["material"].as_str().unwrap();
        assert!(!text.contains(material));
    }
}

#[test]
fn audit_log_records_refused_requests_too() {
    let env = Env::new();
    let key = env.key();
    let log_path = env.kms.audit_log().path().unwrap().to_path_buf();
    let start = std::fs::read_to_string(&log_path).unwrap().lines().count();
    let _ = env.kms.encrypt(&owner(), &key, b"", &no_ctx());
    let _ = env.kms.schedule_key_deletion(&owner(), &key, Some(6));
    let _ = env.kms.enable_key_rotation(&owner(), &key, Some(10));
    let _ = env.kms.create_alias(&owner(), "alias/aws/x", &key);
    let _ = env
        .kms
        .generate_data_key(&owner(), &key, 0, &no_ctx(), true);
    let _ = env.kms.put_key_policy(&owner(), &key, None, "{", false);
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .skip(start)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["eventName"].as_str().unwrap().to_string(),
                l["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("Encrypt", "ValidationException"),
        ("ScheduleKeyDeletion", "ValidationException"),
        ("EnableKeyRotation", "ValidationException"),
        ("CreateAlias", "InvalidAliasNameException"),
        ("GenerateDataKey", "ValidationException"),
        ("PutKeyPolicy", "MalformedPolicyDocumentException"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------
// The store: concurrency, corruption, wrong root key
// ---------------------------------------------------------------------------

#[test]
fn concurrent_writers_lose_nothing() {
    let env = Env::new();
    let seed = env.key();
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let kms = env.reopen();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..20 {
                    let info = kms.create_key(&owner(), CreateKeyInput::default()).unwrap();
                    let id = info.key_id.to_string();
                    if i % 5 == 0 {
                        kms.create_alias(&owner(), &format!("alias/t{t}-{i}"), &id)
                            .unwrap();
                    }
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    // Meanwhile, the first instance keeps changing the seed key.
    for _ in 0..5 {
        env.kms.rotate_key_on_demand(&owner(), &seed).unwrap();
    }
    let mut made: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    made.push(seed.clone());
    made.sort();
    let fresh = env.reopen();
    let mut listed: Vec<String> = fresh
        .list_keys(&owner())
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    listed.sort();
    assert_eq!(listed.len(), 41);
    assert_eq!(listed, made);
    assert_eq!(fresh.list_aliases(&owner(), None).unwrap().len(), 8);
    assert_eq!(
        fresh.describe_key(&owner(), &seed).unwrap().current_version,
        Some(6)
    );
}

#[test]
fn corrupted_store_is_refused_and_left_alone() {
    let env = Env::new();
    env.key();
    drop(env.kms);
    let good = std::fs::read(&env.path).unwrap();
    let clock: Arc<dyn Clock> = env.clock.clone();
    for i in [0, 9, 10, 30, 45, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[i] ^= 0x40;
        std::fs::write(&env.path, &bad).unwrap();
        let r = LocalKms::open(&env.path, &RootSecret::KeyFile, clock.clone());
        assert!(matches!(r, Err(KmsError::Store(_))), "byte {i}: {r:?}");
        assert_eq!(std::fs::read(&env.path).unwrap(), bad, "byte {i}");
    }
    std::fs::write(&env.path, &good[..40]).unwrap();
    assert!(LocalKms::open(&env.path, &RootSecret::KeyFile, clock.clone()).is_err());
    assert_eq!(std::fs::read(&env.path).unwrap(), &good[..40]);

    // A wrong root key file.
    std::fs::write(&env.path, &good).unwrap();
    let mut root_path = env.path.clone().into_os_string();
    root_path.push(".rootkey");
    let mut root = std::fs::read(&root_path).unwrap();
    root[20] ^= 1;
    std::fs::write(&root_path, &root).unwrap();
    let err = LocalKms::open(&env.path, &RootSecret::KeyFile, clock.clone()).unwrap_err();
    assert!(err.to_string().contains("cannot be authenticated"), "{err}");
    assert_eq!(std::fs::read(&env.path).unwrap(), good);
    root[20] ^= 1;
    std::fs::write(&root_path, &root).unwrap();
    assert_eq!(
        LocalKms::open(&env.path, &RootSecret::KeyFile, clock)
            .unwrap()
            .with_owner(owner().uid)
            .list_keys(&owner())
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn store_file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/folder/keystore");
    let clock = Arc::new(ManualClock::new(T0));
    let kms = open(&path, &clock);
    kms.create_key(&owner(), CreateKeyInput::default()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let mut root = path.clone().into_os_string();
    root.push(".rootkey");
    assert_eq!(mode(Path::new(&root)), 0o600);
    assert_eq!(mode(kms.audit_log().path().unwrap()), 0o600);
    // The store holds no key material in the clear.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"KMSFSKS\0");
    assert!(!String::from_utf8_lossy(&bytes).contains("material"));
}
