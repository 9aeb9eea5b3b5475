//! The volume's bytes on its image: reads and writes at volume offsets
//! through the image's [`Codec`], with the locking a block device needs.
//!
//! Every 4 KiB block is sealed as a whole, so a write that covers part of a
//! block is a read-modify-write of it, and a read that runs while a block is
//! being rewritten could see half of the new stored bytes and fail
//! authentication. Both are ruled out by a lock per block (striped: block
//! `b` uses stripe `b % STRIPES`): writes take their blocks' stripes
//! exclusively, reads shared, always in ascending stripe order so two
//! requests never wait on each other. Reads of different blocks, and of the
//! same block, run in parallel.
//!
//! Freezing is a gate in front of every write: writes hold it shared while
//! they run; `freeze` takes it exclusively, which waits for the writes in
//! flight and holds back new ones, then makes the image durable.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use kmsfs_ebs::image::{self, Codec};
use kmsfs_format::content::{ContentError, FileContent, PositionalIo};

const BLOCK: u64 = 4096;
/// Stripes of block locks: enough that unrelated requests rarely share one.
const STRIPES: usize = 256;

/// Why a request on the volume failed, as the FUSE reply's errno.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A block failed authentication (or is cut short): EIO. Only the block
    /// number is kept, never data or key material.
    #[error("block {block} of the volume failed authentication")]
    Corrupt { block: u64 },
    /// Past the end of the volume.
    #[error("past the end of the volume")]
    OutOfRange,
    #[error("image I/O failed: {0}")]
    Io(io::Error),
}

