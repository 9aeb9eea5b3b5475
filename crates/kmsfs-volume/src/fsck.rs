//! The fsck engine: reads every header and every block of every regular
//! file, and says which files are damaged and how. Read-only.

use std::fs;
use std::path::{Path, PathBuf};

use kmsfs_format::content::BLOCK_SIZE;
use kmsfs_kms::Caller;

use crate::file::{FileError, Volume};
use crate::rotate::list_files;

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
}

/// Checks every header and every block of every regular file in `backing`.
pub fn check_volume(backing: &Path, volume: &Volume) -> FsckReport {
    let caller = Caller::current();
    let files = list_files(backing);
    let mut damaged: Vec<Damage> = files
        .iter()
        .filter_map(|path| {
            check_file(volume, &caller, path).err().map(|what| Damage {
                path: path.clone(),
                what,
            })
        })
        .collect();
    damaged.sort_by(|a, b| a.path.cmp(&b.path));
    FsckReport {
        checked: files.len(),
        damaged,
    }
}

/// Reads one file through; the error says what is wrong with it.
fn check_file(volume: &Volume, caller: &Caller, path: &Path) -> Result<(), String> {
    let file = fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let key = match volume.open_key(caller, &file, false) {
        Ok(Some(k)) => k,
        Ok(None) => return Ok(()),
        Err(e @ FileError::Denied(_)) => return Err(format!("key not usable: {e}")),
        Err(e) => return Err(e.to_string()),
    };
    let content = volume.content(&key);
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let size = volume
        .layout
        .plain_size(len)
        .map_err(|e| format!("torn end of file: {e}"))?;
    let chunk = 256 * BLOCK_SIZE as u64;
    let mut offset = 0;
    while offset < size {
        content
            .read(&file, offset, chunk as usize)
            .map_err(|e| e.to_string())?;
        offset += chunk;
    }
    Ok(())
}
