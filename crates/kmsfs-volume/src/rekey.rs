//! Re-keying: pointing a volume at another CMK. New files use it at once;
//! existing ones move on the next rotation (`rotate`).

use std::path::Path;

use kmsfs_kms::{Caller, KeyState, KmsError};

use crate::config::VolumeConfig;
use crate::error::VolumeError;
use crate::key_service::RootSecretSource;
use crate::open::open_volume;

/// Points the volume in `backing` at `key_id`, refusing a CMK that is not
/// usable now. Returns the CMK's ARN.
pub fn set_volume_key(
    backing: &Path,
    key_id: &str,
    secrets: &dyn RootSecretSource,
) -> Result<String, VolumeError> {
    let volume = open_volume(backing, secrets)?;
    let d = volume.kms.describe_key(&Caller::current(), key_id)?;
    match d.state {
        KeyState::Enabled => {}
        KeyState::Disabled => {
            return Err(KmsError::Disabled(format!(
                "{} is disabled: refusing to re-key the volume to it",
                d.key_arn
            ))
            .into());
        }
        other => {
            return Err(KmsError::InvalidState(format!(
                "{} is {}: refusing to re-key the volume to it",
                d.key_arn,
                other.as_str()
            ))
            .into());
        }
    }
    let mut config = VolumeConfig::load(backing)?;
    config.key_id = d.key_arn.clone();
    config.save(backing)?;
    Ok(d.key_arn)
}
