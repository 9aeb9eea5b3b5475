//! kmsfs: a transparent file-encryption FUSE filesystem with envelope
//! encryption. See ARCHITECTURE.md for the map of the modules.

pub mod kms;
pub mod cli;
pub mod envelope;
pub mod volume;
pub mod sys;
pub mod fs;
