//! Finding a volume from a path the user gave: its backing directory, or
//! the mount point of a kmsfs mount, looked up in /proc/self/mounts.

use std::fs;
use std::path::{Path, PathBuf};

use kmsfs_volume::VolumeConfig;

use super::error::DaemonError;

/// The backing directory of `path`: itself if it holds a volume config,
/// else the source of the kmsfs mount at `path`.
pub fn backing_of(path: &Path) -> Result<PathBuf, DaemonError> {
    let path = std::path::absolute(path).map_err(DaemonError::Path)?;
    if VolumeConfig::exists_in(&path) {
        return Ok(path);
    }
    // Without /proc, no path is a mount point: the error says so.
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    kmsfs_mount_source(&mounts, &path).ok_or(DaemonError::NotAVolumeOrMount(path))
}

/// Where the volume in `backing` is mounted, if it is (by the mount table:
/// a check that needs nothing from the daemon or the backing directory).
pub fn mountpoint_of(backing: &Path) -> Option<PathBuf> {
    let backing = std::path::absolute(backing).ok()?;
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    kmsfs_mount_of_source(&mounts, &backing)
}

/// The (source, mount point) of every `fuse.kmsfs` mount in a mount table
/// in the format of /proc/self/mounts, unescaped.
fn kmsfs_mounts(mounts: &str) -> impl Iterator<Item = (PathBuf, PathBuf)> + '_ {
    mounts.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields.len() > 2 && fields[2] == "fuse.kmsfs").then(|| {
            (
                PathBuf::from(unescape(fields[0])),
                PathBuf::from(unescape(fields[1])),
            )
        })
    })
}

/// The mount point of the `fuse.kmsfs` mount of `source`.
fn kmsfs_mount_of_source(mounts: &str, source: &Path) -> Option<PathBuf> {
    kmsfs_mounts(mounts).find_map(|(src, at)| (src == source).then_some(at))
}

/// The source of the `fuse.kmsfs` mount at `mountpoint`.
fn kmsfs_mount_source(mounts: &str, mountpoint: &Path) -> Option<PathBuf> {
    kmsfs_mounts(mounts).find_map(|(src, at)| (at == mountpoint).then_some(src))
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/srv/a.back /mnt/a fuse.kmsfs rw,nosuid,nodev,relatime,user_id=0,group_id=0 0 0
/srv/my\\040data /mnt/my\\040files fuse.kmsfs rw 0 0
/dev/sda1 /mnt/other ext4 rw 0 0
/srv/b.back /mnt/other fuse.sshfs rw 0 0
";

    #[test]
    fn finds_the_mount_of_a_backing_directory() {
        assert_eq!(
            kmsfs_mount_of_source(MOUNTS, Path::new("/srv/my data")),
            Some(PathBuf::from("/mnt/my files"))
        );
        assert_eq!(
            kmsfs_mount_of_source(MOUNTS, Path::new("/srv/b.back")),
            None
        );
        assert_eq!(kmsfs_mount_of_source(MOUNTS, Path::new("/srv")), None);
    }

    #[test]
    fn unescapes_octal_escapes() {
        assert_eq!(unescape("a\\040b\\011c\\012d\\134e"), "a b\tc\nd\\e");
        assert_eq!(unescape("/plain/path"), "/plain/path");
    }

    #[test]
    fn finds_the_source_of_a_kmsfs_mount() {
        assert_eq!(
            kmsfs_mount_source(MOUNTS, Path::new("/mnt/a")),
            Some(PathBuf::from("/srv/a.back"))
        );
        assert_eq!(
            kmsfs_mount_source(MOUNTS, Path::new("/mnt/my files")),
            Some(PathBuf::from("/srv/my data"))
        );
    }

    #[test]
    fn ignores_other_file_systems_and_other_paths() {
        assert_eq!(kmsfs_mount_source(MOUNTS, Path::new("/mnt/other")), None);
        assert_eq!(kmsfs_mount_source(MOUNTS, Path::new("/mnt")), None);
        assert_eq!(kmsfs_mount_source("", Path::new("/mnt/a")), None);
        assert_eq!(kmsfs_mount_source("garbage\n", Path::new("/mnt/a")), None);
    }

    #[test]
    fn a_backing_directory_is_its_own_backing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(VolumeConfig::path_in(dir.path()), "{}").unwrap();
        assert_eq!(backing_of(dir.path()).unwrap(), dir.path());
        let other = tempfile::tempdir().unwrap();
        let err = backing_of(other.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is neither a kmsfs backing directory nor a kmsfs mount point",
                other.path().display()
            )
        );
    }
}
