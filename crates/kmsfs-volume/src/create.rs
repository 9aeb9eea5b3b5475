//! Creating a volume: an empty backing directory, a CMK in the chosen key
//! service (the default one created on first use where kmsfs may create
//! keys), and the config that ties them together.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use base64::Engine;

use kmsfs_format::cipher::CipherSuite;
use kmsfs_kms::local::{CreateKeyInput, LocalKms};
use kmsfs_kms::protocol::{CreateAliasRequest, CreateKeyRequest, DescribeKeyRequest};
use kmsfs_kms::remote::KmsClient;
use kmsfs_kms::{Caller, KeyService, KmsError};

use crate::backing::Dir;
use crate::config::{
    DEFAULT_KEY_ALIAS, HeaderPlacement, KeyServiceConfig, TREE_NAME, VolumeConfig, WrappedNameKey,
};
use crate::error::VolumeError;
use crate::key_service::{RootSecretSource, open_embedded_store, open_key_service};

/// What a new volume is made of.
#[derive(Debug, Clone)]
pub struct VolumeSpec {
    /// Where its keys live. For an endpoint, the URL is saved as the client
    /// normalises it.
    pub key_service: KeyServiceConfig,
    /// The CMK that wraps its data keys; `None`: `alias/kmsfs/default`.
    pub key_id: Option<String>,
    pub cipher: CipherSuite,
    pub header: HeaderPlacement,
    /// Format version 2 (the default): names, symlink targets and user
    /// xattrs encrypted, the tree in a sealed backing root. `false`: format
    /// version 1, names as they are (`kmsfs init --plaintext-names`).
    pub encrypted_names: bool,
}

/// A volume just created.
#[derive(Debug)]
pub struct NewVolume {
    pub config: VolumeConfig,
    /// The default CMK (and its alias) did not exist and was created.
    pub created_default_key: bool,
}

/// The ARN of a volume's CMK, and whether it was created just now.
struct ResolvedKey {
    arn: String,
    created: bool,
}

impl ResolvedKey {
    fn existing(arn: String) -> ResolvedKey {
        ResolvedKey {
            arn,
            created: false,
        }
    }
}

/// Creates a volume in `backing` (created if absent; must be empty).
pub fn create_volume(
    backing: &Path,
    spec: &VolumeSpec,
    secrets: &dyn RootSecretSource,
) -> Result<NewVolume, VolumeError> {
    prepare_empty_backing(backing)?;
    let key_id = spec.key_id.as_deref();
    let (key_service, key) = match &spec.key_service {
        KeyServiceConfig::Embedded { keystore } => {
            let kms = open_embedded_store(keystore, secrets)?;
            (
                spec.key_service.clone(),
                resolve_embedded_key(&kms, key_id)?,
            )
        }
        KeyServiceConfig::Endpoint {
            url,
            cache_max_keys,
            cache_max_age_seconds,
        } => {
            let client = KmsClient::from_env(url)?;
            let key = resolve_endpoint_key(&client, key_id)?;
            let service = KeyServiceConfig::Endpoint {
                url: client.url().to_string(),
                cache_max_keys: *cache_max_keys,
                cache_max_age_seconds: *cache_max_age_seconds,
            };
            (service, key)
        }
        KeyServiceConfig::Aws { .. } => {
            let kms = open_key_service(&spec.key_service, secrets)?;
            let key = key_id.unwrap_or(DEFAULT_KEY_ALIAS);
            let arn = kms
                .describe_key(&Caller::current(), key)
                .map_err(|e| match e {
                    KmsError::NotFound(m) if key_id.is_none() => KmsError::NotFound(format!(
                        "{m} (kmsfs does not create CMKs in AWS KMS: name one with --key-id)"
                    )),
                    other => other,
                })?
                .key_arn;
            (spec.key_service.clone(), ResolvedKey::existing(arn))
        }
    };
    let mut config = VolumeConfig::new(spec.cipher, spec.header, key_service, key.arn);
    if spec.encrypted_names {
        let kms = open_key_service(&config.key_service, secrets)?;
        config = with_new_name_key(config, kms.as_ref())?;
        seal_backing_root(backing)?;
        let root = Dir::open_root(backing).map_err(|e| backing_error(backing, e))?;
        let tree = OsStr::new(TREE_NAME);
        root.mkdir(tree, 0o755)
            .and_then(|()| root.open_dir(tree))
            .and_then(|tree| {
                // mkdir applied the umask; the mount's root is 0755 whatever it was.
                tree.as_node()?.chmod(0o755)?;
                write_new_dir_id(&tree)
            })
            .map_err(|e| backing_error(backing, e))?;
    }
    config.save(backing)?;
    Ok(NewVolume {
        config,
        created_default_key: key.created,
    })
}

