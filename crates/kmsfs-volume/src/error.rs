//! The error of the volume-level operations (open, create, re-key): one enum,
//! so front ends decide how each case is shown. Key service errors stay
//! `KmsError` inside it, because callers report those under their AWS
//! exception names; every other case is a sentence about the volume.

use std::path::PathBuf;

use kmsfs_kms::KmsError;

use crate::config::{CONFIG_NAME, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The key service refused or failed (opening it, or a call to it).
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The volume config could not be read, parsed or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config names something this build cannot use (a cipher suite).
    #[error("{0}")]
    Unusable(String),
    /// The backing directory could not be created or listed.
    #[error("{}: {source}", path.display())]
    Backing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is already a kmsfs volume", .0.display())]
    AlreadyAVolume(PathBuf),
    #[error("{} is not empty: a new volume needs an empty backing directory", .0.display())]
    NotEmpty(PathBuf),
    /// Mounting a directory that holds files but no volume config.
    #[error("{} is not a kmsfs volume (no {CONFIG_NAME}) and not empty", .0.display())]
    NotAVolume(PathBuf),
    /// The backing root belongs to someone else: its owner could plant
    /// entries for the daemon, or read what it writes.
    #[error(
        "{} belongs to uid {owner}, not to the mount daemon's user (uid {daemon}): the backing directory must be the daemon's alone (chown it, or initialise a new one)",
        path.display()
    )]
    RootNotOurs {
        path: PathBuf,
        owner: u32,
        daemon: u32,
    },
    /// Other users can write the backing root.
    #[error(
        "{} can be written by other users (mode {mode:o}): the backing directory must be the mount daemon's alone; run `chmod 700 {}` (users reach their files through the mount)",
        path.display(),
        path.display()
    )]
    RootWritableByOthers { path: PathBuf, mode: u32 },
    #[error(
        "this volume's keys are in AWS KMS, but this kmsfs was built without AWS KMS support: rebuild with `cargo build --features aws-kms`"
    )]
    AwsKmsNotBuilt,
}
