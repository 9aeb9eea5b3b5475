//! Creating a volume: an empty backing directory, a CMK in the chosen key
//! service (the default one created on first use where kmsfs may create
//! keys), and the config that ties them together.

use std::fs;
use std::path::Path;

use kmsfs_format::cipher::CipherSuite;
use kmsfs_kms::local::{CreateKeyInput, LocalKms};
use kmsfs_kms::protocol::{CreateAliasRequest, CreateKeyRequest, DescribeKeyRequest};
use kmsfs_kms::remote::KmsClient;
use kmsfs_kms::{Caller, KmsError};

use crate::config::{DEFAULT_KEY_ALIAS, HeaderPlacement, KeyServiceConfig, VolumeConfig};
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
    let config = VolumeConfig::new(spec.cipher, spec.header, key_service, key.arn);
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
    };
    create_volume(backing, &spec, secrets).map(Some)
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
