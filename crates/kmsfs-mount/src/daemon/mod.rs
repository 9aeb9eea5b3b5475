//! The mount daemon: everything between "mount this volume here" and the
//! FUSE session ending. One file per concern, so each can change (and be
//! tested) alone: option parsing, going to the background, mount(2),
//! readiness notification, signals, the control channel commands use to
//! reach the daemon, finding mounts, and the rotation task.
//!
//! The order of a mount: check the mount point and the options, open the
//! volume (the caller does, it owns the key store prompt), [`run`] it:
//! refuse a CMK that does not exist, go to the background unless asked not
//! to, then serve — mount, announce, run the session, withdraw.

pub(crate) mod control;
mod daemonize;
mod error;
pub(crate) mod fuse_mount;
mod mounts;
mod notify;
mod options;
mod rotation;
mod signals;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kmsfs_kms::{Caller, KmsError};
use kmsfs_volume::Volume;

pub use control::{RUNTIME_DIR_ENV, RunningDaemon, runtime_dir};
pub use error::DaemonError;
pub use fuse_mount::unmount;
pub use mounts::{backing_of, mountpoint_of};
pub use notify::sd_notify;
pub use options::MountOptions;

use crate::fs::KmsFs;
use control::ControlEndpoint;
use rotation::{RotationSchedule, spawn_rotation_task};

/// What to mount where, and how.
#[derive(Debug, Clone)]
pub struct Mount {
    /// The backing directory (absolute).
    pub backing: PathBuf,
    /// The mount point (absolute).
    pub mountpoint: PathBuf,
    pub options: MountOptions,
    /// FUSE worker threads (at least one is used).
    pub threads: usize,
}

/// Whether the mount command stays in the foreground.
#[derive(Debug, Clone)]
pub enum Launch {
    /// Serve in this process (systemd; `--foreground`).
    Foreground,
    /// Serve in a detached child writing its log to `log_file` (or
    /// nowhere); return once it is mounted.
    Background { log_file: Option<PathBuf> },
}

/// Refuses a mount point that is not a directory.
pub fn check_mountpoint(mountpoint: &Path) -> Result<(), DaemonError> {
    if mountpoint.is_dir() {
        Ok(())
    } else {
        Err(DaemonError::NotADirectory(mountpoint.to_path_buf()))
    }
}

/// Mounts `volume` as `mount` says: in the background (returning once the
/// filesystem answers) or in the foreground (returning once it is unmounted).
pub fn run(mount: Mount, volume: Volume, launch: Launch) -> Result<(), DaemonError> {
    // Refuse early when the volume's CMK does not exist at all; a disabled key
    // still mounts (files then fail to open with EACCES until it is enabled).
    if let Err(e @ KmsError::NotFound(_)) = volume
        .kms
        .describe_key(&Caller::current(), &volume.config.key_id)
    {
        return Err(e.into());
    }
    match launch {
        // The background child runs this same command again: it serves.
        Launch::Background { log_file } if !daemonize::is_background_child() => {
            daemonize::run_in_background(log_file.as_deref())
        }
        _ => serve(mount, Arc::new(volume)),
    }
}

/// Mounts and runs the FUSE session in this process until it is unmounted.
fn serve(mount: Mount, volume: Arc<Volume>) -> Result<(), DaemonError> {
    let Mount {
        backing,
        mountpoint,
        options,
        threads,
    } = mount;
    // A known umask for everything the daemon creates for itself (the
    // rotation state, the control socket's directory; each also gets an
    // explicit mode). Files created for callers get exactly the mode the
    // request asked for (it carries the caller's umask): the adapter adds
    // back what this umask took (see `fs::DAEMON_UMASK`).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        crate::fs::DAEMON_UMASK,
    ));
    fuse_mount::raise_open_file_limit();
    let fs = KmsFs::new(
        backing.clone(),
        volume.clone(),
        options.read_only,
        options.tuning,
    )
    .map_err(DaemonError::Backing)?;
    let acl = if options.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    let mut config = fuser::Config::default();
    config.acl = acl;
    config.n_threads = Some(threads.max(1));
    config.clone_fd = true;
    let notifier = fs.notifier_slot();
    let fd = fuse_mount::mount_fuse(&backing, &mountpoint, &options)?;
    let session = match fuser::Session::from_fd(fs, fd, acl, config) {
        Ok(s) => s,
        Err(e) => {
            let _ = unmount(&mountpoint);
            return Err(DaemonError::Handshake(e));
        }
    };
    // Before any request is served: `run` below starts the workers.
    let _ = notifier.set(session.notifier());
    tracing::info!(backing = %backing.display(), mountpoint = %mountpoint.display(), "mounted");
    let (wake, woken) = std::sync::mpsc::channel();
    signals::spawn_signal_handler(mountpoint.clone(), wake.clone())?;
    let mut control = None;
    if !options.read_only {
        let info = control::DaemonInfo {
            volume_id: volume.config.volume_id.clone(),
            backing: backing.clone(),
            mountpoint: mountpoint.clone(),
        };
        match ControlEndpoint::publish(&backing, info, wake) {
            Ok(endpoint) => control = Some(endpoint),
            Err(e) => tracing::warn!(
                error = %e,
                "cannot open the control socket; `kmsfs rotate` will not find this daemon"
            ),
        }
        let schedule = RotationSchedule {
            rate: options.rotate_rate,
            interval: options.rotate_interval,
        };
        spawn_rotation_task(backing, volume, schedule, woken)?;
    }
    notify::notify_ready();
    let outcome = session.run();
    drop(control);
    sd_notify("STOPPING=1");
    tracing::info!(mountpoint = %mountpoint.display(), "unmounted");
    outcome.map_err(DaemonError::Session)
}