impl StoreError {
    pub(crate) fn errno(&self) -> i32 {
        match self {
            StoreError::Corrupt { .. } => libc::EIO,
            StoreError::OutOfRange => libc::ENOSPC,
            StoreError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

impl From<ContentError> for StoreError {
    fn from(e: ContentError) -> StoreError {
        match e {
            ContentError::Corrupt { block } => StoreError::Corrupt { block },
            ContentError::Io(e) => StoreError::Io(e),
            ContentError::TooLarge => StoreError::OutOfRange,
            other => StoreError::Io(io::Error::other(other.to_string())),
        }
    }
}

/// The image of an attached volume.
pub(crate) struct Store {
    file: File,
    codec: Codec,
    size: u64,
    stripes: Vec<RwLock<()>>,
    gate: RwLock<()>,
}

/// Held while the volume is frozen: no write runs.
pub(crate) type FreezeGuard<'a> = RwLockWriteGuard<'a, ()>;

impl Store {
    pub(crate) fn new(file: File, codec: Codec, size: u64) -> Store {
        Store {
            file,
            codec,
            size,
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
            gate: RwLock::new(()),
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The stripes of blocks `[first, last]`, ascending, each once.
    fn stripes_of(&self, first: u64, last: u64) -> Vec<usize> {
        if last - first + 1 >= STRIPES as u64 {
            return (0..STRIPES).collect();
        }
        let mut ids: Vec<usize> = (first..=last)
            .map(|b| (b % STRIPES as u64) as usize)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn blocks(offset: u64, len: u64) -> (u64, u64) {
        (offset / BLOCK, (offset + len - 1) / BLOCK)
    }

    fn lock_shared(&self, offset: u64, len: u64) -> Vec<RwLockReadGuard<'_, ()>> {
        let (first, last) = Self::blocks(offset, len);
        self.stripes_of(first, last)
            .into_iter()
            .map(|i| self.stripes[i].read().unwrap_or_else(|p| p.into_inner()))
            .collect()
    }

    fn lock_exclusive(&self, offset: u64, len: u64) -> Vec<RwLockWriteGuard<'_, ()>> {
        let (first, last) = Self::blocks(offset, len);
        self.stripes_of(first, last)
            .into_iter()
            .map(|i| self.stripes[i].write().unwrap_or_else(|p| p.into_inner()))
            .collect()
    }

    fn content(&self) -> Option<FileContent<'_>> {
        // The codec's own `read`/`write` flatten errors into text; going to
        // its content directly keeps the number of a block that failed
        // authentication (for the log) and the errno of an I/O error.
        match &self.codec {
            Codec::Plain => None,
            Codec::Sealed { aead, file_id } => Some(FileContent {
                aead: aead.as_ref(),
                file_id: *file_id,
                layout: image::layout(),
            }),
        }
    }

    /// Reads up to `len` bytes at `offset`; short at the end of the volume.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
        if offset >= self.size || len == 0 {
            return Ok(Vec::new());
        }
        let len = (len as u64).min(self.size - offset);
        let _locks = self.lock_shared(offset, len);
        match self.content() {
            None => {
                let mut buf = vec![0u8; len as usize];
                let n = self
                    .file
                    .read_at(&mut buf, offset)
                    .map_err(StoreError::Io)?;
                // The image is exactly the volume's size: nothing is short.
                buf.truncate(n);
                Ok(buf)
            }
            Some(content) => Ok(content.read(&self.file, offset, len as usize)?),
        }
    }

    /// Writes as much of `data` at `offset` as fits in the volume; returns
    /// how much that was. A write wholly past the end fails (ENOSPC).
    pub(crate) fn write(&self, offset: u64, data: &[u8]) -> Result<usize, StoreError> {
        if data.is_empty() {
            return Ok(0);
        }
        if offset >= self.size {
            return Err(StoreError::OutOfRange);
        }
        let n = (data.len() as u64).min(self.size - offset) as usize;
        let data = &data[..n];
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let _locks = self.lock_exclusive(offset, n as u64);
        match self.content() {
            None => std::os::unix::fs::FileExt::write_all_at(&self.file, data, offset)
                .map_err(StoreError::Io)?,
            Some(content) => content.write(&self.file, offset, data)?,
        }
        Ok(n)
    }

    /// Makes `[offset, offset + len)` (clamped to the volume) read as zeros:
    /// a discard. Whole blocks become holes in the image.
    pub(crate) fn zero(&self, offset: u64, len: u64) -> Result<(), StoreError> {
        if offset >= self.size || len == 0 {
            return Ok(());
        }
        let len = len.min(self.size - offset);
        let _gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let _locks = self.lock_exclusive(offset, len);
        match self.content() {
            None => {
                use nix::fcntl::{FallocateFlags as F, fallocate};
                let punch = F::FALLOC_FL_PUNCH_HOLE | F::FALLOC_FL_KEEP_SIZE;
                match fallocate(self.file.as_fd(), punch, offset as i64, len as i64) {
                    Ok(()) => Ok(()),
                    // A filesystem that cannot punch: write the zeros.
                    Err(nix::Error::EOPNOTSUPP) => {
                        let zeros = vec![0u8; BLOCK as usize * 64];
                        let mut at = offset;
                        while at < offset + len {
                            let n = (offset + len - at).min(zeros.len() as u64) as usize;
                            std::os::unix::fs::FileExt::write_all_at(&self.file, &zeros[..n], at)
                                .map_err(StoreError::Io)?;
                            at += n as u64;
                        }
                        Ok(())
                    }
                    Err(e) => Err(StoreError::Io(e.into())),
                }
            }
            Some(content) => Ok(content.punch_hole(&self.file, offset, len)?),
        }
    }

    /// Makes every write acknowledged so far durable in the image.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(StoreError::Io)
    }

    /// Holds back every new write, waits for those in flight, and syncs the
    /// image; writes resume when the guard is dropped.
    pub(crate) fn freeze(&self) -> Result<FreezeGuard<'_>, StoreError> {
        let guard = self.gate.write().unwrap_or_else(|p| p.into_inner());
        self.sync()?;
        Ok(guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsfs_format::cipher::DataKey;

    const SIZE: u64 = 1 << 20;

    fn sealed(dir: &std::path::Path) -> Store {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join("img"))
            .unwrap();
        let header = image::new_header("arn:aws:kms:local:0:key/k", 1, vec![1; 40]).unwrap();
        image::init_sealed(&file, &header, SIZE).unwrap();
        Store::new(
            file,
            Codec::sealed(&DataKey::random(), header.file_id),
            SIZE,
        )
    }

    #[test]
    fn reads_and_writes_stop_at_the_end_of_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let store = sealed(dir.path());
        assert_eq!(store.read(SIZE - 10, 100).unwrap().len(), 10);
        assert!(store.read(SIZE, 100).unwrap().is_empty());
        assert_eq!(store.write(SIZE - 10, &[7; 100]).unwrap(), 10);
        assert_eq!(store.read(SIZE - 10, 10).unwrap(), vec![7; 10]);
        assert_eq!(
            store.write(SIZE, &[7; 1]).unwrap_err().errno(),
            libc::ENOSPC
        );
        let len = std::fs::metadata(dir.path().join("img")).unwrap().len();
        assert_eq!(len, image::image_len(SIZE, true));
    }

    #[test]
    fn concurrent_partial_writes_to_one_block_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(sealed(dir.path()));
        let threads: Vec<_> = (0..16u8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        store
                            .write(8192 + u64::from(i) * 256, &[i + 1; 256])
                            .unwrap();
                        store.read(8192, 4096).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let block = store.read(8192, 4096).unwrap();
        for i in 0..16u8 {
            let part = &block[usize::from(i) * 256..usize::from(i + 1) * 256];
            assert!(part.iter().all(|&b| b == i + 1), "slice {i} lost");
        }
    }

    #[test]
    fn zeroing_reads_back_zeros_and_holes_stay_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let store = sealed(dir.path());
        store.write(0, &[5; 3 * 4096]).unwrap();
        store.zero(100, 2 * 4096).unwrap();
        let back = store.read(0, 3 * 4096).unwrap();
        assert!(back[..100].iter().all(|&b| b == 5));
        assert!(back[100..100 + 8192].iter().all(|&b| b == 0));
        assert!(back[100 + 8192..].iter().all(|&b| b == 5));
    }
}
