//! Opening an existing volume: its config, then the key service it names.

use std::path::Path;

use crate::backing::Dir;
use crate::config::VolumeConfig;
use crate::error::VolumeError;
use crate::file::Volume;
use crate::key_service::{RootSecretSource, open_key_service};

/// How far other users can reach a version 2 backing root.
#[derive(Debug, PartialEq, Eq)]
pub enum Sealing {
    /// Owned by this process's user, mode 0700 (or stricter).
    Sealed,
    /// Nobody else can write it, but others can traverse or list it: they
    /// see the encrypted tree's shape, sizes and times (a warning).
    Readable(u32),
    /// A version 1 volume: its backing root is the mount's root, which
    /// users reach by the paths the mount mirrors.
    NotApplicable,
}

/// Refuses (`VolumeError::Unsealed`) a version 2 backing root that another
/// user owns or that group or others can write; says whether it is
/// sealed otherwise.
pub fn check_sealed(backing: &Path, config: &VolumeConfig) -> Result<Sealing, VolumeError> {
    use std::os::unix::fs::MetadataExt;
    if !config.encrypted_names() {
        return Ok(Sealing::NotApplicable);
    }
    let meta = Dir::open_root(backing)
        .and_then(|root| root.metadata())
        .map_err(|source| VolumeError::Backing {
            path: backing.to_path_buf(),
            source,
        })?;
    let unsealed = |why: String| VolumeError::Unsealed {
        path: backing.to_path_buf(),
        why,
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(unsealed(format!(
            "it belongs to uid {}, not to uid {me}",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsealed(format!(
            "its mode {mode:04o} lets others write it"
        )));
    }
    if mode & 0o055 != 0 {
        return Ok(Sealing::Readable(mode));
    }
    Ok(Sealing::Sealed)
}

/// Opens the volume in `backing` with the key service its config names.
pub fn open_volume(backing: &Path, secrets: &dyn RootSecretSource) -> Result<Volume, VolumeError> {
    let config = VolumeConfig::load(backing)?;
    let kms = open_key_service(&config.key_service, secrets)?;
    Volume::new(config, kms).map_err(VolumeError::Unusable)
}
