//! The kernel side of a mount: mount(2) of /dev/fuse with file system type
//! `fuse.kmsfs` (so `mount` and /proc/mounts name us, and no fusermount is
//! needed as root), unmounting, and the open-file limit a mount needs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;

use super::error::DaemonError;
use super::options::MountOptions;

/// Every open file at the mount holds one backing descriptor: lift the soft
/// limit on open files to the hard limit (often 1,024 → 524,288), or the
/// 1,025th open file would fail with EMFILE.
pub(crate) fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, "cannot raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

/// The FUSE option string of mount(2): the device, the root's mode, who
/// mounted, and permission checks by the kernel.
fn fuse_mount_data(device_fd: i32, uid: u32, gid: u32, allow_other: bool) -> String {
    let mut data =
        format!("fd={device_fd},rootmode=40000,user_id={uid},group_id={gid},default_permissions");
    if allow_other {
        data.push_str(",allow_other");
    }
    data
}

/// Mounts /dev/fuse at `mountpoint` and returns the device descriptor.
pub(crate) fn mount_fuse(
    backing: &Path,
    mountpoint: &Path,
    options: &MountOptions,
) -> Result<OwnedFd, DaemonError> {
    mount_fuse_as(
        backing,
        mountpoint,
        "fuse.kmsfs",
        options.flags,
        options.allow_other,
    )
}

/// Mounts /dev/fuse at `mountpoint` with file system type `fs_type` (so
/// /proc/mounts tells a volume mount from an EBS device's one-file mount),
/// `source` as the mount's source, and returns the device descriptor.
pub(crate) fn mount_fuse_as(
    source: &Path,
    mountpoint: &Path,
    fs_type: &str,
    flags: nix::mount::MsFlags,
    allow_other: bool,
) -> Result<OwnedFd, DaemonError> {
    use nix::fcntl::{OFlag, open};
    let fd = open(
        "/dev/fuse",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(DaemonError::OpenFuseDevice)?;
    let data = fuse_mount_data(
        fd.as_raw_fd(),
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
        allow_other,
    );
    nix::mount::mount(
        Some(source),
        mountpoint,
        Some(fs_type),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| match e {
        nix::Error::EPERM => DaemonError::MountDenied(mountpoint.to_path_buf()),
        source => DaemonError::Mount {
            mountpoint: mountpoint.to_path_buf(),
            source,
        },
    })?;
    Ok(fd)
}

/// Unmounts: a plain unmount first; if busy, a lazy one (the filesystem goes
/// away once the last user lets go); not root, through fusermount3.
pub fn unmount(mountpoint: &Path) -> Result<(), DaemonError> {
    use nix::mount::{MntFlags, umount2};
    let failed = |source| DaemonError::Unmount {
        mountpoint: mountpoint.to_path_buf(),
        source,
    };
    match umount2(mountpoint, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::Error::EBUSY) => umount2(mountpoint, MntFlags::MNT_DETACH).map_err(failed),
        Err(nix::Error::EPERM) => {
            // Not root: let the setuid helper do it.
            let status = Command::new("fusermount3")
                .arg("-u")
                .arg(mountpoint)
                .status()
                .map_err(DaemonError::Fusermount)?;
            if status.success() {
                Ok(())
            } else {
                Err(DaemonError::FusermountFailed(mountpoint.to_path_buf()))
            }
        }
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_data_names_device_owner_and_access() {
        assert_eq!(
            fuse_mount_data(7, 1000, 100, false),
            "fd=7,rootmode=40000,user_id=1000,group_id=100,default_permissions"
        );
        assert_eq!(
            fuse_mount_data(3, 0, 0, true),
            "fd=3,rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other"
        );
    }
}
