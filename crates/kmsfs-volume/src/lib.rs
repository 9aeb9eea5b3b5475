//! A volume: a backing directory of encrypted files, its config, and the
//! operations on one encrypted file that every front end shares (the FUSE
//! adapter, fsck, rotation).

pub mod backing;
pub mod config;
pub mod file;
pub mod reencrypt;
pub mod rotate;

pub use config::VolumeConfig;
pub use file::{FileError, FileKey, Volume};
