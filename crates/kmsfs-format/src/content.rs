//! File content encryption: every plaintext<->ciphertext offset calculation
//! and all block sealing/opening lives here, so no other module needs to know
//! the on-disk block geometry.
//!
//! Backing file layout:
//!
//! ```text
//! [ header: header_len bytes ][ block 0 ][ block 1 ] ... [ block N-1 ]
//! block = nonce (12) || ciphertext (n) || tag (16),  n = 4096 except the last
//! v1: AAD(block i) = file_id (16) || i as u64 big-endian (8)             n of the last: 1..=4096
//! v2: AAD(block i) = file_id (16) || i as u64 big-endian (8) || final (1) n of the last: 0..=4096
//! ```
//!
//! The AAD binds each block to its file and position, so blocks cannot be
//! moved within a file or transplanted from another file (even one sharing a
//! data key) without detection. In format version 1 it does *not* bind the
//! file length: cutting whole blocks off the end (or, see [`is_hole`],
//! zeroing blocks) is not detected, the same limitation as gocryptfs.
//!
//! Format version 2 authenticates the length: the block that is last
//! according to the backing size must open with final flag `01`, every
//! other block is sealed with `00`, and every v2 file with a header has such
//! a final block (an empty file has a 28-byte one holding no data). Cutting
//! whole blocks off the end therefore leaves a last block sealed with `00`,
//! which fails. Writers keep that invariant crash-safely: see
//! [`FileContent::write`] and [`FileContent::truncate`].
//!
//! Callers must serialise mutating operations (`write`, `truncate`) on the
//! same file; this module performs unlocked read-modify-write cycles.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::cipher::{BlockAead, NONCE_LEN, TAG_LEN, fill_random};
use super::header::FormatVersion;

/// Plaintext bytes per block (block shift 12).
pub const BLOCK_SIZE: usize = 4096;
/// Bytes added to every stored block: nonce + tag.
pub const BLOCK_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// On-disk size of a full block.
pub const STORED_BLOCK_LEN: usize = BLOCK_SIZE + BLOCK_OVERHEAD;
/// Length of the per-block associated data in format version 1.
pub const AAD_LEN: usize = 16 + 8;
/// Length of the per-block associated data in format version 2 (file id,
/// block number, final flag).
pub const AAD_LEN_V2: usize = AAD_LEN + 1;

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
/// the start of the file and 0 when it is stored in an xattr; `version` is
/// the file's header version, which selects the AAD and the size rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub header_len: u64,
    pub version: FormatVersion,
}

/// The associated data of block `block_no`: 24 bytes in v1, 25 in v2 (the
/// last byte is `01` for a block sealed as the file's final block, `00`
/// otherwise; `is_final` is ignored for v1). Returns the buffer and the
/// length in use.
pub fn block_aad(
    version: FormatVersion,
    file_id: &[u8; 16],
    block_no: u64,
    is_final: bool,
) -> ([u8; AAD_LEN_V2], usize) {
    let mut aad = [0u8; AAD_LEN_V2];
    aad[..16].copy_from_slice(file_id);
    aad[16..AAD_LEN].copy_from_slice(&block_no.to_be_bytes());
    match version {
        FormatVersion::V1 => (aad, AAD_LEN),
        FormatVersion::V2 => {
            aad[AAD_LEN] = u8::from(is_final);
            (aad, AAD_LEN_V2)
        }
    }
}

impl Layout {
    /// Plaintext size implied by the backing file's size.
    ///
    /// `backing_len == 0` is a freshly created file without a header yet and
    /// has size 0 (both versions). In v1 a file consisting of only the header
    /// also has size 0; in v2 that file has lost its final block and is
    /// `Corrupt { block: 0 }`, and the empty file is the header plus a
    /// 28-byte final block.
    pub fn plain_size(&self, backing_len: u64) -> Result<u64, ContentError> {
        if backing_len == 0 {
            return Ok(0);
        }
        let body = backing_len
            .checked_sub(self.header_len)
            .ok_or(self.missing_header(backing_len))?;
        let full = body / STORED;
        let tail = body % STORED;
        if self.version == FormatVersion::V2 {
            if body == 0 {
                // The final block was cut off.
                return Err(ContentError::Corrupt { block: 0 });
            }
            if full == 0 && tail == OVERHEAD {
                // The empty file's final block: nonce and tag, no data.
                return Ok(0);
            }
        }
        if tail == 0 {
            return Ok(full * BLOCK);
        }
        if tail <= OVERHEAD {
            // A block needs at least one plaintext byte plus nonce and tag
            // (only v2's empty final block has none); a shorter tail can
            // only come from a torn write or tampering.
            return Err(ContentError::Corrupt { block: full });
        }
        Ok(full * BLOCK + (tail - OVERHEAD))
    }

    /// Backing size for a plaintext size. For size 0 this is `header_len`
    /// in v1 (header present, no blocks) and `header_len + 28` in v2 (header
    /// and the empty final block); the header-less empty file (backing 0) is
    /// a special state only [`Layout::plain_size`] needs to understand.
    pub fn backing_len(&self, plain_size: u64) -> u64 {
        if plain_size == 0 && self.version == FormatVersion::V2 {
            return self.header_len + OVERHEAD;
        }
        let full = plain_size / BLOCK;
        let tail = plain_size % BLOCK;
        let tail_stored = if tail == 0 { 0 } else { tail + OVERHEAD };
        self.header_len + full * STORED + tail_stored
    }

    /// Backing offset at which block `block_no` starts.
    pub fn block_offset(&self, block_no: u64) -> u64 {
        self.header_len + block_no * STORED
    }

    /// Backing bytes `[start, end)` of the blocks that hold plaintext
    /// `[offset, offset + len)`, every block counted at its full stored
    /// length: what preallocating that plaintext range must cover (nonce
    /// and tag of each block, v2's final block included; the last block
    /// may end up stored shorter).
    pub fn stored_range(&self, offset: u64, len: u64) -> (u64, u64) {
        let end = offset.saturating_add(len).min(MAX_PLAIN_SIZE);
        let first = offset.min(end) / BLOCK;
        (
            self.block_offset(first),
            self.block_offset(end.div_ceil(BLOCK)),
        )
    }

    /// Plaintext length of block `block_no` in a file of `plain_size` bytes
    /// (0 if the block lies entirely beyond EOF).
    pub fn block_plain_len(plain_size: u64, block_no: u64) -> usize {
        let start = block_no * BLOCK;
        // Bounded by BLOCK_SIZE, so the cast cannot truncate.
        plain_size.saturating_sub(start).min(BLOCK) as usize
    }

