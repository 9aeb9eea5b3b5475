//! The error of the mount daemon and of talking to it. Each variant's text
//! is the line the command line prints; option errors and key service
//! errors are kept apart because they are reported differently (a usage
//! error; an AWS exception name).

use std::path::PathBuf;
use std::process::ExitStatus;

use kmsfs_kms::KmsError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A mount option that is unknown or has a bad value.
    #[error("{0}")]
    BadOption(String),
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error("mount point {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{0}")]
    Path(std::io::Error),
    #[error("{} is neither a kmsfs backing directory nor a kmsfs mount point", .0.display())]
    NotAVolumeOrMount(PathBuf),

    // Starting in the background.
    #[error("{0}")]
    ReadyPipe(nix::Error),
    #[error("{0}")]
    CurrentExe(std::io::Error),
    #[error("{}: {source}", path.display())]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Spawn(std::io::Error),
    #[error("{0}")]
    Wait(std::io::Error),
    #[error("the mount daemon failed ({status}){}", match log_file {
        Some(p) => format!("; see {}", p.display()),
        None => "; run with --foreground to see why".into(),
    })]
    DaemonFailed {
        status: ExitStatus,
        log_file: Option<PathBuf>,
    },

    // Mounting and serving.
    #[error("cannot open /dev/fuse: {0}")]
    OpenFuseDevice(nix::Error),
    #[error("cannot mount {}: permission denied (mounting needs root)", .0.display())]
    MountDenied(PathBuf),
    #[error("cannot mount {}: {source}", mountpoint.display())]
    Mount {
        mountpoint: PathBuf,
        source: nix::Error,
    },
    /// The backing root cannot be read to set up the filesystem.
    #[error("{0}")]
    Backing(std::io::Error),
    #[error("FUSE handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("{0}")]
    Thread(std::io::Error),
    #[error("FUSE session failed: {0}")]
    Session(std::io::Error),

    // Unmounting.
    #[error("cannot unmount {}: {source}", mountpoint.display())]
    Unmount {
        mountpoint: PathBuf,
        source: nix::Error,
    },
    #[error("cannot run fusermount3: {0}")]
    Fusermount(std::io::Error),
    #[error("fusermount3 -u {} failed", .0.display())]
    FusermountFailed(PathBuf),

    // The control channel.
    #[error("the mount daemon (pid {pid}) did not take the request: {why}")]
    Control { pid: i32, why: String },
}
