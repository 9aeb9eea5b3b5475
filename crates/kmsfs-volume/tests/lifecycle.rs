//! A volume's life through the library API, on the embedded store with a
//! root key file (no root, no mount): create, open, re-key, check.

use std::fs;
use std::path::{Path, PathBuf};

use kmsfs_format::cipher::CipherSuite;
use kmsfs_kms::local::CreateKeyInput;
use kmsfs_kms::store::RootSecret;
use kmsfs_kms::{Caller, KmsError};
use kmsfs_volume::config::{DEFAULT_KEY_ALIAS, HeaderPlacement, KeyServiceConfig};
use kmsfs_volume::create::{VolumeSpec, create_volume, create_volume_if_empty};
use kmsfs_volume::fsck::check_volume;
use kmsfs_volume::key_service::open_embedded_store;
use kmsfs_volume::rekey::set_volume_key;
use kmsfs_volume::{RootSecretSource, VolumeConfig, VolumeError, open_volume};

/// A store protected by a root key file beside it; never a prompt.
struct KeyFileOnly;

impl RootSecretSource for KeyFileOnly {
    fn root_secret(&self, _store: &Path) -> RootSecret<'_> {
        RootSecret::KeyFile
    }
}

fn spec(keystore: &Path, key_id: Option<&str>) -> VolumeSpec {
    VolumeSpec {
        key_service: KeyServiceConfig::Embedded {
            keystore: keystore.to_path_buf(),
        },
        key_id: key_id.map(str::to_string),
        cipher: CipherSuite::Aes256Gcm,
        header: HeaderPlacement::File,
        encrypted_names: true,
    }
}

struct Dirs {
    _tmp: tempfile::TempDir,
    keystore: PathBuf,
    backing: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    Dirs {
        keystore: tmp.path().join("keystore"),
        backing: tmp.path().join("backing"),
        _tmp: tmp,
    }
}

#[test]
fn create_makes_the_default_key_once_and_open_uses_it() {
    let d = dirs();
    let first = create_volume(&d.backing, &spec(&d.keystore, None), &KeyFileOnly).unwrap();
    assert!(first.created_default_key);
    assert!(VolumeConfig::exists_in(&d.backing));

    let second_backing = d.backing.with_extension("2");
    let second = create_volume(&second_backing, &spec(&d.keystore, None), &KeyFileOnly).unwrap();
    assert!(
        !second.created_default_key,
        "the default CMK exists already"
    );
    assert_eq!(second.config.key_id, first.config.key_id);

    let kms = open_embedded_store(&d.keystore, &KeyFileOnly).unwrap();
    let alias = kms
        .describe_key(&Caller::current(), DEFAULT_KEY_ALIAS)
        .unwrap();
    assert_eq!(alias.arn, first.config.key_id);
    drop(kms);

    let volume = open_volume(&d.backing, &KeyFileOnly).unwrap();
    assert_eq!(volume.key_id(), first.config.key_id);
    assert_eq!(volume.config.volume_id, first.config.volume_id);
}

#[test]
fn create_refuses_a_volume_and_a_non_empty_directory() {
    let d = dirs();
    create_volume(&d.backing, &spec(&d.keystore, None), &KeyFileOnly).unwrap();
    let again = create_volume(&d.backing, &spec(&d.keystore, None), &KeyFileOnly);
    assert!(matches!(again, Err(VolumeError::AlreadyAVolume(p)) if p == d.backing));
    assert!(
        create_volume_if_empty(&d.backing, &d.keystore, &KeyFileOnly)
            .unwrap()
            .is_none()
    );

    let full = d.backing.with_extension("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("file"), b"x").unwrap();
    let err = create_volume(&full, &spec(&d.keystore, None), &KeyFileOnly).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not empty: a new volume needs an empty backing directory",
            full.display()
        )
    );
    let err = create_volume_if_empty(&full, &d.keystore, &KeyFileOnly).unwrap_err();
    assert!(matches!(err, VolumeError::NotAVolume(_)), "{err}");

    let empty = d.backing.with_extension("empty");
    let new = create_volume_if_empty(&empty, &d.keystore, &KeyFileOnly)
        .unwrap()
        .unwrap();
    assert_eq!(new.config.suite().unwrap(), CipherSuite::Aes256Gcm);
}

#[test]
fn a_named_key_that_does_not_exist_is_a_kms_error() {
    let d = dirs();
    let err = create_volume(
        &d.backing,
        &spec(&d.keystore, Some("alias/nope")),
        &KeyFileOnly,
    )
    .unwrap_err();
    assert!(
        matches!(err, VolumeError::Kms(KmsError::NotFound(_))),
        "{err}"
    );
    assert!(!VolumeConfig::exists_in(&d.backing));
}

