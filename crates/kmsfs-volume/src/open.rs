//! Opening an existing volume: its config, then the key service it names.

use std::path::Path;

use crate::config::VolumeConfig;
use crate::error::VolumeError;
use crate::file::Volume;
use crate::key_service::{RootSecretSource, open_key_service};

/// Opens the volume in `backing` with the key service its config names.
pub fn open_volume(backing: &Path, secrets: &dyn RootSecretSource) -> Result<Volume, VolumeError> {
    let config = VolumeConfig::load(backing)?;
    let kms = open_key_service(&config.key_service, secrets)?;
    Volume::new(config, kms).map_err(VolumeError::Unusable)
}
