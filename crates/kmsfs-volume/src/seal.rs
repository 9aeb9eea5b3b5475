//! The backing root belongs to the mount daemon alone. Users reach their
//! files through the mount, where every access is authorized; anyone who
//! can write the backing tree itself could plant entries for the root
//! daemon to trip over, and anyone who can read it sees ciphertext, sizes
//! and the shape of the tree. So a new volume's root is created 0700 and
//! owned by the daemon's user, and a mount refuses a root that other users
//! can write.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::VolumeError;

/// Who else can look into a backing root that passed [`check_sealed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Only its owner (the daemon's user) can enter it.
    Sealed,
    /// Group or others may enter or list it (mode given): they see
    /// ciphertext, sizes and the tree's shape, though they change nothing.
    Traversable(u32),
}

/// Makes `root` (a new, empty backing directory) the daemon's alone: owned
/// by the effective uid and gid, mode 0700.
pub fn seal_new_root(root: &Path) -> Result<(), VolumeError> {
    let io_error = |source| VolumeError::Backing {
        path: root.to_path_buf(),
        source,
    };
    let meta = fs::metadata(root).map_err(io_error)?;
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    if meta.uid() != uid.as_raw() || meta.gid() != gid.as_raw() {
        nix::unistd::chown(root, Some(uid), Some(gid))
            .map_err(|e| io_error(std::io::Error::from(e)))?;
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io_error)
}

/// Refuses a backing root that another user owns or can write; says whether
/// others can still look into it.
pub fn check_sealed(root: &Path) -> Result<Exposure, VolumeError> {
    let meta = fs::metadata(root).map_err(|source| VolumeError::Backing {
        path: root.to_path_buf(),
        source,
    })?;
    exposure(
        root,
        meta.uid(),
        meta.mode(),
        nix::unistd::geteuid().as_raw(),
    )
}

/// The decision of [`check_sealed`], apart from the file system.
fn exposure(root: &Path, owner: u32, mode: u32, daemon: u32) -> Result<Exposure, VolumeError> {
    let mode = mode & 0o7777;
    if owner != daemon {
        return Err(VolumeError::RootNotOurs {
            path: root.to_path_buf(),
            owner,
            daemon,
        });
    }
    if mode & 0o022 != 0 {
        return Err(VolumeError::RootWritableByOthers {
            path: root.to_path_buf(),
            mode,
        });
    }
    if mode & 0o077 != 0 {
        Ok(Exposure::Traversable(mode))
    } else {
        Ok(Exposure::Sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_may_write_the_root() {
        let p = Path::new("/b");
        assert_eq!(exposure(p, 0, 0o40700, 0).unwrap(), Exposure::Sealed);
        assert_eq!(
            exposure(p, 0, 0o755, 0).unwrap(),
            Exposure::Traversable(0o755)
        );
        assert_eq!(
            exposure(p, 0, 0o710, 0).unwrap(),
            Exposure::Traversable(0o710)
        );
        for mode in [0o777, 0o775, 0o757, 0o1777, 0o720] {
            assert!(
                matches!(
                    exposure(p, 0, mode, 0),
                    Err(VolumeError::RootWritableByOthers { mode: m, .. }) if m == mode
                ),
                "{mode:o}"
            );
        }
        assert!(matches!(
            exposure(p, 1000, 0o700, 0),
            Err(VolumeError::RootNotOurs {
                owner: 1000,
                daemon: 0,
                ..
            })
        ));
    }

    #[test]
    fn a_new_root_is_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backing");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_sealed(&root).is_err());
        seal_new_root(&root).unwrap();
        let meta = fs::metadata(&root).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o700);
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(check_sealed(&root).unwrap(), Exposure::Sealed);
    }
}
