//! File content encryption: every plaintext<->ciphertext offset calculation
//! and all block sealing/opening lives here, so no other module needs to know
//! the on-disk block geometry.
//!
//! Backing file layout:
//!
//! ```text
//! [ header: header_len bytes ][ block 0 ][ block 1 ] ... [ block N-1 ]
//! block = nonce (12) || ciphertext (n) || tag (16),  n = 4096 except the last (1..=4096)
//! AAD(block i) = file_id (16) || i as u64 big-endian (8)
//! ```
//!
//! The AAD binds each block to its file and position, so blocks cannot be
//! moved within a file or transplanted from another file (even one sharing a
//! data key) without detection. It does *not* bind the file length: cutting
//! whole blocks off the end (or, see [`is_hole`], zeroing blocks) is not
//! detected, the same limitation as gocryptfs.
//!
//! Callers must serialise mutating operations (`write`, `truncate`) on the
//! same file; this module performs unlocked read-modify-write cycles.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cipher::{BlockAead, NONCE_LEN, TAG_LEN, fill_random};

/// Plaintext bytes per block (block shift 12).
pub const BLOCK_SIZE: usize = 4096;
/// Bytes added to every stored block: nonce + tag.
pub const BLOCK_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// On-disk size of a full block.
pub const STORED_BLOCK_LEN: usize = BLOCK_SIZE + BLOCK_OVERHEAD;
/// Length of the per-block associated data.
pub const AAD_LEN: usize = 16 + 8;

const BLOCK: u64 = BLOCK_SIZE as u64;
const STORED: u64 = STORED_BLOCK_LEN as u64;
const OVERHEAD: u64 = BLOCK_OVERHEAD as u64;

/// Largest plaintext size we accept: the backing size (header + blocks) of
/// any plaintext up to this bound fits in an `i64`, which is what the kernel
/// and `File::set_len` can represent. Guarding here also keeps every offset
/// computation in this module free of overflow.
pub const MAX_PLAIN_SIZE: u64 = (i64::MAX as u64 - 1024) / STORED * BLOCK;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// A block failed authentication or has an impossible stored length.
    /// Only the block number is reported; never data or key material.
    #[error("content block {block} is corrupt or failed authentication")]
    Corrupt { block: u64 },
    /// The backing file is non-empty but shorter than the header, or is
    /// empty while an in-file header is required before content can be
    /// written.
    #[error("backing file is {backing_len} bytes, shorter than its {header_len}-byte header")]
    MissingHeader { backing_len: u64, header_len: u64 },
    /// The requested offset/size exceeds [`MAX_PLAIN_SIZE`] (maps to EFBIG).
    #[error("file size limit exceeded")]
    TooLarge,
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Geometry of one backing file. `header_len` is 1024 when the header is at
/// the start of the file and 0 when it is stored in an xattr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub header_len: u64,
}

impl Layout {
    /// Plaintext size implied by the backing file's size.
    ///
    /// `backing_len == 0` is a freshly created file without a header yet and
    /// has size 0, as does a file consisting of only the header.
    pub fn plain_size(&self, backing_len: u64) -> Result<u64, ContentError> {
        if backing_len == 0 {
            return Ok(0);
        }
        let body = backing_len
            .checked_sub(self.header_len)
            .ok_or(self.missing_header(backing_len))?;
        let full = body / STORED;
        let tail = body % STORED;
        if tail == 0 {
            return Ok(full * BLOCK);
        }
        if tail <= OVERHEAD {
            // A block needs at least one plaintext byte plus nonce and tag;
            // a shorter tail can only come from a torn write or tampering.
            return Err(ContentError::Corrupt { block: full });
        }
        Ok(full * BLOCK + (tail - OVERHEAD))
    }

    /// Backing size for a plaintext size. For size 0 this is `header_len`
    /// (header present, no blocks); the header-less empty file (backing 0) is
    /// a special state only [`Layout::plain_size`] needs to understand.
    pub fn backing_len(&self, plain_size: u64) -> u64 {
        let full = plain_size / BLOCK;
        let tail = plain_size % BLOCK;
        let tail_stored = if tail == 0 { 0 } else { tail + OVERHEAD };
        self.header_len + full * STORED + tail_stored
    }

    /// Backing offset at which block `block_no` starts.
    pub fn block_offset(&self, block_no: u64) -> u64 {
        self.header_len + block_no * STORED
    }

    /// Plaintext length of block `block_no` in a file of `plain_size` bytes
    /// (0 if the block lies entirely beyond EOF).
    pub fn block_plain_len(plain_size: u64, block_no: u64) -> usize {
        let start = block_no * BLOCK;
        // Bounded by BLOCK_SIZE, so the cast cannot truncate.
        plain_size.saturating_sub(start).min(BLOCK) as usize
    }

    fn missing_header(&self, backing_len: u64) -> ContentError {
        ContentError::MissingHeader {
            backing_len,
            header_len: self.header_len,
        }
    }
}

