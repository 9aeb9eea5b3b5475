//! What attaching a volume needs from the host: a block device that serves
//! an image. The engine decides *whether* a volume may be attached (state,
//! key, policy) and unwraps its data key; an implementation of
//! [`BlockDevices`] makes the device exist. The real one (kmsfs-mount's
//! `disk` module) serves the image through a one-file FUSE mount under a
//! loop device; the trait keeps this crate free of FUSE and of root.

use std::fs::File;

use kmsfs_format::cipher::DataKey;

use super::error::Result;

/// An image to expose as a block device.
pub struct AttachRequest {
    pub volume_id: String,
    /// The image, opened read-write by the engine (inside the pool, without
    /// following symlinks); the device serves this descriptor, never a path.
    pub image: File,
    /// The volume's size in bytes (a multiple of 4 KiB); the image's length
    /// has been checked against it.
    pub size_bytes: u64,
    /// The plaintext data key and the image's file id, for an encrypted
    /// image; `None` serves the image's bytes as they are.
    pub sealed: Option<(DataKey, [u8; 16])>,
}

/// Where an attached volume is on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// The block device (`/dev/loop3`).
    pub block_device: String,
    /// The stable name, `/dev/disk/by-id/kmsfs-<volume-id>`, a symlink to
    /// `block_device`.
    pub by_id: String,
}

/// Holds writes to an attached volume while it lives: made by
/// [`BlockDevices::freeze`], writes resume when it is dropped.
pub trait Frozen: Send {}

pub trait BlockDevices: Send + Sync {
    /// Exposes the image as a block device and returns once the device is
    /// usable. The plaintext key lives on only in the process serving it.
    fn attach(&self, request: AttachRequest) -> Result<HostDevice>;

    /// Removes the block device of `volume_id` and stops serving it; with
    /// `force`, even while the device is open (mounted).
    fn detach(&self, volume_id: &str, force: bool) -> Result<()>;

    /// The device of `volume_id` if it is being served now.
    fn attached(&self, volume_id: &str) -> Option<HostDevice>;

    /// Holds every write to the attached volume and makes every write
    /// already acknowledged durable in the image, so that a copy of the
    /// image taken while the guard lives is a crash-consistent snapshot.
    fn freeze(&self, volume_id: &str) -> Result<Box<dyn Frozen>>;
}