    /// The block that is last for a file of `plain_size` bytes: the one a v2
    /// writer seals with the final flag. Block 0 for an empty file (v2's
    /// empty final block).
    pub fn final_block(plain_size: u64) -> u64 {
        plain_size.saturating_sub(1) / BLOCK
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
    /// Allocates the storage for `len` bytes at `off` without changing the
    /// size, so that writes into that range cannot run out of space. Called
    /// before a mutating operation writes any byte: when the space is not
    /// there it fails (ENOSPC, EDQUOT) with the file unchanged, instead of a
    /// write failing halfway through a block and leaving a torn block.
    ///
    /// The default does nothing: such a backing store can still tear a
    /// block when it runs out of space.
    fn reserve(&self, off: u64, len: u64) -> io::Result<()> {
        let _ = (off, len);
        Ok(())
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

    /// `fallocate(FALLOC_FL_KEEP_SIZE)`: the size grows only when the data
    /// is really written. A filesystem without preallocation (EOPNOTSUPP:
    /// some network and FUSE filesystems; tmpfs, ext4, xfs and btrfs have
    /// it) reserves nothing, and running out of space there can still tear
    /// a block. On ENOSPC/EDQUOT what a partial allocation left past the end
    /// of the file is given back (ext4 keeps it; tmpfs undoes it itself).
    fn reserve(&self, off: u64, len: u64) -> io::Result<()> {
        use nix::errno::Errno;
        use nix::fcntl::{FallocateFlags, fallocate};
        if len == 0 {
            return Ok(());
        }
        let too_big = || io::Error::from(Errno::EFBIG);
        let o = i64::try_from(off).map_err(|_| too_big())?;
        let l = i64::try_from(len).map_err(|_| too_big())?;
        loop {
            match fallocate(self, FallocateFlags::FALLOC_FL_KEEP_SIZE, o, l) {
                Ok(()) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(Errno::EOPNOTSUPP) => return Ok(()),
                Err(e) => {
                    if matches!(e, Errno::ENOSPC | Errno::EDQUOT) {
                        release_past_eof(self, off, len);
                    }
                    return Err(io::Error::from(e));
                }
            }
        }
    }
}

/// Best-effort undo of a failed [`PositionalIo::reserve`] on a real file:
/// punches out `[max(off, EOF), off + len)`, where blocks allocated by a
/// failed KEEP_SIZE fallocate are invisible in the size but still use
/// space. Errors are ignored: this only gives space back.
fn release_past_eof(file: &std::fs::File, off: u64, len: u64) {
    use nix::fcntl::{FallocateFlags, fallocate};
    let Ok(eof) = file.metadata().map(|m| m.len()) else {
        return;
    };
    let end = off.saturating_add(len);
    let start = off.max(eof);
    if start >= end {
        return;
    }
    let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    if let (Ok(o), Ok(l)) = (i64::try_from(start), i64::try_from(end - start)) {
        let _ = fallocate(file, flags, o, l);
    }
}

/// In-memory backing file for tests; counts calls so tests can assert the
/// I/O pattern (e.g. that aligned writes never read).
///
/// With a `capacity` it behaves like a file on a full disk: storage is
/// allocated up to the larger of its length and what [`PositionalIo::reserve`]
/// reserved; reserving past `capacity` fails with ENOSPC, and a write past
/// it stores the bytes that fit and then fails with ENOSPC (a torn write,
/// as `write_all_at` on a real full filesystem).
#[derive(Debug, Default)]
pub struct MemIo {
    pub data: Mutex<Vec<u8>>,
    pub reads: AtomicUsize,
    pub writes: AtomicUsize,
    pub capacity: Option<u64>,
    /// End of the reserved range (0: none past the length).
    reserved: AtomicU64,
}

impl MemIo {
    pub fn new(data: Vec<u8>) -> Self {
        MemIo {
            data: Mutex::new(data),
            ..Default::default()
        }
    }

    /// A backing file on a disk that holds at most `capacity` bytes of it.
    pub fn with_capacity(data: Vec<u8>, capacity: u64) -> Self {
        MemIo {
            capacity: Some(capacity),
            ..MemIo::new(data)
        }
    }

    fn no_space() -> io::Error {
        io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32)
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
        let mut end = start + buf.len();
        let mut result = Ok(());
        if let Some(cap) = self.capacity {
            let allocated = (data.len() as u64).max(self.reserved.load(Ordering::Relaxed));
            let room = Self::index(cap.max(allocated))?;
            if end > room {
                end = room.max(start);
                result = Err(Self::no_space());
            }
        }
        if end > start {
            if data.len() < end {
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(&buf[..end - start]);
        }
        result
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        // Cutting the file also frees what was reserved past the cut.
        self.reserved.fetch_min(len, Ordering::Relaxed);
        let len = Self::index(len)?;
        self.lock().resize(len, 0);
        Ok(())
    }

    fn reserve(&self, off: u64, len: u64) -> io::Result<()> {
        let end = off.checked_add(len).ok_or_else(Self::no_space)?;
        let data_len = self.lock().len() as u64;
        if self.capacity.is_some_and(|cap| end > cap.max(data_len)) {
            return Err(Self::no_space());
        }
        self.reserved.fetch_max(end, Ordering::Relaxed);
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
    fn v2(&self) -> bool {
        self.layout.version == FormatVersion::V2
    }

    /// Decrypts one stored block in place; returns the plaintext sub-slice.
    /// `is_final`: the block is the last one according to the file size.
    ///
    /// v2: the final block opens with flag `01` only, and an all-zero final
    /// block is not a hole. Any other block opens with flag `00`, falling
    /// back to `01`: a block that was the final one when a crash interrupted
    /// the extension of the file keeps its `01` seal until the last step of
    /// that extension re-seals it (see [`FileContent::write`]).
    fn open_block<'b>(
        &self,
        block_no: u64,
        is_final: bool,
        stored: &'b mut [u8],
    ) -> Result<&'b [u8], ContentError> {
        let corrupt = ContentError::Corrupt { block: block_no };
        let final_v2 = self.v2() && is_final;
        // Only v2's empty final block may hold no plaintext byte.
        let min_len = if final_v2 {
            BLOCK_OVERHEAD
        } else {
            BLOCK_OVERHEAD + 1
        };
        if stored.len() < min_len || stored.len() > STORED_BLOCK_LEN {
            return Err(corrupt);
        }
        let plain_len = stored.len() - BLOCK_OVERHEAD;
        if is_hole(stored) {
            if final_v2 {
                // A zeroed final block would make truncation undetectable.
                return Err(corrupt);
            }
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
        let (aad, aad_len) = block_aad(self.layout.version, &self.file_id, block_no, is_final);
        if self
            .aead
            .open_detached(nonce, &aad[..aad_len], ct, tag)
            .is_ok()
        {
            return Ok(ct);
        }
        if !self.v2() || is_final {
            return Err(corrupt);
        }
        // A failed open leaves `ct` unchanged (BlockAead contract).
        let (aad, aad_len) = block_aad(self.layout.version, &self.file_id, block_no, true);
        self.aead
            .open_detached(nonce, &aad[..aad_len], ct, tag)
            .map_err(|_| corrupt)?;
        Ok(ct)
    }

    /// Seals `stored[NONCE_LEN..len-TAG_LEN]` (already holding plaintext) in
    /// place, filling in the nonce and tag. `is_final` selects the v2 final
    /// flag (ignored for v1).
    fn seal_block(
        &self,
        block_no: u64,
        is_final: bool,
        nonce: &[u8; NONCE_LEN],
        stored: &mut [u8],
    ) {
        let plain_end = stored.len() - TAG_LEN;
        stored[..NONCE_LEN].copy_from_slice(nonce);
        let (aad, aad_len) = block_aad(self.layout.version, &self.file_id, block_no, is_final);
        let tag =
            self.aead
                .seal_detached(nonce, &aad[..aad_len], &mut stored[NONCE_LEN..plain_end]);
        stored[plain_end..].copy_from_slice(&tag);
    }

    /// Reads and decrypts block `block_no`, whose plaintext length is
    /// `plain_len` according to the current file size (> 0, or 0 for v2's
    /// empty final block).
    fn read_block(
        &self,
        io: &(impl PositionalIo + ?Sized),
        block_no: u64,
        plain_len: usize,
        is_final: bool,
    ) -> Result<Vec<u8>, ContentError> {
        let mut stored = vec![0u8; plain_len + BLOCK_OVERHEAD];
        let n = io.read_at(&mut stored, self.layout.block_offset(block_no))?;
        if n != stored.len() {
            // The file shrank under us (or lied about its size): treat the
            // block as damaged rather than decrypting a truncated buffer.
            return Err(ContentError::Corrupt { block: block_no });
        }
        let plain = self.open_block(block_no, is_final, &mut stored)?;
        Ok(plain.to_vec())
    }

    /// Seals `plain` (at most one block) under a fresh nonce as block
    /// `block_no` and writes it with one `write_at`.
    fn write_sealed(
        &self,
        io: &(impl PositionalIo + ?Sized),
        block_no: u64,
        is_final: bool,
        plain: &[u8],
    ) -> Result<(), ContentError> {
        let mut stored = vec![0u8; plain.len() + BLOCK_OVERHEAD];
        stored[NONCE_LEN..NONCE_LEN + plain.len()].copy_from_slice(plain);
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        self.seal_block(block_no, is_final, &nonce, &mut stored);
        io.write_at(&stored, self.layout.block_offset(block_no))?;
        Ok(())
    }

    /// Reserves the storage of block `block_no` holding `plain_len` bytes
    /// (see [`PositionalIo::reserve`]), before a step that writes it.
    fn reserve_block(
        &self,
        io: &(impl PositionalIo + ?Sized),
        block_no: u64,
        plain_len: usize,
    ) -> Result<(), ContentError> {
        io.reserve(
            self.layout.block_offset(block_no),
            (plain_len + BLOCK_OVERHEAD) as u64,
        )?;
        Ok(())
    }

    /// Rewrites block `block_no` (currently `old_len` plaintext bytes) with
    /// plaintext length `new_len`, truncating or zero-extending. Used to turn
    /// an old partial last block into a full one before the file grows past
    /// it (mid-file blocks must be full), and to resize the last block.
    /// The block is read as final and written as final (v2).
    fn reseal_final(
        &self,
        io: &(impl PositionalIo + ?Sized),
        block_no: u64,
        old_len: usize,
        new_len: usize,
    ) -> Result<Vec<u8>, ContentError> {
        let mut plain = self.read_block(io, block_no, old_len, true)?;
        plain.resize(new_len, 0);
        self.write_sealed(io, block_no, true, &plain)?;
        Ok(plain)
    }

    /// Current plaintext size of the file behind `io`.
    pub fn plain_size(&self, io: &(impl PositionalIo + ?Sized)) -> Result<u64, ContentError> {
        self.layout.plain_size(io.len()?)
    }

    /// Returns the plaintext in `[offset, min(offset + size, plain_size))`.
    /// All ciphertext needed is fetched with a single `read_at`, and every
    /// block touched is authenticated, even if only one byte of it is used.
    /// v2: reading an empty file authenticates its empty final block (else
    /// a file cut to `header + 28` bytes would read as empty unnoticed).
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
            if self.v2() && plain_size == 0 && backing_len != 0 {
                self.read_block(io, 0, 0, true)?;
            }
            return Ok(Vec::new());
        }
        let final_block = Layout::final_block(plain_size);
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
            let plain = self.open_block(block_no, block_no == final_block, chunk)?;
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
    ///
    /// v2, a write that starts beyond the old final block `F`: (a) `F` is
    /// read; if partial it is padded to 4096 bytes and re-sealed, still as
    /// final; (b) the write's blocks go out in one `write_at`, its last block
    /// sealed as final; (c) `F` is re-sealed as non-final from the plaintext
    /// kept from (a). A crash after (a) leaves the old content zero-padded to
    /// a block boundary; after (b), the new content (`F`, still sealed as
    /// final, opens through the read fallback). A write that covers `F`
    /// seals it as non-final in its one `write_at`.
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
        // v2 (v1 ignores the flags): the final block before and after the
        // write. A backing file of 0 bytes (xattr header) has no block yet.
        let old_final = (backing_len != 0).then(|| Layout::final_block(plain_size));
        let new_final = Layout::final_block(plain_size.max(end));
        // v2: the old final block when it lies before the write, with its
        // (padded) plaintext, to be re-sealed as non-final afterwards.
        let mut demote: Option<(u64, Vec<u8>)> = None;

        // The stored extent of the write's blocks. Padding (below) only
        // changes blocks before `first`, so this is known up front.
        let n_blocks = usize::try_from(last - first + 1).map_err(|_| ContentError::TooLarge)?;
        let last_len =
            (end - last * BLOCK).max(Layout::block_plain_len(plain_size, last) as u64) as usize;
        let total = (n_blocks - 1) * STORED_BLOCK_LEN + last_len + BLOCK_OVERHEAD;
        // The old partial last block that is padded to a full block first,
        // if the write starts beyond it (v2: the old final block, which is
        // also re-sealed as non-final).
        let padded = if self.v2() {
            old_final.filter(|&f| f < first)
        } else {
            let old_last = plain_size / BLOCK;
            (Layout::block_plain_len(plain_size, old_last) > 0 && first > old_last)
                .then_some(old_last)
        };
        // Reserve every byte this write will store before storing any: out
        // of space, the file is left as it was (no torn block).
        if let Some(p) = padded {
            io.reserve(self.layout.block_offset(p), STORED)?;
        }
        io.reserve(self.layout.block_offset(first), total as u64)?;

        if self.v2() {
            if let Some(f) = old_final.filter(|&f| f < first) {
                let len = Layout::block_plain_len(plain_size, f);
                let plain = if len < BLOCK_SIZE {
                    plain_size = (f + 1) * BLOCK;
                    self.reseal_final(io, f, len, BLOCK_SIZE)?
                } else {
                    self.read_block(io, f, len, true)?
                };
                demote = Some((f, plain));
            }
        } else {
            let old_last = plain_size / BLOCK;
            let old_tail = Layout::block_plain_len(plain_size, old_last);
            if old_tail > 0 && first > old_last {
                self.reseal_final(io, old_last, old_tail, BLOCK_SIZE)?;
                plain_size = (old_last + 1) * BLOCK;
            }
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
        let was_final = |block_no: u64| old_final == Some(block_no);
        let old_first = match partial(first) {
            Some(len) => Some(self.read_block(io, first, len, was_final(first))?),
            None => None,
        };
        let old_last_block = match (last != first).then(|| partial(last)).flatten() {
            Some(len) => Some(self.read_block(io, last, len, was_final(last))?),
            None => None,
        };

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
            self.seal_block(block_no, block_no == new_final, &block_nonce, stored);
        }
        io.write_at(&out, self.layout.block_offset(first))?;
        if let Some((f, plain)) = demote {
            self.write_sealed(io, f, false, &plain)?;
        }
        Ok(())
    }

