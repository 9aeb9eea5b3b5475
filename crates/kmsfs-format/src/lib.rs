//! The on-disk format of encrypted files, pure: AEAD suites, the per-file
//! header with its two key slots, every plaintext↔ciphertext offset
//! computation, and (format version 2) the encryption of names, symlink
//! targets and `user.*` extended attributes. No FUSE, no policy; I/O only
//! through the `PositionalIo` trait handed in, so all of it is unit-tested on
//! in-memory buffers.
#![forbid(unsafe_code)]

pub mod cipher;
pub mod content;
pub mod header;
pub mod names;
