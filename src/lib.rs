//! kmsfs: a transparent file-encryption FUSE filesystem with envelope
//! encryption. See ARCHITECTURE.md for the map of the modules.

pub mod cli;
pub mod envelope;
pub mod fs;
pub mod kms;
pub mod sys;
pub mod volume;
