//! A volume: a backing directory of encrypted files, its config, and the
//! operations on it that every front end shares (the FUSE adapter, the
//! command line): opening it with its key service, creating, re-keying,
//! rotating, re-encrypting and checking it.

pub mod backing;
pub mod config;
pub mod create;
mod error;
mod file;
pub mod fsck;
pub mod key_service;
pub mod names;
mod open;
pub mod reencrypt;
pub mod rekey;
pub mod rotate;
mod throttle;
pub mod trusted;

pub use config::VolumeConfig;
pub use error::VolumeError;
pub use file::{FileError, FileKey, Volume};
pub use key_service::RootSecretSource;
pub use open::{Sealing, check_sealed, open_volume};