#[test]
fn rekey_accepts_an_enabled_key_and_refuses_a_disabled_one() {
    let d = dirs();
    create_volume(&d.backing, &spec(&d.keystore, None), &KeyFileOnly).unwrap();
    let caller = Caller::current();
    let kms = open_embedded_store(&d.keystore, &KeyFileOnly).unwrap();
    let enabled = kms.create_key(&caller, CreateKeyInput::default()).unwrap();
    let disabled = kms.create_key(&caller, CreateKeyInput::default()).unwrap();
    kms.disable_key(&caller, &disabled.key_id.to_string())
        .unwrap();
    drop(kms);

    let arn = set_volume_key(&d.backing, &enabled.key_id.to_string(), &KeyFileOnly).unwrap();
    assert_eq!(arn, enabled.arn);
    assert_eq!(VolumeConfig::load(&d.backing).unwrap().key_id, enabled.arn);

    let err = set_volume_key(&d.backing, &disabled.key_id.to_string(), &KeyFileOnly).unwrap_err();
    match err {
        VolumeError::Kms(KmsError::Disabled(m)) => assert_eq!(
            m,
            format!(
                "{} is disabled: refusing to re-key the volume to it",
                disabled.arn
            )
        ),
        other => panic!("expected DisabledException, got {other:?}"),
    }
    assert_eq!(VolumeConfig::load(&d.backing).unwrap().key_id, enabled.arn);
}

#[test]
fn fsck_reports_a_file_without_a_valid_header() {
    let d = dirs();
    create_volume(&d.backing, &spec(&d.keystore, None), &KeyFileOnly).unwrap();
    let volume = open_volume(&d.backing, &KeyFileOnly).unwrap();
    assert_eq!(check_volume(&d.backing, &volume).unwrap().checked, 0);

    // A file in the tree (the mount's root of a version 2 volume) whose
    // name is not even an encrypted one: fsck still checks its content.
    let tree = d.backing.join(kmsfs_volume::config::TREE_NAME);
    fs::write(tree.join("garbage"), vec![0x5a; 4096]).unwrap();
    let report = check_volume(&d.backing, &volume).unwrap();
    assert_eq!(report.checked, 1);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].path, tree.join("garbage"));
}

#[test]
fn a_version_2_backing_root_is_sealed_and_an_open_one_refused() {
    use kmsfs_volume::{Sealing, check_sealed};
    use std::os::unix::fs::PermissionsExt;
    let d = dirs();
    let new = create_volume(&d.backing, &spec(&d.keystore, None), &KeyFileOnly).unwrap();
    let mode = |m: u32| fs::set_permissions(&d.backing, fs::Permissions::from_mode(m)).unwrap();
    let meta = fs::metadata(&d.backing).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    assert_eq!(
        check_sealed(&d.backing, &new.config).unwrap(),
        Sealing::Sealed
    );
    mode(0o755);
    assert_eq!(
        check_sealed(&d.backing, &new.config).unwrap(),
        Sealing::Readable(0o755)
    );
    for open in [0o775, 0o777, 0o730, 0o702] {
        mode(open);
        match check_sealed(&d.backing, &new.config) {
            Err(VolumeError::Unsealed { why, .. }) => assert!(why.contains("write"), "{why}"),
            other => panic!("mode {open:o}: {other:?}"),
        }
    }
    mode(0o700);
    // The tree is the mount's root: 0755 whatever the umask was, with its id.
    let tree = d.backing.join(kmsfs_volume::config::TREE_NAME);
    assert_eq!(
        fs::metadata(&tree).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read(tree.join(kmsfs_format::names::DIR_ID_FILE))
            .unwrap()
            .len(),
        16
    );
}

#[test]
fn opening_a_volume_whose_key_store_is_missing_creates_no_store() {
    let d = dirs();
    let created = create_volume(&d.backing, &spec(&d.keystore, None), &KeyFileOnly).unwrap();
    let away = d.keystore.with_extension("away");
    fs::rename(&d.keystore, &away).unwrap();

    // Before the fix this opened a new, empty store in its place, and the
    // volume's CMK was "not found": every file looked lost.
    let err = open_volume(&d.backing, &KeyFileOnly)
        .err()
        .expect("opened without its key store");
    assert!(
        matches!(&err, VolumeError::KeyStoreMissing(p) if *p == d.keystore),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "key store not found at {} (the volume's config names it; is its disk mounted?)",
            d.keystore.display()
        )
    );
    assert!(!d.keystore.exists(), "a new store was created");

    // Its folder gone too (a disk not mounted): not created either.
    let folder = d._tmp.path().join("disk");
    let elsewhere = folder.join("keystore");
    let mut config = VolumeConfig::load(&d.backing).unwrap();
    config.key_service = KeyServiceConfig::Embedded {
        keystore: elsewhere.clone(),
    };
    config.save(&d.backing).unwrap();
    let err = open_volume(&d.backing, &KeyFileOnly)
        .err()
        .expect("opened without its key store");
    assert!(
        matches!(&err, VolumeError::KeyStoreMissing(p) if *p == elsewhere),
        "{err:?}"
    );
    assert!(!folder.exists(), "the store's folder was created");

    config.key_service = KeyServiceConfig::Embedded {
        keystore: d.keystore.clone(),
    };
    config.save(&d.backing).unwrap();
    fs::rename(&away, &d.keystore).unwrap();
    let volume = open_volume(&d.backing, &KeyFileOnly).unwrap();
    assert_eq!(volume.key_id(), created.config.key_id);
}
