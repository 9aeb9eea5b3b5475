//! Mounting a volume: the FUSE adapter (`fs`, thin: kernel requests onto the
//! volume layer) and the mount daemon around it (`daemon`).

pub mod daemon;
pub(crate) mod fs;
