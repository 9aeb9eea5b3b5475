//! Replacing a file's data key itself (for a suspected data-key leak): the
//! contents are decrypted with the old key and sealed again under a new data
//! key, in a temporary file beside the original that is renamed over it
//! once complete and fsynced. A crash leaves the original or the new file,
//! never a mix. Unlike re-wrapping, this rewrites every block.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::config::HEADER_XATTR;
use super::file::{FileError, Volume};
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

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".kmsfs-reencrypt.{name}"))
}

/// Re-encrypts one file under a fresh data key. Returns the bytes copied.
pub fn reencrypt_file(
    volume: &Volume,
    caller: &Caller,
    path: &Path,
) -> Result<u64, ReencryptError> {
    let meta = fs::symlink_metadata(path)?;
    if meta.nlink() > 1 {
        return Err(ReencryptError::HardLinked(meta.nlink()));
    }
    let old = File::open(path)?;
    let Some(old_key) = volume.open_key(caller, &old, false)? else {
        return Ok(0); // no header, no content: nothing to re-encrypt
    };
    let old_content = volume.content(&old_key);
    let size = volume
        .layout
        .plain_size(meta.len())
        .map_err(FileError::Content)?;

    let tmp = temp_path(path);
    let new = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(&tmp)?;
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
        copy_metadata(path, &meta, &new)?;
        new.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok::<_, ReencryptError>(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Owner, mode, user xattrs and times of the original, onto the new file.
fn copy_metadata(path: &Path, meta: &fs::Metadata, new: &File) -> Result<(), ReencryptError> {
    use std::os::fd::AsFd;
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
    if let Ok(names) = kmsfs_sys::llistxattr(path) {
        for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = std::ffi::OsStr::new(std::str::from_utf8(name).unwrap_or_default());
            if name.is_empty() || name == HEADER_XATTR {
                continue;
            }
            if let Ok(value) = kmsfs_sys::lgetxattr(path, name) {
                kmsfs_sys::lsetxattr(&temp_path(path), name, &value, 0)?;
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
