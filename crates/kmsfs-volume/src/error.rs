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
    /// The volume's config names an embedded key store that is not there.
    #[error(
        "key store not found at {} (the volume's config names it; is its disk mounted?)",
        .0.display()
    )]
    KeyStoreMissing(PathBuf),
    #[error(
        "this volume's keys are in AWS KMS, but this kmsfs was built without AWS KMS support: rebuild with `cargo build --features aws-kms`"
    )]
    AwsKmsNotBuilt,
    /// A version 2 backing root that another user owns or can write: they
    /// could replace the tree under the daemon.
    #[error(
        "{}: {why}; a kmsfs backing directory must belong to the mount's user and be writable by nobody else (chown it and chmod 700)",
        path.display()
    )]
    Unsealed { path: PathBuf, why: String },
    /// The name key, a damaged file, or the tree's own structure.
    #[error(transparent)]
    File(#[from] crate::file::FileError),
}
