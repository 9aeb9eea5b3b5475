//! Mounting a volume: the FUSE adapter (`fs`, thin: kernel requests onto the
//! volume layer) and the mount daemon around it (`daemon`); EBS volumes as
//! block devices (`disk`).

pub mod daemon;
pub mod disk;
pub(crate) mod fs;