/// What a mount does with a backing directory that is not a volume yet: an
/// empty one becomes a volume with the defaults (embedded store at
/// `keystore`, AES-256-GCM, headers in the file, the default CMK); one with
/// files in it is refused. `None` when `backing` is a volume already.
pub fn create_volume_if_empty(
    backing: &Path,
    keystore: &Path,
    secrets: &dyn RootSecretSource,
) -> Result<Option<NewVolume>, VolumeError> {
    if VolumeConfig::exists_in(backing) {
        return Ok(None);
    }
    // An unreadable or absent directory counts as empty: creating the volume
    // then says what is wrong with it.
    let empty = fs::read_dir(backing)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    if !empty {
        return Err(VolumeError::NotAVolume(backing.to_path_buf()));
    }
    let spec = VolumeSpec {
        key_service: KeyServiceConfig::Embedded {
            keystore: keystore.to_path_buf(),
        },
        key_id: None,
        cipher: CipherSuite::Aes256Gcm,
        header: HeaderPlacement::File,
        encrypted_names: true,
    };
    create_volume(backing, &spec, secrets).map(Some)
}

fn backing_error(backing: &Path, source: std::io::Error) -> VolumeError {
    VolumeError::Backing {
        path: backing.to_path_buf(),
        source,
    }
}

/// A random name key from the volume's CMK, wrapped with the context that
/// binds it to this volume (`Volume::name_key_context`).
fn with_new_name_key(
    config: VolumeConfig,
    kms: &dyn KeyService,
) -> Result<VolumeConfig, VolumeError> {
    let ctx = crate::file::name_key_context(&config.volume_id);
    let pair = kms.generate_data_key(&Caller::current(), &config.key_id, &ctx)?;
    let wrapped = WrappedNameKey {
        key_id: pair.key_arn.clone(),
        key_version: pair.key_version,
        blob: base64::engine::general_purpose::STANDARD.encode(&pair.ciphertext_blob),
    };
    Ok(config.with_name_key(wrapped))
}

/// A version 2 backing root belongs to the daemon's user alone (mode 0700):
/// users reach their files through the mount only.
fn seal_backing_root(backing: &Path) -> Result<(), VolumeError> {
    let root = Dir::open_root(backing).map_err(|e| backing_error(backing, e))?;
    let node = root.as_node().map_err(|e| backing_error(backing, e))?;
    node.chown(
        Some(nix::unistd::geteuid().as_raw()),
        Some(nix::unistd::getegid().as_raw()),
    )
    .and_then(|()| node.chmod(0o700))
    .map_err(|e| backing_error(backing, e))
}

fn write_new_dir_id(dir: &Dir) -> std::io::Result<()> {
    use std::io::Write;
    let id = kmsfs_format::names::DirId::random();
    dir.create_file(OsStr::new(kmsfs_format::names::DIR_ID_FILE), 0o400)?
        .write_all(id.as_bytes())
}

/// Creates the backing directory if needed and checks that it can become a
/// new volume: not one already, and empty.
fn prepare_empty_backing(backing: &Path) -> Result<(), VolumeError> {
    let io_error = |source| VolumeError::Backing {
        path: backing.to_path_buf(),
        source,
    };
    fs::create_dir_all(backing).map_err(io_error)?;
    if VolumeConfig::exists_in(backing) {
        return Err(VolumeError::AlreadyAVolume(backing.to_path_buf()));
    }
    if fs::read_dir(backing).map_err(io_error)?.next().is_some() {
        return Err(VolumeError::NotEmpty(backing.to_path_buf()));
    }
    Ok(())
}

/// The ARN of the CMK a new volume uses in the embedded store, creating the
/// default one if needed.
fn resolve_embedded_key(kms: &LocalKms, key_id: Option<&str>) -> Result<ResolvedKey, KmsError> {
    let caller = Caller::current();
    if let Some(k) = key_id {
        return Ok(ResolvedKey::existing(kms.describe_key(&caller, k)?.arn));
    }
    match kms.describe_key(&caller, DEFAULT_KEY_ALIAS) {
        Ok(info) => Ok(ResolvedKey::existing(info.arn)),
        Err(KmsError::NotFound(_)) => {
            let info = kms.create_key(
                &caller,
                CreateKeyInput {
                    description: "kmsfs default volume key".into(),
                    ..CreateKeyInput::default()
                },
            )?;
            kms.create_alias(&caller, DEFAULT_KEY_ALIAS, &info.key_id.to_string())?;
            Ok(ResolvedKey {
                arn: info.arn,
                created: true,
            })
        }
        Err(e) => Err(e),
    }
}

/// The ARN of the volume's CMK at the endpoint, creating the default key
/// (and its alias) there if none is named and it does not exist yet.
fn resolve_endpoint_key(client: &KmsClient, key_id: Option<&str>) -> Result<ResolvedKey, KmsError> {
    let describe = |key: &str| {
        client
            .send(&DescribeKeyRequest::new(key))
            .map(|d| d.key_metadata.arn)
    };
    if let Some(k) = key_id {
        return describe(k).map(ResolvedKey::existing);
    }
    match describe(DEFAULT_KEY_ALIAS) {
        Ok(arn) => Ok(ResolvedKey::existing(arn)),
        Err(KmsError::NotFound(_)) => {
            let created = client
                .send(&CreateKeyRequest {
                    description: Some("kmsfs default volume key".into()),
                    ..CreateKeyRequest::default()
                })?
                .key_metadata;
            client.send(&CreateAliasRequest {
                alias_name: DEFAULT_KEY_ALIAS.into(),
                target_key_id: created.key_id,
            })?;
            Ok(ResolvedKey {
                arn: created.arn,
                created: true,
            })
        }
        Err(e) => Err(e),
    }
}
