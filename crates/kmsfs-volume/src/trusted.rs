//! Reading the files kmsfs itself trusts — the volume config and the
//! rotation state — so that no other user can steer the daemon through them.
//!
//! The daemon and root's commands act on what these files say (which CMK
//! wraps new files, whether a rotation is done). A file is believed only if
//! nobody but this process's user (or root) could have written it: it is a
//! regular file reached without following a symlink, it belongs to the
//! effective uid or to root, and neither group nor others may write it. A
//! planted symlink, a file another user created in a world-writable v1
//! backing root, or a file left group-writable is refused with a reason,
//! never read. Sizes are capped so a huge file cannot exhaust memory.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use crate::backing::Dir;

/// Why a control file was not believed.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedFile {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it belongs to uid {owner}: only uid {me} or root may own it")]
    Owner { owner: u32, me: u32 },
    #[error("its mode {mode:04o} lets group or others write it")]
    Writable { mode: u32 },
    #[error("it is {len} bytes, more than the {limit} a kmsfs control file may be")]
    TooLarge { len: u64, limit: u64 },
}

impl UntrustedFile {
    /// The error as an `io::Error` (for callers whose error type is I/O).
    pub fn into_io(self) -> std::io::Error {
        match self {
            UntrustedFile::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::PermissionDenied, other.to_string()),
        }
    }

    /// Whether the file simply is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, UntrustedFile::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Whether a file with `meta` could only have been written by this process's
/// user or root.
pub fn check_owner_and_mode(meta: &std::fs::Metadata) -> Result<(), UntrustedFile> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(UntrustedFile::Owner {
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(UntrustedFile::Writable { mode });
    }
    Ok(())
}

/// The contents of the regular file `name` in `dir`, if it can be trusted
/// (see the module docs) and holds at most `limit` bytes.
pub fn read_trusted(dir: &Dir, name: &OsStr, limit: u64) -> Result<Vec<u8>, UntrustedFile> {
    // open_file refuses symlinks, FIFOs and devices before opening for I/O.
    let file = dir.open_file(name, false)?;
    let meta = file.metadata()?;
    check_owner_and_mode(&meta)?;
    if meta.len() > limit {
        return Err(UntrustedFile::TooLarge {
            len: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The file may grow after the fstat: read at most one byte past the cap
    // to notice.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(UntrustedFile::TooLarge {
            len: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn believes_only_files_only_we_could_write() {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        let path = dir.path().join("state");
        std::fs::write(&path, b"{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_trusted(&root, OsStr::new("state"), 16).unwrap(), b"{}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            read_trusted(&root, OsStr::new("state"), 16),
            Err(UntrustedFile::Writable { mode: 0o666 })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(matches!(
            read_trusted(&root, OsStr::new("state"), 16),
            Err(UntrustedFile::Writable { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, [b'x'; 17]).unwrap();
        assert!(matches!(
            read_trusted(&root, OsStr::new("state"), 16),
            Err(UntrustedFile::TooLarge { len: 17, limit: 16 })
        ));

        // A symlink to a file we trust is still refused: it is not read.
        std::fs::write(&path, b"{}").unwrap();
        std::os::unix::fs::symlink(&path, dir.path().join("link")).unwrap();
        assert!(read_trusted(&root, OsStr::new("link"), 16).is_err());
        assert!(
            read_trusted(&root, OsStr::new("missing"), 16)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn a_file_of_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return; // chown needs root; CI runs as root.
        }
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        let path = dir.path().join("state");
        std::fs::write(&path, b"{}").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        assert!(matches!(
            read_trusted(&root, OsStr::new("state"), 16),
            Err(UntrustedFile::Owner { owner: 65534, .. })
        ));
    }
}