    /// Punches a hole: plaintext `[offset, offset + len)` reads as zeros
    /// afterwards and the size is unchanged. Blocks wholly inside the range
    /// become holes on disk (all-zero stored bytes); partly covered edge
    /// blocks are re-sealed with zeros in the covered part. v2: the final
    /// block never becomes a hole; when covered it is re-sealed with zeros
    /// (as final).
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
        let mut end_whole = if end == size {
            end.div_ceil(BLOCK)
        } else {
            end / BLOCK
        };
        if self.v2() {
            end_whole = end_whole.min(Layout::final_block(size));
        }
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

    /// Sets the plaintext size to `new_size`.
    ///
    /// v1: shrinking re-seals the new last block if it becomes partial.
    /// Growing pads the old partial last block with zeros (re-sealed) and
    /// extends the backing file with `set_len`, so the new region is holes.
    /// v2: every step keeps a sealed final block at the end; the order of
    /// the calls and what a crash between them leaves are described on
    /// `truncate_v2` and in docs/FORMAT.md.
    pub fn truncate(
        &self,
        io: &(impl PositionalIo + ?Sized),
        new_size: u64,
    ) -> Result<(), ContentError> {
        if new_size > MAX_PLAIN_SIZE {
            return Err(ContentError::TooLarge);
        }
        if self.v2() {
            return self.truncate_v2(io, new_size);
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
                self.reserve_block(io, old_last, new_tail)?;
                self.reseal_final(io, old_last, old_tail, new_tail)?;
                if new_tail < BLOCK_SIZE {
                    // The new size ends inside the old last block; the
                    // re-sealed block already has the right length.
                    return Ok(());
                }
            }
            io.set_len(self.layout.backing_len(new_size))?;
            return Ok(());
        }