/// Positional I/O on a backing file, abstracted so that the content logic is
/// testable in memory and does not depend on a shared file cursor.
// `len` mirrors `File::metadata().len()`; an `is_empty` would be unused.
#[allow(clippy::len_without_is_empty)]
pub trait PositionalIo {
    /// Reads up to `buf.len()` bytes at `off`. Returns fewer bytes only at end
    /// of file (implementations retry short reads), so one call is one
    /// logical read.
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `off`, extending the file if needed.
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    /// Makes `len` bytes at `off` read as zeros without changing the size
    /// (a hole where the filesystem can punch one).
    fn zero_range(&self, off: u64, len: u64) -> io::Result<()> {
        let zeros =
            vec![0u8; usize::try_from(len).map_err(|_| io::Error::other("range too large"))?];
        self.write_at(&zeros, off)
    }
}

impl PositionalIo for std::fs::File {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match FileExt::read_at(self, &mut buf[done..], off + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, off)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn zero_range(&self, off: u64, len: u64) -> io::Result<()> {
        use nix::fcntl::{FallocateFlags, fallocate};
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        let (o, l) = (i64::try_from(off), i64::try_from(len));
        match (o, l) {
            (Ok(o), Ok(l)) if fallocate(self, flags, o, l).is_ok() => Ok(()),
            // The backing filesystem cannot punch: write the zeros.
            _ => {
                let zeros = vec![
                    0u8;
                    usize::try_from(len)
                        .map_err(|_| io::Error::other("range too large"))?
                ];
                std::os::unix::fs::FileExt::write_all_at(self, &zeros, off)
            }
        }
    }
}

/// In-memory backing file for tests; counts calls so tests can assert the
/// I/O pattern (e.g. that aligned writes never read).
#[derive(Debug, Default)]
pub struct MemIo {
    pub data: Mutex<Vec<u8>>,
    pub reads: AtomicUsize,
    pub writes: AtomicUsize,
}

impl MemIo {
    pub fn new(data: Vec<u8>) -> Self {
        MemIo {
            data: Mutex::new(data),
            ..Default::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A poisoned lock only means another test thread panicked; the bytes
        // are still a valid Vec, so keep going.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn index(off: u64) -> io::Result<usize> {
        usize::try_from(off).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    }
}

impl PositionalIo for MemIo {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let data = self.lock();
        let start = Self::index(off)?.min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut data = self.lock();
        let start = Self::index(off)?;
        let end = start + buf.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = Self::index(len)?;
        self.lock().resize(len, 0);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.lock().len() as u64)
    }
}

/// A stored block whose bytes are all zero is a *hole*: it reads as
/// `stored_len - 28` zero bytes without authentication.
///
/// Why: growing a file with `set_len` or writing past EOF leaves sparse
/// regions that the OS returns as zeros; treating them as holes keeps sparse
/// files sparse and makes extension O(1) (gocryptfs uses the same rule).
/// Trade-off: an attacker with write access to the backing file can zero a
/// block and it will read as zeros instead of failing authentication. A
/// genuine ciphertext block is all-zero only with probability 2^-(8*29) or
/// less (it includes a random nonce and a tag), so honest data is never
/// mistaken for a hole.
pub fn is_hole(stored: &[u8]) -> bool {
    stored.iter().all(|&b| b == 0)
}

/// Encrypts and decrypts the content of one file.
pub struct FileContent<'a> {
    pub aead: &'a dyn BlockAead,
    pub file_id: [u8; 16],
    pub layout: Layout,
}

