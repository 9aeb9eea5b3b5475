//! Mounting a volume: the FUSE adapter (`fs`, thin: kernel requests onto the
//! volume layer) and, in later steps, the mount daemon around it.

pub mod fs;