        // Shrinking. Cut to the new backing length first, then re-seal the
        // new partial tail in place: either order leaves that one block
        // unreadable if we crash in between, but this order never leaves a
        // short block in the middle of the file, and the re-sealed block
        // lies inside what the cut kept, so it needs no new storage (a cut
        // to the block's start would free it, and re-writing could then
        // fail for lack of space with the tail already gone).
        let new_last = new_size / BLOCK;
        let new_tail = Layout::block_plain_len(new_size, new_last);
        if new_tail == 0 {
            io.set_len(self.layout.backing_len(new_size))?;
            return Ok(());
        }
        let old_len = Layout::block_plain_len(plain_size, new_last);
        let old = self.read_block(io, new_last, old_len, false)?;
        self.reserve_block(io, new_last, new_tail)?;
        io.set_len(self.layout.backing_len(new_size))?;
        self.write_sealed(io, new_last, true, &old[..new_tail])?;
        Ok(())
    }

    /// Format version 2, a file just given its header: writes its empty
    /// final block (nonce and tag of no bytes) right after the header, so
    /// that the new file already ends in an authenticated final block. Does
    /// nothing for version 1.
    pub fn seal_empty(&self, io: &(impl PositionalIo + ?Sized)) -> Result<(), ContentError> {
        if !self.v2() {
            return Ok(());
        }
        let backing_len = io.len()?;
        if backing_len != self.layout.header_len {
            // Not a file that holds only its header: `truncate` is the tool.
            return Err(ContentError::Corrupt { block: 0 });
        }
        self.reserve_block(io, 0, 0)?;
        self.write_sealed(io, 0, true, &[])
    }

    /// `truncate` for format version 2. Every step keeps a sealed final
    /// block at the end of the file:
    ///
    /// - to 0: `set_len(H)`, then write the 28-byte empty final block. It
    ///   needs no old content, so it also repairs a damaged file (which is
    ///   how the crash state between the two steps, header only, is fixed);
    /// - growing within the final block `F`: `F` re-sealed at its new length;
    /// - growing past `F`: (a) `F` padded to 4096 bytes and re-sealed as
    ///   final if partial, (b) a sealed final block of zeros written at the
    ///   new end (blocks in between stay holes), (c) `F` re-sealed as
    ///   non-final. O(1) in the size;
    /// - shrinking to a multiple of 4096: the new final block re-sealed as
    ///   final first, then the cut (a crash in between leaves the old
    ///   content, read through the fallback);
    /// - shrinking otherwise: the new final block's old plaintext is read,
    ///   the file is cut to its new backing length, then that block is
    ///   re-sealed as final; a crash in between leaves only that block
    ///   failing authentication.
    fn truncate_v2(
        &self,
        io: &(impl PositionalIo + ?Sized),
        new_size: u64,
    ) -> Result<(), ContentError> {
        let backing_len = io.len()?;
        let header_len = self.layout.header_len;
        if new_size == 0 {
            // Already empty, or header-less (an in-file header not written
            // yet), which stays so. With an xattr header a 0-byte file has
            // its header (this is called with its key), so it gets its empty
            // final block: a new file made by `truncate(0)` is 28 bytes.
            if backing_len == self.layout.backing_len(0) || (backing_len == 0 && header_len > 0) {
                return Ok(());
            }
            self.require_header(backing_len)?;
            if backing_len != header_len {
                io.set_len(header_len)?;
            }
            // Reserved after the cut, which would free it. Out of space the
            // file is left as that crash state: an xattr-header file of 0
            // bytes (empty), or the header alone (repaired by truncating to
            // 0 again); with blocks of 2 KiB or more the 28 bytes share the
            // header's block and need no new storage.
            self.reserve_block(io, 0, 0)?;
            return self.write_sealed(io, 0, true, &[]);
        }
        let plain_size = self.layout.plain_size(backing_len)?;
        if new_size == plain_size {
            return Ok(());
        }
        let new_final = Layout::final_block(new_size);
        let new_len = Layout::block_plain_len(new_size, new_final);
        if new_size > plain_size {
            self.require_header(backing_len)?;
            if backing_len == 0 {
                // Xattr header, no block yet: just the final block.
                self.reserve_block(io, new_final, new_len)?;
                return self.write_sealed(io, new_final, true, &vec![0u8; new_len]);
            }
            let f = Layout::final_block(plain_size);
            let len = Layout::block_plain_len(plain_size, f);
            if new_final == f {
                self.reserve_block(io, f, new_len)?;
                self.reseal_final(io, f, len, new_len)?;
                return Ok(());
            }
            // Both blocks written below, before the first write.
            self.reserve_block(io, f, BLOCK_SIZE)?;
            self.reserve_block(io, new_final, new_len)?;
            let plain = if len < BLOCK_SIZE {
                self.reseal_final(io, f, len, BLOCK_SIZE)?
            } else {
                self.read_block(io, f, len, true)?
            };
            self.write_sealed(io, new_final, true, &vec![0u8; new_len])?;
            return self.write_sealed(io, f, false, &plain);
        }

        // Shrinking (new_size > 0).
        let old_final = Layout::final_block(plain_size);
        let old_len = Layout::block_plain_len(plain_size, new_final);
        let mut plain = self.read_block(io, new_final, old_len, new_final == old_final)?;
        plain.truncate(new_len);
        // Inside what the cut keeps: normally already allocated, but a
        // hole there, or a copy-on-write filesystem, needs new storage.
        self.reserve_block(io, new_final, new_len)?;
        if new_len == BLOCK_SIZE {
            // new_final < old_final: mark it final before cutting.
            self.write_sealed(io, new_final, true, &plain)?;
            io.set_len(self.layout.backing_len(new_size))?;
        } else {
            io.set_len(self.layout.backing_len(new_size))?;
            self.write_sealed(io, new_final, true, &plain)?;
        }
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
        for (header_len, version) in [0u64, 1024]
            .into_iter()
            .flat_map(|h| [(h, FormatVersion::V1), (h, FormatVersion::V2)])
        {
            let content = FileContent {
                aead: aead.as_ref(),
                file_id: [4; 16],
                layout: Layout {
                    header_len,
                    version,
                },
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
                // v2: a header-only file gets its empty final block.
                content.truncate(&io, 0).unwrap();
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
            self.content_v(header_len, FormatVersion::V1)
        }
        fn content_v(&self, header_len: u64, version: FormatVersion) -> FileContent<'_> {
            FileContent {
                aead: &*self.aead,
                file_id: self.file_id,
                layout: Layout {
                    header_len,
                    version,
                },
            }
        }
    }

    /// A new file as the filesystem leaves it after `create`: its (fake)
    /// header if in the file, and for v2 the empty final block.
    fn fresh(c: &FileContent) -> MemIo {
        let io = new_io(c.layout.header_len);
        if c.layout.version == FormatVersion::V2 {
            c.write_sealed(&io, 0, true, &[]).unwrap();
        }
        io
    }

    fn configs() -> impl Iterator<Item = (CipherSuite, u64)> {
        CipherSuite::ALL
            .into_iter()
            .flat_map(|s| [(s, 0u64), (s, 1024u64)])
    }

    /// Every suite, header placement and format version.
    fn configs_v() -> impl Iterator<Item = (CipherSuite, u64, FormatVersion)> {
        configs().flat_map(|(s, h)| [(s, h, FormatVersion::V1), (s, h, FormatVersion::V2)])
    }

    #[test]
    fn layout_arithmetic() {
        for header_len in [0u64, 1024] {
            let l = Layout {
                header_len,
                version: FormatVersion::V1,
            };
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
        let l = Layout {
            header_len: 1024,
            version: FormatVersion::V1,
        };
        assert_eq!(l.plain_size(1024).unwrap(), 0);
        for bad in [1u64, 500, 1023] {
            assert!(matches!(
                l.plain_size(bad),
                Err(ContentError::MissingHeader { backing_len, header_len: 1024 }) if backing_len == bad
            ));
        }
        // The largest accepted file still has a representable backing size.
        assert!(l.backing_len(MAX_PLAIN_SIZE) <= i64::MAX as u64);
    }

    #[test]
    fn round_trip_sizes() {
        for (suite, header_len, version) in configs_v() {
            let fx = Fixture::new(suite);
            let c = fx.content_v(header_len, version);
            for size in [0usize, 1, 4095, 4096, 4097, (1 << 20) + 1] {
                let io = fresh(&c);
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
        for (suite, header_len, version) in configs_v() {
            let fx = Fixture::new(suite);
            let c = fx.content_v(header_len, version);
            let io = fresh(&c);
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
        for (suite, header_len, version) in configs_v() {
            let fx = Fixture::new(suite);
            let c = fx.content_v(header_len, version);
            let io = fresh(&c);
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
        for (suite, header_len, version) in configs_v() {
            let fx = Fixture::new(suite);
            let c = fx.content_v(header_len, version);
            let io = fresh(&c);
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
        for version in [FormatVersion::V1, FormatVersion::V2] {
            real_file_io_with(version);
        }
    }

    fn real_file_io_with(version: FormatVersion) {
        let path = std::env::temp_dir().join(format!(
            "envelope-content-{}-{}",
            std::process::id(),
            version.id()
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let fx = Fixture::new(CipherSuite::Aes256Gcm);
        let c = fx.content_v(0, version);
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
            v2 in any::<bool>(),
        ) {
            let suite = if chacha { CipherSuite::ChaCha20Poly1305 } else { CipherSuite::Aes256Gcm };
            let header_len = if in_file_header { 1024 } else { 0 };
            let fx = Fixture::new(suite);
            let version = if v2 { FormatVersion::V2 } else { FormatVersion::V1 };
            let c = fx.content_v(header_len, version);
            let io = fresh(&c);
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

#[cfg(test)]
mod v2_tests {
    use super::super::cipher::{CipherSuite, DataKey, new_aead};
    use super::*;

    const V1: FormatVersion = FormatVersion::V1;
    const V2: FormatVersion = FormatVersion::V2;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) | 1)
            .collect()
    }

    fn layout(header_len: u64, version: FormatVersion) -> Layout {
        Layout {
            header_len,
            version,
        }
    }

    struct Fx {
        aead: Box<dyn BlockAead>,
    }

    impl Fx {
        fn new() -> Fx {
            Fx {
                aead: new_aead(CipherSuite::Aes256Gcm, DataKey::random().as_bytes()),
            }
        }
        fn content(&self, header_len: u64, version: FormatVersion) -> FileContent<'_> {
            FileContent {
                aead: &*self.aead,
                file_id: [0x11; 16],
                layout: layout(header_len, version),
            }
        }
    }

    /// A v2 file of `size` bytes of `pattern(size, 1)`: header, blocks, and
    /// for size 0 the empty final block.
    fn v2_file(c: &FileContent, size: usize) -> MemIo {
        let io = MemIo::new(vec![0xA5; c.layout.header_len as usize]);
        c.write_sealed(&io, 0, true, &[]).unwrap();
        c.write(&io, 0, &pattern(size, 1)).unwrap();
        assert_eq!(io.len().unwrap(), c.layout.backing_len(size as u64));
        io
    }

    /// The whole plaintext, or the first error.
    fn contents(c: &FileContent, bytes: Vec<u8>) -> Result<Vec<u8>, ContentError> {
        let io = MemIo::new(bytes);
        let size = c.plain_size(&io)?;
        c.read(&io, 0, size as usize + 1)
    }

    fn corrupt(r: Result<impl std::fmt::Debug, ContentError>) -> u64 {
        match r {
            Err(ContentError::Corrupt { block }) => block,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn layout_arithmetic_v2() {
        for h in [0u64, 1024] {
            let l = layout(h, V2);
            assert_eq!(l.plain_size(0).unwrap(), 0);
            assert_eq!(l.backing_len(0), h + 28);
            assert_eq!(l.plain_size(h + 28).unwrap(), 0);
            assert_eq!(l.backing_len(1), h + 29);
            assert_eq!(l.plain_size(h + 29).unwrap(), 1);
            assert_eq!(l.plain_size(h + 4124).unwrap(), 4096);
            assert_eq!(l.plain_size(h + 4124 + 29).unwrap(), 4097);
            assert_eq!(l.plain_size(h + 4124 + 28 + 4096).unwrap(), 8192);
            for r in 1..28 {
                assert_eq!(corrupt(l.plain_size(h + r)), 0, "r {r}");
            }
            for r in 1..=28 {
                assert_eq!(corrupt(l.plain_size(h + 2 * 4124 + r)), 2, "r {r}");
            }
            for size in [0u64, 1, 4095, 4096, 4097, 8192, 1 << 20, MAX_PLAIN_SIZE] {
                assert_eq!(l.plain_size(l.backing_len(size)).unwrap(), size);
            }
            assert!(l.backing_len(MAX_PLAIN_SIZE) <= i64::MAX as u64);
        }
        // Header only: the final block was cut off.
        assert_eq!(corrupt(layout(1024, V2).plain_size(1024)), 0);
        assert!(matches!(
            layout(1024, V2).plain_size(1023),
            Err(ContentError::MissingHeader { .. })
        ));
        assert_eq!(Layout::final_block(0), 0);
        assert_eq!(Layout::final_block(4096), 0);
        assert_eq!(Layout::final_block(4097), 1);
    }

    #[test]
    fn aad_bytes_are_as_specified() {
        let id: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
        let (a, n) = block_aad(V2, &id, 0x0102_0304_0506_0708, true);
        let mut want = id.to_vec();
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0x01]);
        assert_eq!(&a[..n], &want[..]);
        assert_eq!(n, 25);
        let (a, n) = block_aad(V2, &id, 5, false);
        assert_eq!(&a[16..n], &[0, 0, 0, 0, 0, 0, 0, 5, 0x00]);
        // v1: 24 bytes, the flag is ignored.
        for is_final in [false, true] {
            let (a, n) = block_aad(V1, &id, 5, is_final);
            assert_eq!(n, 24);
            assert_eq!(&a[16..n], &[0, 0, 0, 0, 0, 0, 0, 5]);
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn golden_v2_bodies_match_the_python_reference() {
        let fixture = include_str!("../../../tests/fixtures/content_v2.hex");
        let line = |name: &str| {
            fixture
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|rest| unhex(rest.trim())))
                .unwrap()
        };
        let aead = new_aead(CipherSuite::Aes256Gcm, &[7; 32]);
        let c = FileContent {
            aead: &*aead,
            file_id: [0x11; 16],
            layout: layout(0, V2),
        };
        // Seal the same blocks here with the same fixed nonces.
        let mut empty = vec![0u8; 28];
        c.seal_block(0, true, &[0x30; 12], &mut empty);
        assert_eq!(empty, line("empty "));
        let plain: Vec<u8> = (0..4106).map(|i| (i * 7 % 251) as u8).collect();
        let mut body = vec![0u8; 4124 + 38];
        body[12..4108].copy_from_slice(&plain[..4096]);
        body[4124 + 12..4124 + 22].copy_from_slice(&plain[4096..]);
        c.seal_block(0, false, &[0x20; 12], &mut body[..4124]);
        c.seal_block(1, true, &[0x21; 12], &mut body[4124..]);
        assert_eq!(body, line("file "));
        // And the library reads the reference bytes.
        assert_eq!(contents(&c, line("empty ")).unwrap(), b"");
        assert_eq!(contents(&c, line("file ")).unwrap(), plain);
        // Cut to one block: block 0 carries flag 00, so it fails as final.
        assert_eq!(corrupt(contents(&c, line("file ")[..4124].to_vec())), 0);
        // Read as v1 (version bytes flipped 2 -> 1): every block fails.
        let v1 = FileContent {
            layout: layout(0, V1),
            ..c
        };
        let io = MemIo::new(line("file "));
        assert_eq!(corrupt(v1.read(&io, 0, 1)), 0);
        assert_eq!(corrupt(v1.read(&io, 4096, 1)), 1);
    }

    #[test]
    fn cutting_whole_blocks_is_detected() {
        let fx = Fx::new();
        for h in [0u64, 1024] {
            let c = fx.content(h, V2);
            for size in [4096usize, 5 * 4096, 5 * 4096 + 100] {
                let io = v2_file(&c, size);
                let clean = io.bytes();
                let blocks = Layout::final_block(size as u64) + 1;
                // Keep j whole blocks (remove blocks - j of them).
                for j in 1..blocks {
                    let bytes = clean[..c.layout.block_offset(j) as usize].to_vec();
                    let io = MemIo::new(bytes.clone());
                    assert_eq!(c.plain_size(&io).unwrap(), j * 4096);
                    // The new last block was sealed as non-final.
                    assert_eq!(corrupt(c.read(&io, (j - 1) * 4096, 1)), j - 1);
                    assert_eq!(corrupt(contents(&c, bytes)), j - 1);
                    // Earlier blocks still read.
                    if j > 1 {
                        assert_eq!(c.read(&io, 0, 10).unwrap(), &pattern(size, 1)[..10]);
                    }
                    // Writes touching the false final block fail too.
                    assert!(c.write(&io, (j - 1) * 4096 + 5, b"x").is_err());
                    assert!(c.write(&io, j * 4096 + 5, b"x").is_err());
                }
                // Cut to exactly the header.
                let bytes = clean[..h as usize].to_vec();
                if h == 0 {
                    // Documented gap: 0 bytes is the header-less empty file.
                    assert_eq!(contents(&c, bytes).unwrap(), b"");
                } else {
                    assert_eq!(corrupt(c.plain_size(&MemIo::new(bytes))), 0);
                }
                // Cut to look like an empty file (header + 28 bytes).
                let bytes = clean[..h as usize + 28].to_vec();
                assert_eq!(c.plain_size(&MemIo::new(bytes.clone())).unwrap(), 0);
                assert_eq!(corrupt(c.read(&MemIo::new(bytes), 0, 10)), 0);
            }
            // The empty file cut to its header.
            if h > 0 {
                let io = v2_file(&c, 0);
                assert_eq!(contents(&c, io.bytes()).unwrap(), b"");
                let bytes = io.bytes()[..h as usize].to_vec();
                assert_eq!(corrupt(c.plain_size(&MemIo::new(bytes))), 0);
            }
        }
    }

    #[test]
    fn zeroed_final_block_is_detected_but_inner_holes_read_as_zeros() {
        let fx = Fx::new();
        for h in [0u64, 1024] {
            let c = fx.content(h, V2);
            for size in [0usize, 100, 4096, 3 * 4096, 3 * 4096 + 7] {
                let io = v2_file(&c, size);
                let mut bytes = io.bytes();
                let f = Layout::final_block(size as u64);
                let start = c.layout.block_offset(f) as usize;
                bytes[start..].fill(0);
                assert_eq!(corrupt(contents(&c, bytes)), f, "size {size}");
                if f > 0 {
                    // Zeroing block 0 instead: a hole, allowed.
                    let mut bytes = io.bytes();
                    bytes[h as usize..h as usize + 4124].fill(0);
                    let mut want = pattern(size, 1);
                    want[..4096].fill(0);
                    assert_eq!(contents(&c, bytes).unwrap(), want);
                }
            }
        }
    }

    #[test]
    fn blocks_from_other_positions_or_files_fail() {
        let fx = Fx::new();
        let c = fx.content(1024, V2);
        let size = 4 * 4096 + 50;
        let clean = v2_file(&c, size).bytes();
        let at = |i: u64| c.layout.block_offset(i) as usize;
        // Inner block 1 copied over inner block 2.
        let mut bytes = clean.clone();
        bytes.copy_within(at(1)..at(2), at(2));
        assert_eq!(corrupt(contents(&c, bytes)), 2);
        // Final block (4) moved to position 3 and the file cut there: the
        // block number differs.
        let mut bytes = clean.clone();
        let last = clean[at(4)..].to_vec();
        bytes.truncate(at(3));
        bytes.extend_from_slice(&last);
        assert_eq!(corrupt(contents(&c, bytes)), 3);
        // A full inner block put at the final position of a file of that
        // length (4 blocks: block 3 is inner, sealed 00).
        let mut bytes = clean.clone();
        bytes.truncate(at(4));
        assert_eq!(corrupt(contents(&c, bytes)), 3);
        // Same key, other file id: a final block transplanted from it.
        let other = FileContent {
            file_id: [0x22; 16],
            ..fx.content(1024, V2)
        };
        let foreign = v2_file(&other, size).bytes();
        let mut bytes = clean.clone();
        bytes[at(4)..].copy_from_slice(&foreign[at(4)..]);
        assert_eq!(corrupt(contents(&c, bytes)), 4);
        assert_eq!(corrupt(contents(&other, clean.clone())), 0);
    }

    #[test]
    fn version_flipped_from_2_to_1_fails_every_block() {
        let fx = Fx::new();
        for h in [0u64, 1024] {
            let c2 = fx.content(h, V2);
            let c1 = fx.content(h, V1);
            let size = 3 * 4096 + 10;
            let io = v2_file(&c2, size);
            for block in 0..4u64 {
                assert_eq!(corrupt(c1.read(&io, block * 4096, 1)), block);
            }
            // And the other way: v1 blocks do not open as v2.
            let v1 = MemIo::new(vec![0; h as usize]);
            c1.write(&v1, 0, &pattern(size, 2)).unwrap();
            for block in 0..4u64 {
                assert_eq!(corrupt(c2.read(&v1, block * 4096, 1)), block);
            }
        }
    }

    #[test]
    fn empty_file_states_v2() {
        let fx = Fx::new();
        let c = fx.content(1024, V2);
        // Header-less: size 0, refuses to grow, truncate(0) keeps it so.
        let io = MemIo::new(Vec::new());
        assert_eq!(c.plain_size(&io).unwrap(), 0);
        assert!(c.read(&io, 0, 10).unwrap().is_empty());
        c.truncate(&io, 0).unwrap();
        assert_eq!(io.len().unwrap(), 0);
        assert!(matches!(
            c.write(&io, 0, b"x"),
            Err(ContentError::MissingHeader { .. })
        ));
        // Header only (a crash before the empty block was written): damaged,
        // repaired by truncate(0).
        let io = MemIo::new(vec![0xA5; 1024]);
        assert_eq!(corrupt(c.plain_size(&io)), 0);
        assert!(c.write(&io, 0, b"x").is_err());
        c.truncate(&io, 0).unwrap();
        assert_eq!(io.len().unwrap(), 1024 + 28);
        assert!(c.read(&io, 0, 10).unwrap().is_empty());
        // Data, then truncate(0): header + the empty final block.
        c.write(&io, 0, &pattern(9000, 3)).unwrap();
        c.truncate(&io, 0).unwrap();
        assert_eq!(io.len().unwrap(), 1024 + 28);
        assert!(c.read(&io, 0, 10).unwrap().is_empty());
        // truncate(0) also repairs a torn tail.
        c.write(&io, 0, &pattern(9000, 3)).unwrap();
        io.set_len(1024 + 4124 + 5).unwrap();
        assert!(c.plain_size(&io).is_err());
        c.truncate(&io, 0).unwrap();
        assert_eq!(contents(&c, io.bytes()).unwrap(), b"");
        // Xattr layout, backing 0 (no block yet): truncate(0) writes the
        // empty final block (what a new file gets), once.
        let c0 = fx.content(0, V2);
        let io = MemIo::new(Vec::new());
        c0.truncate(&io, 0).unwrap();
        assert_eq!(io.len().unwrap(), 28);
        assert_eq!(contents(&c0, io.bytes()).unwrap(), b"");
        let first = io.bytes();
        c0.truncate(&io, 0).unwrap();
        assert_eq!(io.bytes(), first);
        // A write past 0 and a truncate up both end in a sealed final block.
        let io = MemIo::new(Vec::new());
        c0.write(&io, 5000, b"abc").unwrap();
        let mut want = vec![0u8; 5003];
        want[5000..].copy_from_slice(b"abc");
        assert_eq!(contents(&c0, io.bytes()).unwrap(), want);
        assert!(is_hole(&io.bytes()[..4124]));
        let io = MemIo::new(Vec::new());
        c0.truncate(&io, 9000).unwrap();
        assert_eq!(io.len().unwrap(), c0.layout.backing_len(9000));
        assert_eq!(contents(&c0, io.bytes()).unwrap(), vec![0u8; 9000]);
        assert!(!is_hole(&io.bytes()[2 * 4124..]));
    }

    #[test]
    fn truncate_up_is_o1_and_ends_in_a_sealed_final_block() {
        let fx = Fx::new();
        let c = fx.content(1024, V2);
        let io = v2_file(&c, 100);
        let (r, w) = (
            io.reads.load(Ordering::Relaxed),
            io.writes.load(Ordering::Relaxed),
        );
        let far = 1u64 << 24;
        c.truncate(&io, far + 10).unwrap();
        // Read F; pad F, write the new final block, re-seal F.
        assert_eq!(io.reads.load(Ordering::Relaxed), r + 1);
        assert_eq!(io.writes.load(Ordering::Relaxed), w + 3);
        let bytes = io.bytes();
        let f = Layout::final_block(far + 10);
        assert!(is_hole(
            &bytes[c.layout.block_offset(1) as usize..c.layout.block_offset(f) as usize]
        ));
        assert!(!is_hole(&bytes[c.layout.block_offset(f) as usize..]));
        assert_eq!(c.read(&io, far, 100).unwrap(), vec![0u8; 10]);
        assert_eq!(c.read(&io, 0, 100).unwrap(), pattern(100, 1));
    }

    #[test]
    fn io_pattern_v2() {
        let fx = Fx::new();
        let c = fx.content(1024, V2);
        let io = v2_file(&c, 3 * 4096);
        let count = || {
            (
                io.reads.load(Ordering::Relaxed),
                io.writes.load(Ordering::Relaxed),
            )
        };
        let (r, w) = count();
        // Full blocks inside the file, and the final block fully covered:
        // no read, one write each.
        c.write(&io, 4096, &pattern(4096, 2)).unwrap();
        c.write(&io, 0, &pattern(3 * 4096, 3)).unwrap();
        // A write covering the old final block and extending: one write.
        c.write(&io, 2 * 4096, &pattern(2 * 4096, 4)).unwrap();
        assert_eq!(count(), (r, w + 3));
        // Appending past a full final block: read it, write the new blocks,
        // re-seal it as inner.
        c.write(&io, 4 * 4096, &pattern(4096, 5)).unwrap();
        assert_eq!(count(), (r + 1, w + 5));
        // Appending past the (full) final block again: read, write, re-seal;
        // then past the now partial one: read, pad, write, re-seal.
        c.write(&io, 5 * 4096, b"ab").unwrap();
        assert_eq!(count(), (r + 2, w + 7));
        c.write(&io, 6 * 4096, b"cd").unwrap();
        assert_eq!(count(), (r + 3, w + 10));
        let mut want = pattern(3 * 4096, 3)[..2 * 4096].to_vec();
        want.extend_from_slice(&pattern(2 * 4096, 4));
        want.extend_from_slice(&pattern(4096, 5));
        want.extend_from_slice(b"ab");
        want.resize(6 * 4096, 0);
        want.extend_from_slice(b"cd");
        assert_eq!(contents(&c, io.bytes()).unwrap(), want);
    }

    #[test]
    fn punch_hole_keeps_the_final_block_sealed() {
        let fx = Fx::new();
        for size in [4096u64, 3 * 4096, 3 * 4096 + 100] {
            let c = fx.content(1024, V2);
            let io = v2_file(&c, size as usize);
            c.punch_hole(&io, 0, size).unwrap();
            let bytes = io.bytes();
            let f = Layout::final_block(size);
            assert!(!is_hole(&bytes[c.layout.block_offset(f) as usize..]));
            if f > 0 {
                assert!(is_hole(&bytes[1024..c.layout.block_offset(f) as usize]));
            }
            assert_eq!(contents(&c, bytes).unwrap(), vec![0u8; size as usize]);
        }
    }

    /// A `MemIo` that "crashes" after `budget` mutating calls: later
    /// `write_at`/`set_len`/`zero_range` calls fail and change nothing.
    struct CrashIo {
        inner: MemIo,
        budget: usize,
        calls: AtomicUsize,
    }

    impl CrashIo {
        fn new(bytes: Vec<u8>, budget: usize) -> CrashIo {
            CrashIo {
                inner: MemIo::new(bytes),
                budget,
                calls: AtomicUsize::new(0),
            }
        }
        fn allow(&self) -> io::Result<()> {
            if self.calls.fetch_add(1, Ordering::Relaxed) < self.budget {
                Ok(())
            } else {
                Err(io::Error::other("simulated crash"))
            }
        }
    }

    impl PositionalIo for CrashIo {
        fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
            self.inner.read_at(buf, off)
        }
        fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
            self.allow()?;
            self.inner.write_at(buf, off)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.allow()?;
            self.inner.set_len(len)
        }
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn zero_range(&self, off: u64, len: u64) -> io::Result<()> {
            self.allow()?;
            self.inner.zero_range(off, len)
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Write(u64, usize),
        Truncate(u64),
    }

    impl Op {
        fn run(self, c: &FileContent, io: &dyn PositionalIo) -> Result<(), ContentError> {
            match self {
                Op::Write(off, len) => c.write(io, off, &pattern(len, 9)),
                Op::Truncate(size) => c.truncate(io, size),
            }
        }
        fn model(self, old: &[u8]) -> Vec<u8> {
            let mut m = old.to_vec();
            match self {
                Op::Write(off, len) => {
                    let (off, end) = (off as usize, off as usize + len);
                    if m.len() < end {
                        m.resize(end, 0);
                    }
                    m[off..end].copy_from_slice(&pattern(len, 9));
                }
                Op::Truncate(size) => m.resize(size as usize, 0),
            }
            m
        }
    }

    /// Runs `op` on a v2 file of `size` bytes, crashing after each of its
    /// mutating calls in turn, and checks what the file then reads as:
    ///
    /// - a write, or a truncate that grows: the old content, the new
    ///   content, or the old content zero-padded to the end of its final
    ///   block (after step (a)); and re-running the op gives the new content;
    /// - a shrink to a multiple of 4096: the old or the new content, and
    ///   re-running gives the new content;
    /// - a shrink to another size `S`: the old or the new content, or (the
    ///   crash between cut and re-seal) size `S` with every block before the
    ///   new final block `S / 4096` reading as the new content and that one
    ///   block failing with `Corrupt` naming it;
    /// - a truncate to 0: the old or the new (empty) content, or (between
    ///   cut and the empty block's write) the header alone, which
    ///   `plain_size` reports as `Corrupt { block: 0 }`; re-running the
    ///   truncate repairs every state to the empty file.
    fn check_crashes(c: &FileContent, size: usize, op: Op) {
        let before = v2_file(c, size).bytes();
        let old = pattern(size, 1);
        let new = op.model(&old);
        let full = CrashIo::new(before.clone(), usize::MAX);
        op.run(c, &full).unwrap();
        assert_eq!(contents(c, full.inner.bytes()).unwrap(), new, "{op:?}");
        let calls = full.calls.load(Ordering::Relaxed);
        let padded = {
            let mut p = old.clone();
            p.resize(((Layout::final_block(size as u64) + 1) * BLOCK) as usize, 0);
            p
        };
        for budget in 0..calls {
            let io = CrashIo::new(before.clone(), budget);
            assert!(op.run(c, &io).is_err());
            let after = io.inner.bytes();
            let got = contents(c, after.clone());
            let what = format!("size {size}, {op:?}, crash after {budget} of {calls} calls");
            let is_old_or_new = matches!(&got, Ok(g) if *g == old || *g == new);
            match op {
                Op::Truncate(s) if (s as usize) < size && s % BLOCK != 0 && s > 0 => {
                    if !is_old_or_new {
                        let f = s / BLOCK;
                        let m = MemIo::new(after);
                        assert_eq!(c.plain_size(&m).unwrap(), s, "{what}");
                        assert_eq!(
                            c.read(&m, 0, (f * BLOCK) as usize).unwrap(),
                            new[..(f * BLOCK) as usize],
                            "{what}"
                        );
                        assert_eq!(corrupt(c.read(&m, f * BLOCK, 1)), f, "{what}");
                    }
                    continue; // re-running is a no-op on the size
                }
                Op::Truncate(0) => {
                    if !is_old_or_new {
                        assert_eq!(c.layout.header_len, 1024, "{what}");
                        assert_eq!(after.len(), 1024, "{what}");
                        assert_eq!(corrupt(got), 0, "{what}");
                    }
                }
                Op::Truncate(s) if (s as usize) < size => {
                    assert!(is_old_or_new, "{what}: {got:?}");
                }
                _ => {
                    assert!(
                        is_old_or_new || matches!(&got, Ok(g) if *g == padded),
                        "{what}: {:?}",
                        got.map(|g| g.len())
                    );
                }
            }
            let redo = MemIo::new(io.inner.bytes());
            op.run(c, &redo).unwrap();
            assert_eq!(contents(c, redo.bytes()).unwrap(), new, "{what}, re-run");
        }
    }

    #[test]
    fn crash_after_each_write_call_leaves_old_new_or_padded() {
        let fx = Fx::new();
        for h in [0u64, 1024] {
            let c = fx.content(h, V2);
            for size in [0usize, 1, 100, 4095, 4096, 4097, 8192, 9000] {
                let s = size as u64;
                let mut ops = vec![
                    Op::Write(0, 10),
                    Op::Write(s, 10),
                    Op::Write(s + 5000, 3),
                    Op::Write(s + 20_000, 5000),
                    Op::Write(100, 9000),
                    Op::Write(s.saturating_sub(10), 8200),
                    Op::Truncate(s + 1),
                    Op::Truncate(s + 4096),
                    Op::Truncate(s + 50_000),
                    Op::Truncate(s / 2),
                    Op::Truncate(s.saturating_sub(1)),
                    Op::Truncate(s / BLOCK * BLOCK),
                    Op::Truncate(4096),
                    Op::Truncate(0),
                ];
                ops.dedup_by_key(|op| format!("{op:?}"));
                for op in ops {
                    check_crashes(&c, size, op);
                }
            }
        }
    }
}

#[cfg(test)]
mod enospc_tests {
    use super::*;
    use crate::cipher::{CipherSuite, new_aead};

    fn is_enospc(e: &ContentError) -> bool {
        matches!(e, ContentError::Io(io) if io.raw_os_error() == Some(nix::errno::Errno::ENOSPC as i32))
    }

    /// Out of space, writes and growing truncates fail with ENOSPC and
    /// leave every stored byte as it was (no torn block), in both format
    /// versions and header placements; what fits still succeeds.
    #[test]
    fn out_of_space_fails_with_enospc_and_changes_nothing() {
        let aead = new_aead(CipherSuite::Aes256Gcm, &[7u8; 32]);
        for (header_len, version) in [0u64, 1024]
            .into_iter()
            .flat_map(|h| [(h, FormatVersion::V1), (h, FormatVersion::V2)])
        {
            let c = FileContent {
                aead: aead.as_ref(),
                file_id: [5; 16],
                layout: Layout {
                    header_len,
                    version,
                },
            };
            for size in [0u64, 100, 4096, 10_000] {
                let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8 + 1).collect();
                let setup = MemIo::new(vec![0xA5; header_len as usize]);
                c.truncate(&setup, 0).unwrap();
                c.write(&setup, 0, &data).unwrap();
                let before = setup.bytes();
                // Room for a little more than is stored, never a block.
                let cap = before.len() as u64 + 2000;
                let what = format!("{version:?}, header {header_len}, size {size}");
                type Op<'a> = Box<dyn Fn(&MemIo) -> Result<(), ContentError> + 'a>;
                let mut ops: Vec<(&str, Op)> = vec![
                    ("append", Box::new(|io| c.write(io, size, &[9u8; 8192]))),
                    (
                        "overlap end",
                        Box::new(|io| c.write(io, size.saturating_sub(50), &[9u8; 5000])),
                    ),
                    (
                        "past EOF",
                        Box::new(|io| c.write(io, size + 20_000, &[9u8; 300])),
                    ),
                    ("big", Box::new(|io| c.write(io, 0, &vec![9u8; 1 << 20]))),
                ];
                if version == FormatVersion::V2 {
                    // v1 grows sparse (set_len) and only re-seals the old
                    // partial block, which fits; v2 writes a final block at
                    // the new end.
                    ops.push(("truncate up", Box::new(|io| c.truncate(io, size + 50_000))));
                }
                for (name, op) in &ops {
                    let io = MemIo::with_capacity(before.clone(), cap);
                    let err = op(&io).expect_err(&format!("{what}: {name} fits?"));
                    assert!(is_enospc(&err), "{what}: {name}: {err:?}");
                    assert!(
                        io.bytes() == before,
                        "{what}: {name} changed the stored bytes"
                    );
                    assert_eq!(
                        c.read(&io, 0, size as usize + 10).unwrap(),
                        data,
                        "{what}: {name}"
                    );
                }
                // What fits is written; the disk has not been damaged.
                let io = MemIo::with_capacity(before.clone(), cap);
                c.write(&io, size, &[3u8; 1000]).unwrap();
                let mut want = data.clone();
                want.extend_from_slice(&[3u8; 1000]);
                assert_eq!(
                    c.read(&io, 0, size as usize + 2000).unwrap(),
                    want,
                    "{what}"
                );
                // Shrinking needs no new space.
                let io = MemIo::with_capacity(before.clone(), before.len() as u64);
                c.truncate(&io, size / 2).unwrap();
                assert_eq!(
                    c.read(&io, 0, size as usize).unwrap(),
                    data[..(size / 2) as usize],
                    "{what}"
                );
            }
        }
    }

    /// The in-memory model tears an unreserved write, as a full disk does:
    /// it is what the test above would see without reservation.
    #[test]
    fn stored_range_covers_whole_blocks() {
        let l = Layout {
            header_len: 1024,
            version: FormatVersion::V2,
        };
        assert_eq!(l.stored_range(0, 1), (1024, 1024 + 4124));
        assert_eq!(l.stored_range(4095, 2), (1024, 1024 + 2 * 4124));
        assert_eq!(
            l.stored_range(8192, 4096),
            (1024 + 2 * 4124, 1024 + 3 * 4124)
        );
        assert_eq!(l.stored_range(100, 0), (1024, 1024 + 4124));
        assert_eq!(l.stored_range(4096, 0), (1024 + 4124, 1024 + 4124));
    }

    #[test]
    fn mem_io_with_capacity_tears_unreserved_writes() {
        let io = MemIo::with_capacity(vec![1; 10], 16);
        let err = io.write_at(&[2; 10], 10).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::errno::Errno::ENOSPC as i32));
        assert_eq!(io.len().unwrap(), 16);
        assert!(io.reserve(10, 10).is_err());
        io.reserve(0, 16).unwrap();
    }
}