impl FileContent<'_> {
    fn aad(&self, block_no: u64) -> [u8; AAD_LEN] {
        let mut aad = [0u8; AAD_LEN];
        aad[..16].copy_from_slice(&self.file_id);
        aad[16..].copy_from_slice(&block_no.to_be_bytes());
        aad
    }

    /// Decrypts one stored block in place; returns the plaintext sub-slice.
    fn open_block<'b>(
        &self,
        block_no: u64,
        stored: &'b mut [u8],
    ) -> Result<&'b [u8], ContentError> {
        let corrupt = ContentError::Corrupt { block: block_no };
        if stored.len() <= BLOCK_OVERHEAD || stored.len() > STORED_BLOCK_LEN {
            return Err(corrupt);
        }
        let plain_len = stored.len() - BLOCK_OVERHEAD;
        if is_hole(stored) {
            // Already zeros: the plaintext of a hole is the zero bytes.
            return Ok(&stored[NONCE_LEN..NONCE_LEN + plain_len]);
        }
        let (nonce, rest) = stored.split_at_mut(NONCE_LEN);
        let (ct, tag) = rest.split_at_mut(plain_len);
        // Both conversions are infallible given the length checks above, but
        // map to Corrupt rather than panic to keep disk data panic-free.
        let nonce: &[u8; NONCE_LEN] = (&*nonce)
            .try_into()
            .map_err(|_| ContentError::Corrupt { block: block_no })?;
        let tag: &[u8; TAG_LEN] = (&*tag)
            .try_into()
            .map_err(|_| ContentError::Corrupt { block: block_no })?;
        self.aead
            .open_detached(nonce, &self.aad(block_no), ct, tag)
            .map_err(|_| corrupt)?;
        Ok(ct)
    }

    /// Seals `stored[NONCE_LEN..len-TAG_LEN]` (already holding plaintext) in
    /// place, filling in the nonce and tag.
    fn seal_block(&self, block_no: u64, nonce: &[u8; NONCE_LEN], stored: &mut [u8]) {
        let plain_end = stored.len() - TAG_LEN;
        stored[..NONCE_LEN].copy_from_slice(nonce);
        let tag = self.aead.seal_detached(
            nonce,
            &self.aad(block_no),
            &mut stored[NONCE_LEN..plain_end],
        );
        stored[plain_end..].copy_from_slice(&tag);
    }

    /// Reads and decrypts block `block_no`, whose plaintext length is
    /// `plain_len` (> 0) according to the current file size.
    fn read_block(
        &self,
        io: &(impl PositionalIo + ?Sized),
        block_no: u64,
        plain_len: usize,
    ) -> Result<Vec<u8>, ContentError> {
        let mut stored = vec![0u8; plain_len + BLOCK_OVERHEAD];
        let n = io.read_at(&mut stored, self.layout.block_offset(block_no))?;
        if n != stored.len() {
            // The file shrank under us (or lied about its size): treat the
            // block as damaged rather than decrypting a truncated buffer.
            return Err(ContentError::Corrupt { block: block_no });
        }
        let plain = self.open_block(block_no, &mut stored)?;
        Ok(plain.to_vec())
    }

    /// Rewrites block `block_no` (currently `old_len` > 0 plaintext bytes) with
    /// plaintext length `new_len`, truncating or zero-extending. Used to turn
    /// an old partial last block into a full one before the file grows past
    /// it (mid-file blocks must be full), and to shorten the last block.
    fn reseal_block(
        &self,
        io: &(impl PositionalIo + ?Sized),
        block_no: u64,
        old_len: usize,
        new_len: usize,
    ) -> Result<(), ContentError> {
        let old = self.read_block(io, block_no, old_len)?;
        let mut stored = vec![0u8; new_len + BLOCK_OVERHEAD];
        let keep = old_len.min(new_len);
        stored[NONCE_LEN..NONCE_LEN + keep].copy_from_slice(&old[..keep]);
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_block(block_no, &nonce, &mut stored);
        io.write_at(&stored, self.layout.block_offset(block_no))?;
        Ok(())
    }

    /// Current plaintext size of the file behind `io`.
    pub fn plain_size(&self, io: &(impl PositionalIo + ?Sized)) -> Result<u64, ContentError> {
        self.layout.plain_size(io.len()?)
    }

    /// Returns the plaintext in `[offset, min(offset + size, plain_size))`.
    /// All ciphertext needed is fetched with a single `read_at`, and every
    /// block touched is authenticated, even if only one byte of it is used.
    pub fn read(
        &self,
        io: &(impl PositionalIo + ?Sized),
        offset: u64,
        size: usize,
    ) -> Result<Vec<u8>, ContentError> {
        let backing_len = io.len()?;
        let plain_size = self.layout.plain_size(backing_len)?;
        let end = offset.saturating_add(size as u64).min(plain_size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;
        let start_off = self.layout.block_offset(first);
        // The last block may be short; plain_size already validated its
        // length, so clamping to the backing size gives its exact extent.
        let stop_off = self.layout.block_offset(last + 1).min(backing_len);
        let stored_len =
            usize::try_from(stop_off - start_off).map_err(|_| ContentError::TooLarge)?;
        let mut stored = vec![0u8; stored_len];
        let n = io.read_at(&mut stored, start_off)?;
        if n != stored_len {
            // Concurrent truncation: report the first block we could not get.
            let block = first + (n / STORED_BLOCK_LEN) as u64;
            return Err(ContentError::Corrupt { block });
        }

        // Bounded by size, which is a usize.
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (i, chunk) in stored.chunks_mut(STORED_BLOCK_LEN).enumerate() {
            let block_no = first + i as u64;
            let plain = self.open_block(block_no, chunk)?;
            let block_start = block_no * BLOCK;
            // Both bounded by BLOCK_SIZE.
            let from = (offset.max(block_start) - block_start) as usize;
            let to = (end.min(block_start + BLOCK) - block_start) as usize;
            let plain = plain
                .get(from..to)
                .ok_or(ContentError::Corrupt { block: block_no })?;
            out.extend_from_slice(plain);
        }
        Ok(out)
    }

    /// Writes `data` at plaintext `offset`.
    ///
    /// Only a partially overwritten first/last block is read back (and
    /// verified); fully covered blocks are never read. All blocks of the
    /// write are sealed into one buffer and written with one `write_at`.
    /// Writing past EOF first pads the old partial last block to a full block
    /// (a separate, earlier write, so a crash never leaves a short block in
    /// the middle of the file); whole blocks between old EOF and `offset` are
    /// left as holes.
    pub fn write(
        &self,
        io: &(impl PositionalIo + ?Sized),
        offset: u64,
        data: &[u8],
    ) -> Result<(), ContentError> {
        if data.is_empty() {
            // POSIX: a zero-length write does not extend the file.
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&end| end <= MAX_PLAIN_SIZE)
            .ok_or(ContentError::TooLarge)?;
        let backing_len = io.len()?;
        self.require_header(backing_len)?;
        let mut plain_size = self.layout.plain_size(backing_len)?;

        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;

        let old_last = plain_size / BLOCK;
        let old_tail = Layout::block_plain_len(plain_size, old_last);
        if old_tail > 0 && first > old_last {
            self.reseal_block(io, old_last, old_tail, BLOCK_SIZE)?;
            plain_size = (old_last + 1) * BLOCK;
        }

        // Fetch the old plaintext of the (at most two) partially covered
        // blocks. A block is partially covered if it has old data the write
        // does not fully replace.
        let partial = |block_no: u64| -> Option<usize> {
            let old_len = Layout::block_plain_len(plain_size, block_no);
            let block_start = block_no * BLOCK;
            let covers_start = offset <= block_start;
            let covers_old = end >= block_start + old_len as u64;
            (old_len > 0 && !(covers_start && covers_old)).then_some(old_len)
        };
        let old_first = match partial(first) {
            Some(len) => Some(self.read_block(io, first, len)?),
            None => None,
        };
        let old_last_block = match (last != first).then(|| partial(last)).flatten() {
            Some(len) => Some(self.read_block(io, last, len)?),
            None => None,
        };

        let n_blocks = usize::try_from(last - first + 1).map_err(|_| ContentError::TooLarge)?;
        let last_len =
            (end - last * BLOCK).max(Layout::block_plain_len(plain_size, last) as u64) as usize;
        let total = (n_blocks - 1) * STORED_BLOCK_LEN + last_len + BLOCK_OVERHEAD;
        let mut out = vec![0u8; total];
        // One syscall for all nonces instead of one per block.
        let mut nonces = vec![0u8; n_blocks * NONCE_LEN];
        fill_random(&mut nonces);

        for (i, (stored, nonce)) in out
            .chunks_mut(STORED_BLOCK_LEN)
            .zip(nonces.chunks_exact(NONCE_LEN))
            .enumerate()
        {
            let block_no = first + i as u64;
            let block_start = block_no * BLOCK;
            let plain_len = stored.len() - BLOCK_OVERHEAD;
            let plain = &mut stored[NONCE_LEN..NONCE_LEN + plain_len];
            let old = if block_no == first {
                old_first.as_deref()
            } else if block_no == last {
                old_last_block.as_deref()
            } else {
                None
            };
            if let Some(old) = old {
                plain[..old.len()].copy_from_slice(old);
            }
            // Bounded by BLOCK_SIZE / data.len().
            let from = (offset.max(block_start) - block_start) as usize;
            let to = (end.min(block_start + BLOCK) - block_start) as usize;
            let src = (block_start + from as u64 - offset) as usize;
            plain[from..to].copy_from_slice(&data[src..src + (to - from)]);
            let mut block_nonce = [0u8; NONCE_LEN];
            block_nonce.copy_from_slice(nonce); // chunks_exact: always NONCE_LEN
            self.seal_block(block_no, &block_nonce, stored);
        }
        io.write_at(&out, self.layout.block_offset(first))?;
        Ok(())
    }

    /// Sets the plaintext size to `new_size`.
    ///
    /// Punches a hole: plaintext `[offset, offset + len)` reads as zeros
    /// afterwards and the size is unchanged. Blocks wholly inside the range
    /// become holes on disk (all-zero stored bytes); partly covered edge
    /// blocks are re-sealed with zeros in the covered part.
    pub fn punch_hole(
        &self,
        io: &(impl PositionalIo + ?Sized),
        offset: u64,
        len: u64,
    ) -> Result<(), ContentError> {
        let backing_len = io.len()?;
        let size = self.layout.plain_size(backing_len)?;
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(());
        }
        // Whole blocks: those starting at or after `offset` and ending at or
        // before `end` (the file's short last block counts when `end` is EOF).
        let first_whole = offset.div_ceil(BLOCK);
        let end_whole = if end == size {
            end.div_ceil(BLOCK)
        } else {
            end / BLOCK
        };
        if first_whole >= end_whole {
            // No whole block: zero the covered bytes inside one or two blocks.
            return self.write(io, offset, &vec![0u8; (end - offset) as usize]);
        }
        let head_end = first_whole * BLOCK;
        if offset < head_end {
            self.write(io, offset, &vec![0u8; (head_end - offset) as usize])?;
        }
        let tail_start = end_whole * BLOCK;
        if tail_start < end {
            self.write(io, tail_start, &vec![0u8; (end - tail_start) as usize])?;
        }
        let from = self.layout.block_offset(first_whole);
        let to = self.layout.block_offset(end_whole).min(backing_len);
        io.zero_range(from, to - from)?;
        Ok(())
    }

    /// Shrinking re-seals the new last block if it becomes partial. Growing
    /// pads the old partial last block with zeros (re-sealed) and extends the
    /// backing file with `set_len`, so the new region is holes.
    pub fn truncate(
        &self,
        io: &(impl PositionalIo + ?Sized),
        new_size: u64,
    ) -> Result<(), ContentError> {
        if new_size > MAX_PLAIN_SIZE {
            return Err(ContentError::TooLarge);
        }
        let backing_len = io.len()?;
        let plain_size = self.layout.plain_size(backing_len)?;
        if new_size == plain_size {
            return Ok(());
        }
        if new_size > plain_size {
            self.require_header(backing_len)?;
            let old_last = plain_size / BLOCK;
            let old_tail = Layout::block_plain_len(plain_size, old_last);
            if old_tail > 0 {
                let new_tail = Layout::block_plain_len(new_size, old_last);
                self.reseal_block(io, old_last, old_tail, new_tail)?;
                if new_tail < BLOCK_SIZE {
                    // The new size ends inside the old last block; the
                    // re-sealed block already has the right length.
                    return Ok(());
                }
            }
            io.set_len(self.layout.backing_len(new_size))?;
            return Ok(());
        }

        // Shrinking. Cut first, then re-seal the new partial tail: either
        // order leaves that one block unreadable if we crash in between, but
        // this order never leaves a short block in the middle of the file.
        let new_last = new_size / BLOCK;
        let new_tail = Layout::block_plain_len(new_size, new_last);
        if new_tail == 0 {
            io.set_len(self.layout.backing_len(new_size))?;
            return Ok(());
        }
        let old_len = Layout::block_plain_len(plain_size, new_last);
        let old = self.read_block(io, new_last, old_len)?;
        io.set_len(self.layout.block_offset(new_last))?;
        let mut stored = vec![0u8; new_tail + BLOCK_OVERHEAD];
        stored[NONCE_LEN..NONCE_LEN + new_tail].copy_from_slice(&old[..new_tail]);
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_block(new_last, &nonce, &mut stored);
        io.write_at(&stored, self.layout.block_offset(new_last))?;
        Ok(())
    }

    /// Growing a header-less empty file would leave a zero-filled header
    /// region that can never be decoded; the caller must write the header
    /// first.
    fn require_header(&self, backing_len: u64) -> Result<(), ContentError> {
        if backing_len < self.layout.header_len {
            return Err(self.layout.missing_header(backing_len));
        }
        Ok(())
    }
}

