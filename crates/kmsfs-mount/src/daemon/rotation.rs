//! The mount daemon's background task: re-wraps every file's header
//! whenever the volume's CMK has a new version or the volume was re-keyed;
//! checks every interval, or at once when a command asks (see `control`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use kmsfs_kms::Caller;
use kmsfs_volume::rotate::{Target, current_target, rotate_volume};
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
    // What this daemon has itself seen finished. The state file is never
    // believed for this: a fresh daemon re-scans every header once (cheap:
    // files already at the target are only read), then again whenever the
    // target moves or it is asked to.
    let mut finished: Option<Target> = None;
    let mut asked = false;
    loop {
        if asked {
            // A command asked (over the control socket, or SIGUSR1 from
            // root): the volume may have been re-keyed with `set-key`. The
            // config is re-read only now, and only if nobody but its owner
            // could have written it (`VolumeConfig::load` checks).
            match VolumeConfig::load(backing) {
                Ok(config) if config.key_id != volume.key_id() => {
                    tracing::info!(key_id = %config.key_id, "volume re-keyed: new files use the new CMK");
                    volume.set_key_id(&config.key_id);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot re-read the volume config; keeping the CMK")
                }
            }
        }
        match current_target(volume, &caller) {
            Ok(target) if asked || finished.as_ref() != Some(&target) => {
                tracing::info!(key_id = %target.key_id, version = target.version, "re-wrapping headers");
                let done = rotate_volume(backing, volume, &caller, &target, schedule.rate, &mut ());
                tracing::info!(
                    files = done.total,
                    rewrapped = done.rewrapped,
                    failed = done.failed(),
                    "re-wrap complete"
                );
                // Files that failed are retried when asked or when the
                // target moves, as with `kmsfs rotate`.
                finished = Some(target);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check the volume's CMK for rotation"),
        }
        asked = match wake.recv_timeout(schedule.interval) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => return,
        };
    }
}
