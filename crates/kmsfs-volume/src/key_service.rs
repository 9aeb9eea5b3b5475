//! Which key service a volume's keys live in, and opening it: the embedded
//! store, a KMS endpoint, or AWS KMS; remote ones behind the data key cache,
//! so a mount does not call the network for every open.
//!
//! The embedded store may be protected by a passphrase. How to get it (a
//! terminal prompt, a file named in the environment) is the front end's
//! business, so the caller passes a [`RootSecretSource`]. It is a trait and
//! not a closure because the answer borrows from the caller (the
//! `RootSecret::Passphrase` prompt is a reference) and depends on the store
//! path (a new store vs. an existing one): a method `&self, &Path ->
//! RootSecret<'_>` says that lifetime plainly, a closure type cannot.

use std::path::Path;
use std::sync::Arc;

use kmsfs_kms::cache::{CacheLimits, CachingKms};
use kmsfs_kms::clock::SystemClock;
use kmsfs_kms::local::LocalKms;
use kmsfs_kms::remote::{KmsClient, RemoteKms};
use kmsfs_kms::store::RootSecret;
use kmsfs_kms::{KeyService, KmsError};

use crate::config::KeyServiceConfig;
use crate::error::VolumeError;

/// How the embedded key store's root secret is obtained.
pub trait RootSecretSource {
    /// The root secret to open (or create) the store at `store` with.
    fn root_secret(&self, store: &Path) -> RootSecret<'_>;
}

/// Opens (or creates) the embedded key store at `keystore`.
pub fn open_embedded_store(
    keystore: &Path,
    secrets: &dyn RootSecretSource,
) -> Result<LocalKms, KmsError> {
    LocalKms::open(
        keystore,
        &secrets.root_secret(keystore),
        Arc::new(SystemClock),
    )
}

/// Opens the existing embedded key store at `keystore`, never creating one.
fn open_existing_embedded_store(
    keystore: &Path,
    secrets: &dyn RootSecretSource,
) -> Result<LocalKms, VolumeError> {
    // The common case (a disk not mounted, a store moved away) gets its own
    // sentence; a store that vanishes after this check still fails below,
    // as a read error, because `open_existing` never creates one. An
    // unreachable folder (`Err`) is left for the open to explain.
    if let Ok(false) = keystore.try_exists() {
        return Err(VolumeError::KeyStoreMissing(keystore.to_path_buf()));
    }
    Ok(LocalKms::open_existing(
        keystore,
        &secrets.root_secret(keystore),
        Arc::new(SystemClock),
    )?)
}

/// Opens the key service a volume's config names. The volume exists, so its
/// embedded store must too: creating an empty one in its place (the old
/// behaviour) made a volume whose store was on an unmounted disk look empty
/// of keys, and every file unreadable. New stores come from
/// [`open_embedded_store`] (`create_volume`, the `kmsfs kms` commands).
pub(crate) fn open_key_service(
    config: &KeyServiceConfig,
    secrets: &dyn RootSecretSource,
) -> Result<Arc<dyn KeyService>, VolumeError> {
    match config {
        KeyServiceConfig::Embedded { keystore } => {
            Ok(Arc::new(open_existing_embedded_store(keystore, secrets)?))
        }
        KeyServiceConfig::Endpoint {
            url,
            cache_max_keys,
            cache_max_age_seconds,
        } => {
            let remote: Arc<dyn KeyService> = Arc::new(RemoteKms::new(KmsClient::from_env(url)?));
            Ok(behind_cache(
                remote,
                *cache_max_keys,
                *cache_max_age_seconds,
            ))
        }
        KeyServiceConfig::Aws {
            region,
            endpoint_url,
            cache_max_keys,
            cache_max_age_seconds,
        } => Ok(behind_cache(
            aws_kms(region.as_deref(), endpoint_url.as_deref())?,
            *cache_max_keys,
            *cache_max_age_seconds,
        )),
    }
}

fn behind_cache(
    inner: Arc<dyn KeyService>,
    max_keys: usize,
    max_age_seconds: i64,
) -> Arc<dyn KeyService> {
    Arc::new(CachingKms::new(
        inner,
        CacheLimits {
            max_keys,
            max_age_seconds,
        },
        Arc::new(SystemClock),
    ))
}

#[cfg(feature = "aws-kms")]
fn aws_kms(
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> Result<Arc<dyn KeyService>, VolumeError> {
    Ok(Arc::new(kmsfs_kms::aws::AwsKms::new(region, endpoint_url)?))
}

#[cfg(not(feature = "aws-kms"))]
fn aws_kms(
    _region: Option<&str>,
    _endpoint_url: Option<&str>,
) -> Result<Arc<dyn KeyService>, VolumeError> {
    Err(VolumeError::AwsKmsNotBuilt)
}
