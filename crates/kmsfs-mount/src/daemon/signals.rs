//! Signals a mount daemon answers: SIGINT and SIGTERM unmount (the FUSE
//! session then ends and the daemon exits); SIGUSR1 wakes the rotation task
//! as a `rotate` request on the control socket does (only root or the
//! daemon's own user can signal it; commands use the socket, see `control`).

use std::path::PathBuf;
use std::sync::mpsc::Sender;

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use super::error::DaemonError;
use super::fuse_mount::unmount;

/// Starts the thread that handles the daemon's signals for `mountpoint`;
/// each SIGUSR1 sends one `()` on `wake_rotation`.
pub(crate) fn spawn_signal_handler(
    mountpoint: PathBuf,
    wake_rotation: Sender<()>,
) -> Result<(), DaemonError> {
    std::thread::Builder::new()
        .name("kmsfs-signals".into())
        .spawn(move || handle_signals(&mountpoint, &wake_rotation))
        .map(drop)
        .map_err(DaemonError::Thread)
}

fn handle_signals(mountpoint: &std::path::Path, wake_rotation: &Sender<()>) {
    // As before the split: without handlers the default actions apply (each
    // of these signals ends the process; `kmsfs umount` cleans up).
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGUSR1]) else {
        return;
    };
    for sig in signals.forever() {
        if sig == SIGUSR1 {
            tracing::info!("rotation requested");
            let _ = wake_rotation.send(());
            continue;
        }
        tracing::info!(signal = sig, "unmounting on signal");
        if let Err(e) = unmount(mountpoint) {
            tracing::error!(error = %e, "cannot unmount");
        }
        return;
    }
}