#[cfg(test)]
mod punch_tests {
    use super::*;
    use crate::cipher::{CipherSuite, new_aead};

    #[test]
    fn punch_hole_zeroes_ranges_and_keeps_the_size() {
        let aead = new_aead(CipherSuite::Aes256Gcm, &[9u8; 32]);
        for header_len in [0u64, 1024] {
            let content = FileContent {
                aead: aead.as_ref(),
                file_id: [4; 16],
                layout: Layout { header_len },
            };
            let size = 5 * 4096 + 100;
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8 + 1).collect();
            // (offset, len): inside one block, across edges, whole blocks,
            // through EOF, past EOF, and empty.
            for (off, len) in [
                (10u64, 20u64),
                (4000, 200),
                (4096, 8192),
                (100, 3 * 4096),
                (4 * 4096 + 50, 10_000),
                (0, size as u64),
                (size as u64, 10),
                (7, 0),
            ] {
                let io = MemIo::new(vec![0u8; header_len as usize]);
                content.write(&io, 0, &data).unwrap();
                content.punch_hole(&io, off, len).unwrap();
                let mut want = data.clone();
                let end = (off + len).min(size as u64);
                for b in want.iter_mut().take(end as usize).skip(off as usize) {
                    *b = 0;
                }
                assert_eq!(content.plain_size(&io).unwrap(), size as u64, "{off}+{len}");
                assert_eq!(
                    content.read(&io, 0, size + 10).unwrap(),
                    want,
                    "{off}+{len}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cipher::{CipherSuite, DataKey, new_aead};
    use super::*;
    use proptest::prelude::*;

    const HEADER_FILL: u8 = 0xA5;

    /// A backing file that already has its (fake) header when `header_len`
    /// is non-zero, as the filesystem would after `create`.
    fn new_io(header_len: u64) -> MemIo {
        MemIo::new(vec![HEADER_FILL; header_len as usize])
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect()
    }

    struct Fixture {
        aead: Box<dyn BlockAead>,
        file_id: [u8; 16],
    }

    impl Fixture {
        fn new(suite: CipherSuite) -> Self {
            let key = DataKey::random();
            Fixture {
                aead: new_aead(suite, key.as_bytes()),
                file_id: [0x11; 16],
            }
        }
        fn content(&self, header_len: u64) -> FileContent<'_> {
            FileContent {
                aead: &*self.aead,
                file_id: self.file_id,
                layout: Layout { header_len },
            }
        }
    }

    fn configs() -> impl Iterator<Item = (CipherSuite, u64)> {
        CipherSuite::ALL
            .into_iter()
            .flat_map(|s| [(s, 0u64), (s, 1024u64)])
    }

    #[test]
    fn layout_arithmetic() {
        for header_len in [0u64, 1024] {
            let l = Layout { header_len };
            assert_eq!(l.plain_size(0).unwrap(), 0);
            assert_eq!(l.backing_len(0), header_len);
            assert_eq!(l.backing_len(1), header_len + 29);
            assert_eq!(l.backing_len(4096), header_len + 4124);
            assert_eq!(l.backing_len(4097), header_len + 4124 + 29);
            assert_eq!(l.block_offset(3), header_len + 3 * 4124);
            for size in [
                0u64,
                1,
                4095,
                4096,
                4097,
                8192,
                1 << 20,
                (1 << 20) + 1,
                MAX_PLAIN_SIZE,
            ] {
                assert_eq!(
                    l.plain_size(l.backing_len(size)).unwrap(),
                    size,
                    "size {size}"
                );
            }
            for tail in 1..=28u64 {
                let err = l.plain_size(header_len + 2 * 4124 + tail).unwrap_err();
                assert!(matches!(err, ContentError::Corrupt { block: 2 }), "{err:?}");
            }
        }
        let l = Layout { header_len: 1024 };
        assert_eq!(l.plain_size(1024).unwrap(), 0);
        for bad in [1u64, 500, 1023] {
            assert!(matches!(
                l.plain_size(bad),
                Err(ContentError::MissingHeader { backing_len, header_len: 1024 }) if backing_len == bad
            ));
        }
        // The largest accepted file still has a representable backing size.
        assert!(Layout { header_len: 1024 }.backing_len(MAX_PLAIN_SIZE) <= i64::MAX as u64);
    }

    #[test]
    fn round_trip_sizes() {
        for (suite, header_len) in configs() {
            let fx = Fixture::new(suite);
            let c = fx.content(header_len);
            for size in [0usize, 1, 4095, 4096, 4097, (1 << 20) + 1] {
                let io = new_io(header_len);
                let data = pattern(size, 7);
                c.write(&io, 0, &data).unwrap();
                assert_eq!(io.len().unwrap(), c.layout.backing_len(size as u64));
                assert_eq!(c.plain_size(&io).unwrap(), size as u64);
                assert_eq!(c.read(&io, 0, size + 10).unwrap(), data);
                // Header bytes untouched.
                assert!(
                    io.bytes()[..header_len as usize]
                        .iter()
                        .all(|&b| b == HEADER_FILL)
                );
                // Unaligned sub-range spanning block boundaries.
                if size > 5000 {
                    assert_eq!(c.read(&io, 4000, 1000).unwrap(), &data[4000..5000]);
                }
                assert!(c.read(&io, size as u64, 10).unwrap().is_empty());
            }
        }
    }

    #[test]
    fn empty_file_states() {
        let fx = Fixture::new(CipherSuite::Aes256Gcm);
        let c = fx.content(1024);
        // Header-less empty file: size 0, reads empty, but refuses to grow.
        let io = MemIo::new(Vec::new());
        assert_eq!(c.plain_size(&io).unwrap(), 0);
        assert!(c.read(&io, 0, 100).unwrap().is_empty());
        c.write(&io, 0, &[]).unwrap();
        c.truncate(&io, 0).unwrap();
        assert!(matches!(
            c.write(&io, 0, b"x"),
            Err(ContentError::MissingHeader { .. })
        ));
        assert!(matches!(
            c.truncate(&io, 5),
            Err(ContentError::MissingHeader { .. })
        ));
        assert_eq!(io.len().unwrap(), 0);
        // Zero-length write past EOF does not extend.
        let io = new_io(1024);
        c.write(&io, 100_000, &[]).unwrap();
        assert_eq!(io.len().unwrap(), 1024);
        // Truncate to 0 keeps the header.
        c.write(&io, 0, b"abc").unwrap();
        c.truncate(&io, 0).unwrap();
        assert_eq!(io.len().unwrap(), 1024);
    }

    #[test]
    fn aligned_full_block_write_does_not_read() {
        let fx = Fixture::new(CipherSuite::ChaCha20Poly1305);
        let c = fx.content(1024);
        let io = new_io(1024);
        c.write(&io, 0, &pattern(3 * 4096, 1)).unwrap();
        let reads = io.reads.load(Ordering::Relaxed);
        let writes = io.writes.load(Ordering::Relaxed);
        c.write(&io, 4096, &pattern(4096, 2)).unwrap();
        c.write(&io, 0, &pattern(8192, 3)).unwrap();
        // Ends mid-block but beyond the old data of that block: no old data
        // to preserve, so also no read.
        c.write(&io, 8192, &pattern(5000, 4)).unwrap();
        assert_eq!(io.reads.load(Ordering::Relaxed), reads);
        assert_eq!(io.writes.load(Ordering::Relaxed), writes + 3);
        // An unaligned write reads exactly the partial blocks.
        c.write(&io, 100, &pattern(8000, 5)).unwrap();
        assert_eq!(io.reads.load(Ordering::Relaxed), reads + 2);
        // A read is a single read_at.
        let before = io.reads.load(Ordering::Relaxed);
        c.read(&io, 10, 13000).unwrap();
        assert_eq!(io.reads.load(Ordering::Relaxed), before + 1);
    }

    #[test]
    fn write_past_eof_leaves_holes() {
        for (suite, header_len) in configs() {
            let fx = Fixture::new(suite);
            let c = fx.content(header_len);
            let io = new_io(header_len);
            c.write(&io, 0, b"head").unwrap();
            let off = 10 * 4096 + 100;
            c.write(&io, off, b"tail").unwrap();
            let mut model = vec![0u8; off as usize + 4];
            model[..4].copy_from_slice(b"head");
            model[off as usize..].copy_from_slice(b"tail");
            assert_eq!(c.read(&io, 0, model.len() + 1).unwrap(), model);
            let bytes = io.bytes();
            // Old partial block 0 was padded to a full, real block...
            let b0 = &bytes[c.layout.block_offset(0) as usize..c.layout.block_offset(1) as usize];
            assert!(!is_hole(b0));
            // ...and blocks 1..10 were never written.
            let gap = &bytes[c.layout.block_offset(1) as usize..c.layout.block_offset(10) as usize];
            assert!(is_hole(gap));
            // Writing into a hole block, starting in a hole and ending in data.
            c.write(&io, 5 * 4096 + 10, &pattern(5 * 4096, 9)).unwrap();
            model[5 * 4096 + 10..10 * 4096 + 10].copy_from_slice(&pattern(5 * 4096, 9));
            assert_eq!(c.read(&io, 0, model.len()).unwrap(), model);
            // Far beyond EOF.
            // Far enough for many holes, small enough for the in-memory file.
            let far = 1u64 << 24;
            c.write(&io, far, b"x").unwrap();
            assert_eq!(c.plain_size(&io).unwrap(), far + 1);
            assert_eq!(c.read(&io, far - 2, 10).unwrap(), b"\0\0x");
        }
    }

    #[test]
    fn truncate_grow_and_shrink() {
        for (suite, header_len) in configs() {
            let fx = Fixture::new(suite);
            let c = fx.content(header_len);
            let io = new_io(header_len);
            let data = pattern(5000, 3);
            c.write(&io, 0, &data).unwrap();
            // Grow within the last block.
            c.truncate(&io, 6000).unwrap();
            assert_eq!(io.len().unwrap(), c.layout.backing_len(6000));
            let mut model = data.clone();
            model.resize(6000, 0);
            assert_eq!(c.read(&io, 0, 99999).unwrap(), model);
            // Grow far (sparse), then shrink to a partial block, then grow.
            c.truncate(&io, 50_001).unwrap();
            model.resize(50_001, 0);
            assert_eq!(c.read(&io, 0, 99999).unwrap(), model);
            c.truncate(&io, 4097).unwrap();
            model.truncate(4097);
            assert_eq!(c.read(&io, 0, 99999).unwrap(), model);
            c.truncate(&io, 8192).unwrap();
            model.resize(8192, 0);
            assert_eq!(c.read(&io, 0, 99999).unwrap(), model);
            c.truncate(&io, 4096).unwrap();
            model.truncate(4096);
            assert_eq!(c.read(&io, 0, 99999).unwrap(), model);
            assert_eq!(io.len().unwrap(), c.layout.backing_len(4096));
            c.truncate(&io, 10).unwrap();
            model.truncate(10);
            assert_eq!(c.read(&io, 0, 99999).unwrap(), model);
            assert!(matches!(
                c.truncate(&io, MAX_PLAIN_SIZE + 1),
                Err(ContentError::TooLarge)
            ));
            assert!(matches!(
                c.write(&io, MAX_PLAIN_SIZE, b"x"),
                Err(ContentError::TooLarge)
            ));
        }
    }

    fn corrupt_block(err: ContentError) -> u64 {
        match err {
            ContentError::Corrupt { block } => block,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn tamper_detection() {
        for (suite, header_len) in configs() {
            let fx = Fixture::new(suite);
            let c = fx.content(header_len);
            let io = new_io(header_len);
            let size = 3 * 4096 + 100;
            c.write(&io, 0, &pattern(size, 5)).unwrap();
            let clean = io.bytes();

            // A flipped bit anywhere in any block (nonce, ciphertext, tag).
            for block in 0..4u64 {
                let start = c.layout.block_offset(block) as usize;
                let len = if block == 3 { 128 } else { STORED_BLOCK_LEN };
                for pos in [0, 11, 12, len / 2, len - 17, len - 1] {
                    let mut bytes = clean.clone();
                    bytes[start + pos] ^= 0x10;
                    let io = MemIo::new(bytes);
                    assert_eq!(corrupt_block(c.read(&io, 0, size).unwrap_err()), block);
                    // Reading only other blocks still works.
                    let other = if block == 0 { 3 } else { 0 };
                    assert!(c.read(&io, other * 4096, 10).is_ok());
                    // A partial write into the damaged block must fail too.
                    assert_eq!(
                        corrupt_block(c.write(&io, block * 4096 + 1, b"z").unwrap_err()),
                        block
                    );
                }
            }

            // Two blocks swapped.
            let mut bytes = clean.clone();
            let (a, b) = (
                c.layout.block_offset(0) as usize,
                c.layout.block_offset(1) as usize,
            );
            let block0 = bytes[a..b].to_vec();
            bytes.copy_within(b..b + STORED_BLOCK_LEN, a);
            bytes[b..b + STORED_BLOCK_LEN].copy_from_slice(&block0);
            assert_eq!(
                corrupt_block(c.read(&MemIo::new(bytes), 0, size).unwrap_err()),
                0
            );

            // Same key, other file id (block transplanted from another file).
            let other = FileContent {
                aead: &*fx.aead,
                file_id: [0x22; 16],
                layout: c.layout,
            };
            assert_eq!(
                corrupt_block(other.read(&MemIo::new(clean.clone()), 0, 10).unwrap_err()),
                0
            );

            // Truncated tails of 1..=28 bytes (the last block is cut short).
            for tail in 1..=28usize {
                let mut bytes = clean.clone();
                bytes.truncate(c.layout.block_offset(3) as usize + tail);
                let io = MemIo::new(bytes);
                assert_eq!(corrupt_block(c.read(&io, 0, 10).unwrap_err()), 3);
                assert!(c.plain_size(&io).is_err());
                assert!(c.write(&io, 0, b"x").is_err());
            }
            // A tail cut to a valid-looking length fails authentication.
            let mut bytes = clean.clone();
            bytes.truncate(c.layout.block_offset(3) as usize + 60);
            assert_eq!(
                corrupt_block(c.read(&MemIo::new(bytes), 3 * 4096, 100).unwrap_err()),
                3
            );
        }
    }

    #[test]
    fn real_file_io() {
        let path = std::env::temp_dir().join(format!("envelope-content-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let fx = Fixture::new(CipherSuite::Aes256Gcm);
        let c = fx.content(0);
        let data = pattern(70_000, 2);
        c.write(&file, 3, &data).unwrap();
        c.truncate(&file, 100_000).unwrap();
        let got = c.read(&file, 0, 200_000).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut model = vec![0u8; 100_000];
        model[3..70_003].copy_from_slice(&data);
        assert_eq!(got, model);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write { offset: u64, len: usize, seed: u8 },
        Truncate { size: u64 },
        Read { offset: u64, len: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        // Offsets cluster near block boundaries to hit the edge cases.
        let offset = prop_oneof![
            0u64..40_000,
            (0u64..10, -3i64..=3).prop_map(|(b, d)| (b * 4096).saturating_add_signed(d)),
        ];
        prop_oneof![
            4 => (offset.clone(), 0usize..10_000, any::<u8>())
                .prop_map(|(offset, len, seed)| Op::Write { offset, len, seed }),
            1 => offset.clone().prop_map(|size| Op::Truncate { size }),
            2 => (offset, 0usize..20_000).prop_map(|(offset, len)| Op::Read { offset, len }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn matches_vec_model(
            ops in proptest::collection::vec(op(), 1..16),
            chacha in any::<bool>(),
            in_file_header in any::<bool>(),
        ) {
            let suite = if chacha { CipherSuite::ChaCha20Poly1305 } else { CipherSuite::Aes256Gcm };
            let header_len = if in_file_header { 1024 } else { 0 };
            let fx = Fixture::new(suite);
            let c = fx.content(header_len);
            let io = new_io(header_len);
            let mut model: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Write { offset, len, seed } => {
                        let data = pattern(len, seed);
                        c.write(&io, offset, &data).unwrap();
                        if len > 0 {
                            let end = offset as usize + len;
                            if model.len() < end {
                                model.resize(end, 0);
                            }
                            model[offset as usize..end].copy_from_slice(&data);
                        }
                    }
                    Op::Truncate { size } => {
                        c.truncate(&io, size).unwrap();
                        model.resize(size as usize, 0);
                    }
                    Op::Read { offset, len } => {
                        let got = c.read(&io, offset, len).unwrap();
                        let start = (offset as usize).min(model.len());
                        let end = (offset as usize + len).min(model.len());
                        prop_assert_eq!(got, &model[start..end]);
                    }
                }
                prop_assert!(io.bytes()[..header_len as usize].iter().all(|&b| b == HEADER_FILL));
                prop_assert_eq!(c.plain_size(&io).unwrap(), model.len() as u64);
                prop_assert_eq!(io.len().unwrap(), c.layout.backing_len(model.len() as u64));
                prop_assert_eq!(c.read(&io, 0, model.len() + 1).unwrap(), &model[..]);
            }
        }
    }
}
