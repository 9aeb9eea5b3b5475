//! The one-file filesystem a loop device sits on: a root directory (0700)
//! holding one regular file, `disk` (0600, root's), exactly the volume's
//! size, whose bytes are the volume's (through [`Store`]). It cannot grow,
//! shrink, be renamed or gain company.

use std::ffi::OsStr;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::store::{Store, StoreError};

/// The name of the one file.
pub(crate) const DISK_NAME: &str = "disk";
const ROOT: INodeNo = INodeNo(1);
const DISK: INodeNo = INodeNo(2);
/// Nothing changes behind the kernel's back: attributes may be cached long.
const TTL: Duration = Duration::from_secs(60);
/// The largest write request we ask for (a loop device sends up to its
/// max_sectors_kb, 1 MiB by default, in one request).
const MAX_WRITE: u32 = 1 << 20;

pub(crate) struct DiskFs {
    store: Arc<Store>,
    volume_id: String,
    born: SystemTime,
}

impl DiskFs {
    pub(crate) fn new(store: Arc<Store>, volume_id: String) -> DiskFs {
        DiskFs {
            store,
            volume_id,
            born: SystemTime::now(),
        }
    }

    fn attr(&self, ino: INodeNo) -> FileAttr {
        let (kind, perm, size, nlink) = if ino == ROOT {
            (FileType::Directory, 0o700, 0, 2)
        } else {
            (FileType::RegularFile, 0o600, self.store.size(), 1)
        };
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.born,
            mtime: self.born,
            ctime: self.born,
            crtime: self.born,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn failed(&self, op: &str, offset: u64, e: &StoreError) -> Errno {
        match e {
            // The block number only: never data, never key material.
            StoreError::Corrupt { block } => tracing::error!(
                volume = %self.volume_id,
                block,
                op,
                "a block of the image failed authentication (tampered or damaged): EIO"
            ),
            StoreError::OutOfRange => {}
            StoreError::Io(err) => {
                tracing::error!(volume = %self.volume_id, op, offset, error = %err, "image I/O failed")
            }
        }
        Errno::from_i32(e.errno())
    }
}

impl fuser::Filesystem for DiskFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        // Asynchronous direct I/O: the loop device submits its requests as
        // aio, and a write held by a freeze then holds only itself, not the
        // loop worker behind it (reads go on). Up to 1 MiB per request.
        for cap in [
            fuser::InitFlags::FUSE_ASYNC_DIO,
            fuser::InitFlags::FUSE_MAX_PAGES,
        ] {
            if config.add_capabilities(cap).is_err() {
                tracing::debug!(?cap, "kernel lacks FUSE capability");
            }
        }
        if config.set_max_readahead(MAX_WRITE).is_err() {
            let _ = config.set_max_readahead(128 * 1024);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == ROOT && name == DISK_NAME {
            reply.entry(&TTL, &self.attr(DISK), Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == ROOT || ino == DISK {
            reply.attr(&TTL, &self.attr(ino));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if ino != ROOT && ino != DISK {
            return reply.error(Errno::ENOENT);
        }
        // A block device has a fixed size and owner: growing it is EFBIG,
        // anything else that would change it is refused. Time updates are
        // accepted and dropped (nothing records them).
        match size {
            Some(s) if ino == DISK && s > self.store.size() => {
                return reply.error(Errno::from_i32(libc::EFBIG));
            }
            Some(s) if ino != DISK || s != self.store.size() => return reply.error(Errno::EPERM),
            _ => {}
        }
        if mode.is_some() || uid.is_some_and(|u| u != 0) || gid.is_some_and(|g| g != 0) {
            return reply.error(Errno::EPERM);
        }
        reply.attr(&TTL, &self.attr(ino));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino != DISK {
            return reply.error(Errno::EISDIR);
        }
        // Direct I/O always: no plaintext of the volume in the page cache of
        // this file (the loop device above has its own, or none with dio),
        // and every write reaches the store, so a freeze holds them all.
        reply.opened(
            FileHandle(0),
            FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES,
        );
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.store.read(offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.failed("read", offset, &e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.store.write(offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(self.failed("write", offset, &e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Every write went straight to the image; a close makes them durable.
        match self.store.sync() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.failed("flush", 0, &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.store.sync() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(self.failed("fsync", 0, &e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino == ROOT {
            reply.opened(FileHandle(0), FopenFlags::empty());
        } else {
            reply.error(Errno::ENOTDIR);
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (ROOT, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
            (DISK, FileType::RegularFile, DISK_NAME),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.store.size() / 4096;
        reply.statfs(blocks, 0, 0, 2, 0, 4096, 255, 4096);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // A discard (PUNCH_HOLE, always with KEEP_SIZE) or a write of zeros
        // (ZERO_RANGE, how the loop device passes REQ_OP_WRITE_ZEROES on):
        // the range reads as zeros, whole blocks become holes. Allocation
        // within the volume is a no-op (the image is sparse by design);
        // beyond it, the file would grow: EFBIG.
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        let zero = libc::FALLOC_FL_ZERO_RANGE;
        let end = offset.saturating_add(length);
        let result = if mode == punch || mode & !libc::FALLOC_FL_KEEP_SIZE == zero {
            if mode == zero && end > self.store.size() {
                Err(Errno::from_i32(libc::EFBIG))
            } else {
                self.store
                    .zero(offset, length)
                    .map_err(|e| self.failed("discard", offset, &e))
            }
        } else if mode == 0 || mode == libc::FALLOC_FL_KEEP_SIZE {
            if mode == 0 && end > self.store.size() {
                Err(Errno::from_i32(libc::EFBIG))
            } else {
                Ok(())
            }
        } else {
            Err(Errno::from_i32(libc::EOPNOTSUPP))
        };
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
