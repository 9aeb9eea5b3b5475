//! The mount daemon's background task: re-wraps every file's header
//! whenever the volume's CMK has a new version or the volume was re-keyed;
//! checks every interval, or at once when woken (see `control`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use kmsfs_kms::Caller;
use kmsfs_volume::rotate::{RotationState, current_target, rotate_volume};
use kmsfs_volume::{Volume, VolumeConfig};

use super::error::DaemonError;

/// How the rotation task runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RotationSchedule {
    /// Files per second (None: unthrottled).
    pub(crate) rate: Option<f64>,
    /// How often to check the CMK for a new version.
    pub(crate) interval: Duration,
}

/// Starts the rotation task; it ends when `wake` is disconnected.
pub(crate) fn spawn_rotation_task(
    backing: PathBuf,
    volume: Arc<Volume>,
    schedule: RotationSchedule,
    wake: Receiver<()>,
) -> Result<(), DaemonError> {
    std::thread::Builder::new()
        .name("kmsfs-rotation".into())
        .spawn(move || rotation_task(&backing, &volume, schedule, &wake))
        .map(drop)
        .map_err(DaemonError::Thread)
}

fn rotation_task(
    backing: &std::path::Path,
    volume: &Volume,
    schedule: RotationSchedule,
    wake: &Receiver<()>,
) {
    let caller = Caller::current();
    loop {
        if let Ok(config) = VolumeConfig::load(backing)
            && config.key_id != volume.key_id()
        {
            tracing::info!(key_id = %config.key_id, "volume re-keyed: new files use the new CMK");
            volume.set_key_id(&config.key_id);
        }
        match current_target(volume, &caller) {
            Ok(target) => {
                let state = RotationState::load(backing);
                if state.target.as_ref() != Some(&target) || state.status != "complete" {
                    tracing::info!(key_id = %target.key_id, version = target.version, "re-wrapping headers");
                    let done =
                        rotate_volume(backing, volume, &caller, &target, schedule.rate, &mut ());
                    tracing::info!(
                        files = done.total,
                        rewrapped = done.rewrapped,
                        failed = done.failures.len(),
                        "re-wrap complete"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the volume's CMK for rotation"),
        }
        match wake.recv_timeout(schedule.interval) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
