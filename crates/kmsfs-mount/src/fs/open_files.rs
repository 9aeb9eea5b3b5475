//! The open-file table: one entry per open inode (shared by all its file
//! handles and hard links), holding the backing file descriptor and the
//! unwrapped data key while at least one handle is open. The key is dropped
//! — and zeroized — when the last handle closes.
//!
//! Locking: `OpenFile::key` is the per-file content lock. Reads hold it
//! shared; writes, truncates and key creation hold it exclusively, because a
//! partial-block write is a read-modify-write of whole blocks.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kmsfs_volume::FileKey;

pub(crate) struct OpenFile {
    pub ino: u64,
    pub file: File,
    /// None while the file has no header yet (an empty file created outside
    /// the mount, or left by a crash between create and header write).
    pub key: RwLock<Option<FileKey>>,
    /// The modification time the kernel shows, for the writeback cache
    /// (see [`KernelMtime`]).
    pub mtime: Mutex<KernelMtime>,
    /// A write was refused since the last flush (ENOSPC, EIO): the kernel
    /// may hold pages and a size we did not store, and the flush that
    /// close(2) waits for makes it drop them before close returns.
    pub write_failed: AtomicBool,
}

/// With the writeback cache the kernel keeps a regular file's mtime itself
/// (it never takes it from our replies while it has the inode cached) and
/// sends it in a setattr when it writes the inode back; the data it writes
/// back, before or after that setattr, moves the backing file's mtime to
/// the time of our `pwrite`. So that what the kernel showed is what is
/// stored, and what a remount shows, the kernel's value is put back on the
/// backing file after writes: once at flush, fsync or release, not per
/// write.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KernelMtime {
    /// The kernel's mtime: the backing mtime before our first write since
    /// the file was opened, or the last one the kernel set.
    pub shown: Option<(i64, i64)>,
    /// The backing mtime has moved away from `shown` (a write, a
    /// truncate or an allocation of ours).
    pub moved: bool,
}

struct Entry {
    file: Arc<OpenFile>,
    handles: usize,
}

#[derive(Default)]
pub(crate) struct OpenFiles {
    by_ino: Mutex<HashMap<u64, Entry>>,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
}

impl OpenFiles {
    /// The open entry of `ino`, if any handle has it open.
    pub(crate) fn get_ino(&self, ino: u64) -> Option<Arc<OpenFile>> {
        self.by_ino
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ino)
            .map(|e| e.file.clone())
    }

    /// Opens a handle on `ino`, sharing its entry if it is open already;
    /// otherwise `open` makes the entry (outside the table lock it would be
    /// better, but opening is cheap next to the key service call that the
    /// caller has already made).
    pub(crate) fn open(
        &self,
        ino: u64,
        open: impl FnOnce() -> std::io::Result<(File, Option<FileKey>)>,
    ) -> std::io::Result<(u64, Arc<OpenFile>)> {
        let mut by_ino = self.by_ino.lock().unwrap_or_else(|p| p.into_inner());
        let file = match by_ino.get_mut(&ino) {
            Some(entry) => {
                entry.handles += 1;
                entry.file.clone()
            }
            None => {
                let (file, key) = open()?;
                let of = Arc::new(OpenFile {
                    ino,
                    file,
                    key: RwLock::new(key),
                    mtime: Mutex::default(),
                    write_failed: AtomicBool::new(false),
                });
                by_ino.insert(
                    ino,
                    Entry {
                        file: of.clone(),
                        handles: 1,
                    },
                );
                of
            }
        };
        drop(by_ino);
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed) + 1;
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, file.clone());
        Ok((fh, file))
    }

    pub(crate) fn handle(&self, fh: u64) -> Option<Arc<OpenFile>> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
    }

    /// Closes a handle; the last one of an inode drops its key. Returns
    /// the file the handle was on.
    pub(crate) fn release(&self, fh: u64) -> Option<Arc<OpenFile>> {
        let file = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh)?;
        let mut by_ino = self.by_ino.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = by_ino.get_mut(&file.ino) {
            entry.handles = entry.handles.saturating_sub(1);
            if entry.handles == 0 {
                by_ino.remove(&file.ino);
            }
        }
        Some(file)
    }
}
