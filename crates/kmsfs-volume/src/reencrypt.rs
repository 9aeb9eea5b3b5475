//! Replacing a file's data key itself (for a suspected data-key leak): the
//! contents are decrypted with the old key and sealed again under a new data
//! key, in a temporary file beside the original that is renamed over it
//! once complete and fsynced. A crash leaves the original or the new file,
//! never a mix. Unlike re-wrapping, this rewrites every block.
//!
//! Every file and directory is reached through `backing` (descriptors and
//! single names): the temporary file is created with O_EXCL|O_NOFOLLOW in
//! the directory the original was opened in, so a symlink planted in the
//! tree is never followed.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::backing::Dir;
use super::config::HEADER_XATTR;
use super::file::{FileError, Volume};
use super::rotate::{Observer, Outcome, list_relative};
use kmsfs_kms::Caller;

/// Plaintext bytes copied per step.
const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReencryptError {
    #[error("{0}")]
    File(#[from] FileError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("has {0} hard links: re-encrypting would split them; skipped")]
    HardLinked(u64),
}

fn temp_name(name: &OsStr) -> OsString {
    let mut tmp = OsString::from(".kmsfs-reencrypt.");
    tmp.push(name);
    tmp
}

/// What re-encrypting a volume (or some of its files) did.
#[derive(Debug, Default)]
pub struct ReencryptReport {
    /// Files attempted.
    pub files: usize,
    /// Plaintext bytes copied under new data keys.
    pub bytes: u64,
    /// Files left as they were, relative to the backing root, and why.
    pub failures: Vec<(PathBuf, String)>,
}

/// Re-encrypts `only` (paths relative to `backing`), or every file when
/// `only` is empty, each under a fresh data key; `observer` sees each file.
/// A file that cannot be re-encrypted is left as it was and reported.
pub fn reencrypt_volume(
    backing: &Path,
    volume: &Volume,
    caller: &Caller,
    only: &[PathBuf],
    observer: &mut dyn Observer,
) -> std::io::Result<ReencryptReport> {
    let root = volume.config.open_tree(backing)?;
    let files = if only.is_empty() {
        list_relative(&root, volume.config.encrypted_names())
    } else {
        // The user names files as the mount shows them.
        let names = volume
            .names()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        only.iter()
            .map(|rel| names.stored_path(&root, rel))
            .collect::<std::io::Result<Vec<_>>>()?
    };
    observer.start(files.len() as u64);
    let mut report = ReencryptReport {
        files: files.len(),
        ..ReencryptReport::default()
    };
    for rel in &files {
        let outcome = reencrypt_below(volume, caller, &root, rel);
        match &outcome {
            Ok(n) => report.bytes += n,
            Err(e) => report.failures.push((rel.clone(), e.to_string())),
        }
        let seen = outcome.map(|_| Outcome::Rewrapped).map_err(|e| match e {
            ReencryptError::File(f) => f,
            other => FileError::Io(std::io::Error::other(other.to_string())),
        });
        observer.file_done(&volume.config.tree_path(backing).join(rel), &seen);
    }
    Ok(report)
}

/// Re-encrypts the file `rel` below `root` under a fresh data key. Returns
/// the bytes copied.
pub fn reencrypt_below(
    volume: &Volume,
    caller: &Caller,
    root: &Dir,
    rel: &Path,
) -> Result<u64, ReencryptError> {
    let name = rel
        .file_name()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let (dir, old) = root.open_file_below(rel, false)?;
    let meta = old.metadata()?;
    if meta.nlink() > 1 {
        return Err(ReencryptError::HardLinked(meta.nlink()));
    }
    let Some(old_key) = volume.open_key(caller, &old, false)? else {
        return Ok(0); // no header, no content: nothing to re-encrypt
    };
    let old_content = volume.content(&old_key);
    let size = old_content
        .layout
        .plain_size(meta.len())
        .map_err(FileError::Content)?;

    let tmp = temp_name(name);
    let new = dir.create_file(&tmp, meta.mode() & 0o7777)?;
    let result = (|| {
        let new_key = volume.create_key(caller, &new)?;
        let new_content = volume.content(&new_key);
        let mut offset = 0u64;
        while offset < size {
            let chunk = old_content
                .read(&old, offset, CHUNK)
                .map_err(FileError::Content)?;
            // All-zero chunks stay holes (the final truncate sets the size).
            if chunk.iter().any(|b| *b != 0) {
                new_content
                    .write(&new, offset, &chunk)
                    .map_err(FileError::Content)?;
            }
            offset += chunk.len() as u64;
        }
        new_content
            .truncate(&new, size)
            .map_err(FileError::Content)?;
        copy_metadata(&old, &meta, &new)?;
        new.sync_all()?;
        dir.rename(&tmp, &dir, name, nix::fcntl::RenameFlags::empty())?;
        dir.sync()?;
        Ok::<_, ReencryptError>(size)
    })();
    if result.is_err() {
        let _ = dir.unlink(&tmp);
    }
    result
}

/// Owner, mode, user xattrs and times of the original, onto the new file.
fn copy_metadata(old: &File, meta: &Metadata, new: &File) -> Result<(), ReencryptError> {
    nix::unistd::fchown(
        new.as_fd(),
        Some(nix::unistd::Uid::from_raw(meta.uid())),
        Some(nix::unistd::Gid::from_raw(meta.gid())),
    )
    .map_err(std::io::Error::from)?;
    nix::sys::stat::fchmod(
        new.as_fd(),
        nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o7777),
    )
    .map_err(std::io::Error::from)?;
    if let Ok(names) = kmsfs_sys::flistxattr(old.as_fd()) {
        for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            if OsStr::from_bytes(name.as_bytes()) == HEADER_XATTR {
                continue;
            }
            if let Ok(value) = kmsfs_sys::fgetxattr(old.as_fd(), name) {
                kmsfs_sys::fsetxattr(new.as_fd(), name, &value, 0)?;
            }
        }
    }
    let times = [
        nix::sys::time::TimeSpec::new(meta.atime(), meta.atime_nsec()),
        nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec()),
    ];
    nix::sys::stat::futimens(new.as_fd(), &times[0], &times[1]).map_err(std::io::Error::from)?;
    Ok(())
}
