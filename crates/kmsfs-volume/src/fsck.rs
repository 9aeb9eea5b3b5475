//! The fsck engine: reads every header and every block of every regular
//! file, and says which files are damaged and how. Read-only, and through
//! the backing layer like everything else (fsck runs as root over a tree
//! whose entries it must not follow elsewhere).

use std::path::{Path, PathBuf};

use kmsfs_format::content::BLOCK_SIZE;
use kmsfs_kms::Caller;

use crate::backing::Dir;
use crate::file::{FileError, Volume};
use crate::rotate::list_relative;

/// One problem fsck found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    pub what: String,
}

/// What a check of a whole volume found.
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Regular files checked.
    pub checked: usize,
    /// The damaged ones, sorted by path.
    pub damaged: Vec<Damage>,
    /// Directories whose names were checked (format version 2).
    pub directories: usize,
    /// Entries of the tree that are not what kmsfs writes there: names that
    /// do not decrypt, a missing directory id, long names without their
    /// side file and side files without their entry (version 2), sorted.
    pub bad_names: Vec<Damage>,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.bad_names.is_empty()
    }
}

/// Every directory of the tree (its stored relative path), walked through
/// descriptors without following symlinks.
fn directories(root: &Dir) -> Vec<(PathBuf, Dir)> {
    let mut out = Vec::new();
    let Ok(top) = root.duplicate() else {
        return out;
    };
    let mut stack = vec![(PathBuf::new(), top)];
    while let Some((rel, dir)) = stack.pop() {
        if let Ok(entries) = dir.entries() {
            for entry in entries {
                let is_dir = match entry.kind {
                    crate::backing::EntryKind::Dir => true,
                    crate::backing::EntryKind::Unknown => dir
                        .open_node(&entry.name)
                        .is_ok_and(|n| n.opened_metadata().is_dir()),
                    _ => false,
                };
                if is_dir && let Ok(sub) = dir.open_dir(&entry.name) {
                    stack.push((rel.join(&entry.name), sub));
                }
            }
        }
        out.push((rel, dir));
    }
    out
}

/// Checks every header and every block of every regular file in `backing`.
pub fn check_volume(backing: &Path, volume: &Volume) -> std::io::Result<FsckReport> {
    let caller = Caller::current();
    let root = volume.config.open_tree(backing)?;
    let tree_path = volume.config.tree_path(backing);
    let files = list_relative(&root, volume.config.encrypted_names());
    let mut damaged: Vec<Damage> = files
        .iter()
        .filter_map(|rel| {
            check_file(volume, &caller, &root, rel)
                .err()
                .map(|what| Damage {
                    path: tree_path.join(rel),
                    what,
                })
        })
        .collect();
    damaged.sort_by(|a, b| a.path.cmp(&b.path));
    let mut report = FsckReport {
        checked: files.len(),
        damaged,
        ..FsckReport::default()
    };
    if volume.config.encrypted_names() {
        let names = volume
            .names()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        for (rel, dir) in directories(&root) {
            report.directories += 1;
            for (entry, what) in names.check_dir(&dir) {
                report.bad_names.push(Damage {
                    path: tree_path.join(&rel).join(entry),
                    what,
                });
            }
        }
        report.bad_names.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(report)
}

/// Reads one file through; the error says what is wrong with it.
fn check_file(volume: &Volume, caller: &Caller, root: &Dir, rel: &Path) -> Result<(), String> {
    let (_dir, file) = root
        .open_file_below(rel, false)
        .map_err(|e| format!("cannot open: {e}"))?;
    let key = match volume.open_key(caller, &file, false) {
        Ok(Some(k)) => k,
        Ok(None) => return Ok(()),
        Err(e @ FileError::Denied(_)) => return Err(format!("key not usable: {e}")),
        Err(e) => return Err(e.to_string()),
    };
    let content = volume.content(&key);
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    // The file's own layout: its header says which format version it is.
    let size = content
        .layout
        .plain_size(len)
        .map_err(|e| format!("torn end of file: {e}"))?;
    let chunk = 256 * BLOCK_SIZE as u64;
    let mut offset = 0;
    // At least one read: for a v2 file even an empty one has a final block
    // to authenticate (a v1 empty file reads nothing).
    loop {
        content
            .read(&file, offset, chunk as usize)
            .map_err(|e| e.to_string())?;
        offset += chunk;
        if offset >= size {
            break;
        }
    }
    Ok(())
}
