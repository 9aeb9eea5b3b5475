//! The image of a volume or snapshot, and the copies between images.
//!
//! An encrypted image is a kmsfs **format version 1** file
//! (docs/FORMAT.md): the 1024-byte header, whose slot A holds the data key
//! wrapped by the CMK (encryption context `aws:ebs:id`), then one sealed
//! block per 4 KiB of the volume, bound by its AAD to the image's file id
//! and its block number. A block device has a fixed size, always a
//! multiple of 4 KiB, so every block is full; the size is the pool's record
//! and an image of another length is refused rather than read (version 2's
//! final-block flag, which authenticates a file's length, would have to be
//! sealed at creation, when EBS holds no plaintext key). A block never
//! written is a hole and reads as zeros, as a new EBS volume does.
//!
//! An unencrypted image is the volume's bytes as they are, sparse.
//!
//! The file id doubles as the data key's lineage id (EC2's
//! `DataEncryptionKeyId`): images that share a data key are byte copies of
//! each other and share the file id; a new data key always comes with a new
//! file id.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use kmsfs_format::cipher::{BlockAead, CipherSuite, DataKey, new_aead};
use kmsfs_format::content::{BLOCK_SIZE, FileContent, Layout, STORED_BLOCK_LEN};
use kmsfs_format::header::{FileHeader, FormatVersion, HEADER_LEN, WrappedKey, random_file_id};
use nix::unistd::Whence;

use super::error::{EbsError, Result};

/// The cipher of every encrypted image (EBS uses AES-256).
pub const SUITE: CipherSuite = CipherSuite::Aes256Gcm;

const BLOCK: u64 = BLOCK_SIZE as u64;

/// The layout of an encrypted image's blocks.
pub fn layout() -> Layout {
    Layout {
        header_len: HEADER_LEN as u64,
        version: FormatVersion::V1,
    }
}

/// The backing length of an image of `size_bytes` (a multiple of 4 KiB).
pub fn image_len(size_bytes: u64, encrypted: bool) -> u64 {
    if encrypted {
        layout().backing_len(size_bytes)
    } else {
        size_bytes
    }
}

/// The lineage id of a data key, from the file id of its images.
pub fn data_key_id(file_id: &[u8; 16]) -> String {
    let hex: String = file_id.iter().map(|b| format!("{b:02x}")).collect();
    format!("dek-{hex}")
}

/// The header of a new encrypted image: a new file id and `wrapped` in
/// slot A.
pub fn new_header(key_arn: &str, key_version: u32, blob: Vec<u8>) -> Result<FileHeader> {
    FileHeader::new(
        FormatVersion::V1,
        SUITE,
        random_file_id(),
        WrappedKey {
            generation: 1,
            key_id: key_arn.to_owned(),
            key_version,
            blob,
        },
    )
    .map_err(|e| EbsError::Internal(format!("cannot lay out the image header: {e}")))
}

