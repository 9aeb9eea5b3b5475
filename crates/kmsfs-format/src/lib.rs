//! The on-disk format of encrypted files, pure: AEAD suites, the per-file
//! header with its two key slots, and every plaintext↔ciphertext offset
//! computation. No FUSE, no policy; I/O only through the `PositionalIo`
//! trait handed in, so all of it is unit-tested on in-memory buffers.
#![forbid(unsafe_code)]

pub mod cipher;
pub mod content;
pub mod header;