/// Writes `header` and sizes `file` as an empty encrypted image of
/// `size_bytes` (sparse: no block is allocated), then makes it durable.
pub fn init_sealed(file: &File, header: &FileHeader, size_bytes: u64) -> Result<()> {
    let bytes = header
        .encode()
        .map_err(|e| EbsError::Internal(format!("cannot encode the image header: {e}")))?;
    let io = |e: io::Error| EbsError::storage("cannot write the image", e);
    std::os::unix::fs::FileExt::write_all_at(file, &bytes, 0).map_err(io)?;
    file.set_len(image_len(size_bytes, true)).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Sizes `file` as an empty unencrypted image.
pub fn init_plain(file: &File, size_bytes: u64) -> Result<()> {
    let io = |e: io::Error| EbsError::storage("cannot write the image", e);
    file.set_len(size_bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads and checks an encrypted image's header.
pub fn read_header(file: &File) -> Result<FileHeader> {
    let mut buf = vec![0u8; HEADER_LEN];
    let n = kmsfs_format::content::PositionalIo::read_at(file, &mut buf, 0)
        .map_err(|e| EbsError::storage("cannot read the image header", e))?;
    if n != HEADER_LEN {
        return Err(EbsError::Storage(
            "the image is shorter than its header".into(),
        ));
    }
    let header = FileHeader::decode(&buf)
        .map_err(|e| EbsError::Storage(format!("the image header is damaged: {e}")))?;
    if header.version != FormatVersion::V1 || header.suite != SUITE {
        return Err(EbsError::Storage(format!(
            "the image header names format {:?} and cipher {}, not an EBS image",
            header.version,
            header.suite.name()
        )));
    }
    Ok(header)
}

/// The wrapped data key of an encrypted image.
pub fn wrapped_key(header: &FileHeader) -> Result<&WrappedKey> {
    header
        .active()
        .ok_or_else(|| EbsError::Storage("the image holds no wrapped data key".into()))
}

/// Refuses an image whose length is not the one its record implies (cut,
/// grown, or another file put in its place).
pub fn check_len(file: &File, size_bytes: u64, encrypted: bool) -> Result<()> {
    let len = file
        .metadata()
        .map_err(|e| EbsError::storage("cannot stat the image", e))?
        .len();
    let expected = image_len(size_bytes, encrypted);
    if len != expected {
        return Err(EbsError::Storage(format!(
            "the image is {len} bytes long, its volume needs {expected}: refusing to use it"
        )));
    }
    Ok(())
}

/// Destroys an encrypted image's wrapped data key in place (both header
/// slots zeroed and synced) before the file is removed: even a copy of the
/// file's blocks that survives somewhere can no longer be decrypted by
/// anyone, which is what deleting an EBS volume means (crypto-erase).
pub fn crypto_erase(file: &File) -> Result<()> {
    let zeros = vec![0u8; HEADER_LEN];
    std::os::unix::fs::FileExt::write_all_at(file, &zeros, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| EbsError::storage("cannot erase the image's data key", e))
}

/// How the blocks of an image are stored: as they are, or sealed under a
/// data key.
pub enum Codec {
    Plain,
    Sealed {
        aead: Box<dyn BlockAead>,
        file_id: [u8; 16],
    },
}

impl Codec {
    pub fn sealed(key: &DataKey, file_id: [u8; 16]) -> Codec {
        Codec::Sealed {
            aead: new_aead(SUITE, key.as_bytes()),
            file_id,
        }
    }

    fn content(&self) -> Option<FileContent<'_>> {
        match self {
            Codec::Plain => None,
            Codec::Sealed { aead, file_id } => Some(FileContent {
                aead: aead.as_ref(),
                file_id: *file_id,
                layout: layout(),
            }),
        }
    }

    /// Backing bytes per 4 KiB block, and where block 0 starts.
    fn geometry(&self) -> (u64, u64) {
        match self {
            Codec::Plain => (BLOCK, 0),
            Codec::Sealed { .. } => (STORED_BLOCK_LEN as u64, HEADER_LEN as u64),
        }
    }

    /// Reads `len` bytes of the volume at `offset` (within its size).
    pub fn read(&self, file: &File, offset: u64, len: usize) -> Result<Vec<u8>> {
        match self.content() {
            None => {
                let mut buf = vec![0u8; len];
                let n = kmsfs_format::content::PositionalIo::read_at(file, &mut buf, offset)
                    .map_err(|e| EbsError::storage("cannot read the image", e))?;
                buf.truncate(n);
                Ok(buf)
            }
            Some(content) => content
                .read(file, offset, len)
                .map_err(|e| EbsError::Storage(format!("cannot read the image: {e}"))),
        }
    }

    /// Writes `data` into the volume at `offset` (within its size).
    pub fn write(&self, file: &File, offset: u64, data: &[u8]) -> Result<()> {
        match self.content() {
            None => std::os::unix::fs::FileExt::write_all_at(file, data, offset)
                .map_err(|e| EbsError::storage("cannot write the image", e)),
            Some(content) => content
                .write(file, offset, data)
                .map_err(|e| EbsError::Storage(format!("cannot write the image: {e}"))),
        }
    }
}

/// The runs of `file` that hold data (`SEEK_DATA`/`SEEK_HOLE`), as backing
/// byte ranges; the whole file where the filesystem cannot tell.
pub fn data_extents(file: &File) -> Result<Vec<(u64, u64)>> {
    let len = file
        .metadata()
        .map_err(|e| EbsError::storage("cannot stat the image", e))?
        .len();
    let fd = file.as_fd();
    let mut out = Vec::new();
    let mut pos: u64 = 0;
    while pos < len {
        let Ok(start) = i64::try_from(pos) else { break };
        let data = match nix::unistd::lseek(fd, start, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(_) => return Ok(vec![(0, len)]),
        };
        let hole = match nix::unistd::lseek(fd, data as i64, Whence::SeekHole) {
            Ok(h) => h as u64,
            Err(_) => len,
        };
        if hole <= data {
            break;
        }
        out.push((data, hole.min(len)));
        pos = hole;
    }
    Ok(out)
}

/// Copies an image byte for byte into the empty `dst`: a reflink where the
/// filesystem shares extents, else only the runs that hold data, so holes
/// stay holes. Both images then share the data key and the file id. Returns
/// whether it was a reflink.
pub fn copy_image(src: &File, dst: &File, progress: &mut dyn FnMut(u64, u64)) -> Result<bool> {
    let len = src
        .metadata()
        .map_err(|e| EbsError::storage("cannot stat the image", e))?
        .len();
    let io = |e: io::Error| EbsError::storage("cannot copy the image", e);
    if kmsfs_sys::clone_file(src.as_fd(), dst.as_fd()).is_ok() {
        progress(len, len);
        dst.sync_all().map_err(io)?;
        return Ok(true);
    }
    dst.set_len(len).map_err(io)?;
    let extents = data_extents(src)?;
    let total: u64 = extents.iter().map(|(s, e)| e - s).sum();
    let mut done = 0;
    let mut buf = vec![0u8; 1 << 20];
    for (start, end) in extents {
        let mut off = start;
        while off < end {
            let n = usize::try_from((end - off).min(buf.len() as u64)).unwrap_or(buf.len());
            let got = kmsfs_format::content::PositionalIo::read_at(src, &mut buf[..n], off)
                .map_err(io)?;
            if got == 0 {
                break;
            }
            // A run of zeros the filesystem stored anyway stays a hole.
            if buf[..got].iter().any(|&b| b != 0) {
                std::os::unix::fs::FileExt::write_all_at(dst, &buf[..got], off).map_err(io)?;
            }
            off += got as u64;
            done += got as u64;
            progress(done, total);
        }
    }
    dst.sync_all().map_err(io)?;
    Ok(false)
}

/// Copies the volume held by `src` (read through `from`) into `dst`
/// (written through `to`), block by block: every block that holds data is
/// opened and sealed again (under `to`'s key and file id, with fresh
/// nonces), holes stay holes. `dst` must already be initialised
/// ([`init_sealed`] or [`init_plain`]) for `size_bytes`.
pub fn transcode(
    src: &File,
    from: &Codec,
    dst: &File,
    to: &Codec,
    size_bytes: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let (stored, base) = from.geometry();
    let mut blocks: Vec<(u64, u64)> = Vec::new();
    for (start, end) in data_extents(src)? {
        // Backing range → the blocks it touches.
        let first = start.saturating_sub(base) / stored;
        let last = end.saturating_sub(base).div_ceil(stored);
        let last = last.min(size_bytes / BLOCK);
        if first < last {
            match blocks.last_mut() {
                Some((_, prev_end)) if *prev_end >= first => *prev_end = (*prev_end).max(last),
                _ => blocks.push((first, last)),
            }
        }
    }
    let total: u64 = blocks.iter().map(|(s, e)| e - s).sum::<u64>() * BLOCK;
    let mut done = 0;
    const BATCH: u64 = 256;
    for (first, last) in blocks {
        let mut b = first;
        while b < last {
            let n = (last - b).min(BATCH);
            let plain = from.read(src, b * BLOCK, usize::try_from(n * BLOCK).unwrap_or(0))?;
            for (i, chunk) in plain.chunks(BLOCK_SIZE).enumerate() {
                if chunk.iter().any(|&x| x != 0) {
                    to.write(dst, (b + i as u64) * BLOCK, chunk)?;
                }
            }
            b += n;
            done += n * BLOCK;
            progress(done, total);
        }
    }
    dst.sync_all()
        .map_err(|e| EbsError::storage("cannot sync the copy", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 8 << 20;

    fn sealed_image(dir: &std::path::Path, name: &str) -> (File, Codec, FileHeader) {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join(name))
            .unwrap();
        let header = new_header("arn:aws:kms:local:000000000000:key/k", 1, vec![7; 40]).unwrap();
        init_sealed(&file, &header, SIZE).unwrap();
        let codec = Codec::sealed(&DataKey::random(), header.file_id);
        (file, codec, header)
    }

    #[test]
    fn a_new_image_is_sparse_reads_zeros_and_keeps_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let (file, codec, header) = sealed_image(dir.path(), "a");
        check_len(&file, SIZE, true).unwrap();
        assert_eq!(codec.read(&file, 4096 * 100, 4096).unwrap(), vec![0; 4096]);
        let back = read_header(&file).unwrap();
        assert_eq!(back.file_id, header.file_id);
        assert_eq!(wrapped_key(&back).unwrap().blob, vec![7; 40]);
        use std::os::unix::fs::MetadataExt;
        assert!(file.metadata().unwrap().blocks() * 512 < 64 * 1024);
        assert!(check_len(&file, SIZE * 2, true).is_err());
    }

    #[test]
    fn written_blocks_read_back_and_hold_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let (file, codec, _) = sealed_image(dir.path(), "a");
        let marker = b"kmsfs-ebs-marker-0123456789".repeat(200);
        codec.write(&file, 12288 + 100, &marker).unwrap();
        assert_eq!(
            codec.read(&file, 12288 + 100, marker.len()).unwrap(),
            marker
        );
        let raw = std::fs::read(dir.path().join("a")).unwrap();
        assert!(!raw.windows(17).any(|w| w == &marker[..17]));
    }

    #[test]
    fn transcode_reseals_every_block_and_keeps_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, from, _) = sealed_image(dir.path(), "a");
        let data: Vec<u8> = (0..3 * 4096).map(|i| (i % 251) as u8 + 1).collect();
        from.write(&src, 4096 * 1000, &data).unwrap();
        let (dst, to, _) = sealed_image(dir.path(), "b");
        let mut last = (0, 0);
        transcode(&src, &from, &dst, &to, SIZE, &mut |d, t| last = (d, t)).unwrap();
        assert_eq!(last.0, last.1);
        assert_eq!(to.read(&dst, 4096 * 1000, data.len()).unwrap(), data);
        assert_eq!(to.read(&dst, 0, 4096).unwrap(), vec![0; 4096]);
        // No stored block in common: fresh nonces under another key.
        let a = std::fs::read(dir.path().join("a")).unwrap();
        let b = std::fs::read(dir.path().join("b")).unwrap();
        for blk in 1000..1003u64 {
            let at = (HEADER_LEN as u64 + blk * STORED_BLOCK_LEN as u64) as usize;
            let range = at..at + STORED_BLOCK_LEN;
            assert_ne!(a[range.clone()], b[range]);
        }
        // The other key does not open the source.
        assert!(to.read(&src, 4096 * 1000, 4096).is_err());
    }

    #[test]
    fn copy_image_shares_the_key_and_crypto_erase_destroys_it() {
        let dir = tempfile::tempdir().unwrap();
        let (src, codec, header) = sealed_image(dir.path(), "a");
        codec.write(&src, 4096 * 7, &[9u8; 4096]).unwrap();
        let dst = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("b"))
            .unwrap();
        copy_image(&src, &dst, &mut |_, _| {}).unwrap();
        assert_eq!(read_header(&dst).unwrap().file_id, header.file_id);
        assert_eq!(codec.read(&dst, 4096 * 7, 4096).unwrap(), vec![9u8; 4096]);
        crypto_erase(&dst).unwrap();
        assert!(read_header(&dst).is_err());
    }

    #[test]
    fn plain_images_transcode_into_sealed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let src = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("p"))
            .unwrap();
        init_plain(&src, SIZE).unwrap();
        Codec::Plain.write(&src, 8192, b"plain data").unwrap();
        let (dst, to, _) = sealed_image(dir.path(), "s");
        transcode(&src, &Codec::Plain, &dst, &to, SIZE, &mut |_, _| {}).unwrap();
        assert_eq!(&to.read(&dst, 8192, 10).unwrap(), b"plain data");
    }
}
