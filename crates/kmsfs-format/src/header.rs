//! Per-file header: a fixed 1024-byte, hand-laid-out structure holding the
//! cipher suite, the file id and up to two wrapped copies of the data key.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! 0    4   magic "KMSF"
//! 4    2   format version (1 or 2, see [`FormatVersion`])
//! 6    1   cipher suite id
//! 7    1   block shift (12 = 4096-byte blocks)
//! 8    16  file id
//! 24   4   header length (1024)
//! 28   4   reserved, zero
//! 32   496 key slot A
//! 528  496 key slot B
//! ```
//!
//! Two slots make re-wrapping (key rotation) crash-safe: the new wrapped key
//! is written into the slot that is *not* active, with a higher generation,
//! so a torn write damages only the slot being written (detected by its
//! CRC) and readers fall back to the previous one.
//!
//! Integrity: the CRC only detects torn writes and bit rot. Tampering is
//! caught elsewhere: the file id and suite feed the content AEAD (a changed
//! value makes every block fail authentication), and the wrapped blob is
//! authenticated by the key service.

use std::ops::Range;

use super::cipher::{CipherSuite, fill_random};

pub const HEADER_LEN: usize = 1024;
pub const MAGIC: [u8; 4] = *b"KMSF";
/// Format version of a file (header bytes 4..6). It selects the content
/// layout: v1 = blocks bound to file and position; v2 additionally
/// authenticates the file length through a final-block flag in the block
/// AAD (see `content`). The discriminant is the on-disk value.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatVersion {
    V1 = 1,
    V2 = 2,
}

impl FormatVersion {
    /// On-disk value.
    pub fn id(self) -> u16 {
        self as u16
    }

    /// Inverse of [`FormatVersion::id`]; `None` for unknown versions.
    pub fn from_id(id: u16) -> Option<Self> {
        match id {
            1 => Some(FormatVersion::V1),
            2 => Some(FormatVersion::V2),
            _ => None,
        }
    }
}
pub const BLOCK_SHIFT: u8 = 12;
pub const PREAMBLE_LEN: usize = 32;
pub const SLOT_LEN: usize = 496;
pub const SLOT_OFFSETS: [usize; 2] = [PREAMBLE_LEN, PREAMBLE_LEN + SLOT_LEN];
/// Bytes of a slot covered by its CRC (everything before the CRC field).
pub const SLOT_CRC_OFFSET: usize = SLOT_LEN - 4;
/// Fixed slot fields: generation (8) + key_version (4) + key_id_len (1) +
/// blob_len (2).
const SLOT_FIXED: usize = 8 + 4 + 1 + 2;
/// Maximum `key_id.len() + blob.len()` that fits in one slot.
pub const SLOT_PAYLOAD_MAX: usize = SLOT_CRC_OFFSET - SLOT_FIXED;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header must be {HEADER_LEN} bytes, got {0}")]
    BadLength(usize),
    #[error("bad magic: not a kmsfs file")]
    BadMagic,
    #[error("unsupported header format version {0}")]
    UnsupportedVersion(u16),
    #[error("unknown cipher suite id {0}")]
    UnknownSuite(u8),
    #[error("unsupported block shift {0}")]
    UnsupportedBlockShift(u8),
    #[error("header declares length {0}, expected {HEADER_LEN}")]
    BadHeaderLen(u32),
    #[error("reserved header bytes are not zero")]
    ReservedNotZero,
    #[error("no valid key slot (both slots empty or corrupt)")]
    NoValidSlot,
    #[error(
        "key id ({key_id_len} bytes) and wrapped key ({blob_len} bytes) do not fit in a key slot"
    )]
    SlotOverflow { key_id_len: usize, blob_len: usize },
    #[error("key slot generation must be non-zero and below u64::MAX")]
    BadGeneration,
}

/// A data key wrapped (encrypted) by a customer master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Monotonic per-file counter; 0 is reserved for "empty slot".
    pub generation: u64,
    /// CMK id or ARN that wrapped this key (UTF-8, at most 255 bytes).
    pub key_id: String,
    /// Version of the CMK, as reported by the key service.
    pub key_version: u32,
    /// Opaque ciphertext blob from the key service.
    pub blob: Vec<u8>,
}

impl WrappedKey {
    fn check(&self) -> Result<(), HeaderError> {
        let (key_id_len, blob_len) = (self.key_id.len(), self.blob.len());
        if key_id_len > usize::from(u8::MAX) || key_id_len + blob_len > SLOT_PAYLOAD_MAX {
            return Err(HeaderError::SlotOverflow {
                key_id_len,
                blob_len,
            });
        }
        if self.generation == 0 {
            return Err(HeaderError::BadGeneration);
        }
        Ok(())
    }

    /// Serialises into a full slot including CRC. `None` is the empty slot.
    fn encode_slot(slot: Option<&WrappedKey>) -> Result<[u8; SLOT_LEN], HeaderError> {
        let mut out = [0u8; SLOT_LEN];
        if let Some(key) = slot {
            key.check()?;
            out[0..8].copy_from_slice(&key.generation.to_be_bytes());
            out[8..12].copy_from_slice(&key.key_version.to_be_bytes());
            let id = key.key_id.as_bytes();
            // Both casts are bounded by check().
            out[12] = id.len() as u8;
            let mut pos = 13;
            out[pos..pos + id.len()].copy_from_slice(id);
            pos += id.len();
            out[pos..pos + 2].copy_from_slice(&(key.blob.len() as u16).to_be_bytes());
            pos += 2;
            out[pos..pos + key.blob.len()].copy_from_slice(&key.blob);
        }
        // Empty slots get a valid CRC too, so "empty" and "torn" differ.
        let crc = crc32fast::hash(&out[..SLOT_CRC_OFFSET]);
        out[SLOT_CRC_OFFSET..].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }

    /// Parses one slot. `Ok(None)` = valid empty slot; `Err(())` = damaged
    /// (bad CRC or inconsistent fields), which callers treat as absent.
    fn decode_slot(slot: &[u8; SLOT_LEN]) -> Result<Option<WrappedKey>, ()> {
        let stored_crc = u32::from_be_bytes(be(slot, SLOT_CRC_OFFSET));
        if crc32fast::hash(&slot[..SLOT_CRC_OFFSET]) != stored_crc {
            return Err(());
        }
        let generation = u64::from_be_bytes(be(slot, 0));
        let body = &slot[..SLOT_CRC_OFFSET];
        if generation == 0 {
            // An empty slot must be entirely zero; anything else is a bug or
            // damage that happened to keep the CRC valid.
            return if body.iter().all(|&b| b == 0) {
                Ok(None)
            } else {
                Err(())
            };
        }
        let key_version = u32::from_be_bytes(be(slot, 8));
        let key_id_len = usize::from(slot[12]);
        let id_end = 13 + key_id_len;
        // id_end <= 13 + 255, always inside the slot.
        let blob_len = usize::from(u16::from_be_bytes(be(slot, id_end)));
        let blob_start = id_end + 2;
        let blob_end = blob_start + blob_len;
        if key_id_len + blob_len > SLOT_PAYLOAD_MAX {
            return Err(());
        }
        if body[blob_end..].iter().any(|&b| b != 0) {
            return Err(());
        }
        let key_id = std::str::from_utf8(&slot[13..id_end]).map_err(|_| ())?;
        Ok(Some(WrappedKey {
            generation,
            key_id: key_id.to_owned(),
            key_version,
            blob: slot[blob_start..blob_end].to_vec(),
        }))
    }
}

/// Reads a fixed-size big-endian field. Callers pass in-bounds constant or
/// bounds-checked offsets; out of range yields zeros rather than a panic.
fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// The decoded per-file header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// Header bytes 4..6; selects the content layout.
    pub version: FormatVersion,
    pub suite: CipherSuite,
    pub file_id: [u8; 16],
    /// Slot A and slot B. `None` = empty or (after decode) damaged.
    pub slots: [Option<WrappedKey>; 2],
}

/// 16 random bytes from the OS CSPRNG; collisions are negligible (2^-64 at
/// 2^32 files), which matters because the file id separates AAD domains.
pub fn random_file_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    fill_random(&mut id);
    id
}

impl FileHeader {
    /// A header for a new file. The first wrapped key goes to slot A and is
    /// always generation 1 (the `generation` field of `first` is ignored).
    pub fn new(
        version: FormatVersion,
        suite: CipherSuite,
        file_id: [u8; 16],
        first: WrappedKey,
    ) -> Result<Self, HeaderError> {
        let first = WrappedKey {
            generation: 1,
            ..first
        };
        first.check()?;
        Ok(FileHeader {
            version,
            suite,
            file_id,
            slots: [Some(first), None],
        })
    }

    /// Byte range of slot `index` (0 = A, 1 = B) within the header, so a
    /// re-wrap can rewrite just that slot. Panics for `index > 1`, which is
    /// a caller bug, never data-dependent.
    pub fn slot_range(index: usize) -> Range<usize> {
        let start = SLOT_OFFSETS[index];
        start..start + SLOT_LEN
    }

    pub fn encode(&self) -> Result<[u8; HEADER_LEN], HeaderError> {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.version.id().to_be_bytes());
        out[6] = self.suite.id();
        out[7] = BLOCK_SHIFT;
        out[8..24].copy_from_slice(&self.file_id);
        out[24..28].copy_from_slice(&(HEADER_LEN as u32).to_be_bytes());
        // 28..32 reserved, left zero.
        for index in 0..2 {
            out[Self::slot_range(index)].copy_from_slice(&self.encode_slot(index)?);
        }
        Ok(out)
    }

    /// The 496 bytes of slot `index`, for writing at `slot_range(index)`.
    pub fn encode_slot(&self, index: usize) -> Result<[u8; SLOT_LEN], HeaderError> {
        WrappedKey::encode_slot(self.slots[index].as_ref())
    }

    /// Parses a header. Preamble problems are errors; a damaged slot reads as
    /// `None` as long as the other slot holds a valid key.
    pub fn decode(buf: &[u8]) -> Result<FileHeader, HeaderError> {
        if buf.len() != HEADER_LEN {
            return Err(HeaderError::BadLength(buf.len()));
        }
        if buf[0..4] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u16::from_be_bytes(be(buf, 4));
        let version =
            FormatVersion::from_id(version).ok_or(HeaderError::UnsupportedVersion(version))?;
        let suite = CipherSuite::from_id(buf[6]).ok_or(HeaderError::UnknownSuite(buf[6]))?;
        if buf[7] != BLOCK_SHIFT {
            return Err(HeaderError::UnsupportedBlockShift(buf[7]));
        }
        let file_id = be(buf, 8);
        let header_len = u32::from_be_bytes(be(buf, 24));
        if header_len as usize != HEADER_LEN {
            return Err(HeaderError::BadHeaderLen(header_len));
        }
        if buf[28..32] != [0u8; 4] {
            return Err(HeaderError::ReservedNotZero);
        }
        let slots = [0, 1].map(|index| {
            let raw: [u8; SLOT_LEN] = be(buf, SLOT_OFFSETS[index]);
            WrappedKey::decode_slot(&raw).ok().flatten()
        });
        if slots.iter().all(Option::is_none) {
            return Err(HeaderError::NoValidSlot);
        }
        Ok(FileHeader {
            version,
            suite,
            file_id,
            slots,
        })
    }

    /// Index of the slot with the highest generation (ties, which writers
    /// never produce, go to slot A for determinism).
    pub fn active_index(&self) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(key) = slot
                && best.is_none_or(|(_, generation)| key.generation > generation)
            {
                best = Some((index, key.generation));
            }
        }
        best.map(|(index, _)| index)
    }

    /// The wrapped key to try first.
    pub fn active(&self) -> Option<&WrappedKey> {
        self.active_index()
            .and_then(|index| self.slots[index].as_ref())
    }

    /// All present wrapped keys, best first. A caller tries them in order:
    /// the fallback covers a new slot whose key the service cannot unwrap
    /// (e.g. a rotation that was recorded but whose CMK grant is missing).
    pub fn candidates(&self) -> Vec<&WrappedKey> {
        let mut keys: Vec<(usize, &WrappedKey)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| slot.as_ref().map(|key| (index, key)))
            .collect();
        keys.sort_by(|(ia, a), (ib, b)| b.generation.cmp(&a.generation).then(ia.cmp(ib)));
        keys.into_iter().map(|(_, key)| key).collect()
    }

    /// A copy of this header with the non-active slot replaced by a new
    /// wrapping of the (same) data key at generation `active + 1`. Returns
    /// the slot index that changed; the caller writes `encode_slot(index)`
    /// at `slot_range(index)` and syncs. The old active slot is untouched,
    /// so a crash mid-write leaves a readable header.
    pub fn with_rewrapped(
        &self,
        key_id: &str,
        key_version: u32,
        blob: &[u8],
    ) -> Result<(FileHeader, usize), HeaderError> {
        let (target, generation) = match self.active_index() {
            Some(active) => {
                let current = self.slots[active].as_ref().map_or(0, |key| key.generation);
                let next = current.checked_add(1).ok_or(HeaderError::BadGeneration)?;
                (1 - active, next)
            }
            None => (0, 1),
        };
        let key = WrappedKey {
            generation,
            key_id: key_id.to_owned(),
            key_version,
            blob: blob.to_vec(),
        };
        key.check()?;
        let mut header = self.clone();
        header.slots[target] = Some(key);
        Ok((header, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sample() -> FileHeader {
        let file_id: [u8; 16] = std::array::from_fn(|i| i as u8);
        FileHeader::new(
            FormatVersion::V1,
            CipherSuite::Aes256Gcm,
            file_id,
            WrappedKey {
                generation: 99, // ignored: first key is generation 1
                key_id: "alias/k".into(),
                key_version: 7,
                blob: vec![0xde, 0xad, 0xbe, 0xef],
            },
        )
        .unwrap()
    }

    #[test]
    fn golden_bytes() {
        let bytes = sample().encode().unwrap();
        assert_eq!(
            hex(&bytes[..32]),
            concat!(
                "4b4d5346", // magic
                "0001",     // version
                "01",       // suite aes-256-gcm
                "0c",       // block shift 12
                "000102030405060708090a0b0c0d0e0f",
                "00000400", // header_len 1024
                "00000000", // reserved
            )
        );
        let a = &bytes[FileHeader::slot_range(0)];
        assert_eq!(
            hex(&a[..26]),
            concat!(
                "0000000000000001", // generation 1
                "00000007",         // key_version
                "07",               // key_id_len
                "616c6961732f6b",   // "alias/k"
                "0004",             // blob_len
                "deadbeef",
            )
        );
        assert!(a[26..492].iter().all(|&b| b == 0));
        // CRC-32 (IEEE) of a[..492], cross-checked with Python's zlib.crc32.
        assert_eq!(hex(&a[492..]), SLOT_A_CRC);
        // Empty slot B: zeros with the CRC of 492 zero bytes.
        let b = &bytes[FileHeader::slot_range(1)];
        assert!(b[..492].iter().all(|&x| x == 0));
        assert_eq!(hex(&b[492..]), EMPTY_SLOT_CRC);
        assert_eq!(FileHeader::slot_range(0), 32..528);
        assert_eq!(FileHeader::slot_range(1), 528..1024);
    }

    #[test]
    fn version_2_round_trips_and_only_changes_bytes_4_to_6() {
        let v1 = sample();
        let v2 = FileHeader {
            version: FormatVersion::V2,
            ..v1.clone()
        };
        let (b1, b2) = (v1.encode().unwrap(), v2.encode().unwrap());
        assert_eq!(hex(&b2[4..6]), "0002");
        assert_eq!(b1[..4], b2[..4]);
        assert_eq!(b1[6..], b2[6..]);
        assert_eq!(FileHeader::decode(&b2).unwrap(), v2);
        assert_eq!(FileHeader::decode(&b1).unwrap().version, FormatVersion::V1);
        for v in [FormatVersion::V1, FormatVersion::V2] {
            assert_eq!(FormatVersion::from_id(v.id()), Some(v));
        }
        assert_eq!(FormatVersion::V1.id(), 1);
        assert_eq!(FormatVersion::V2.id(), 2);
        assert_eq!(FormatVersion::from_id(0), None);
        assert_eq!(FormatVersion::from_id(3), None);
    }

    const SLOT_A_CRC: &str = "48d08eac";
    const EMPTY_SLOT_CRC: &str = "3081a4a7";

    #[test]
    fn round_trip() {
        let h = sample();
        let decoded = FileHeader::decode(&h.encode().unwrap()).unwrap();
        assert_eq!(decoded, h);
        assert_eq!(decoded.active().unwrap().generation, 1);

        let (h2, idx) = h
            .with_rewrapped("arn:aws:kms:eu-west-1:1:key/x", 8, &[1; 200])
            .unwrap();
        assert_eq!(idx, 1);
        let d2 = FileHeader::decode(&h2.encode().unwrap()).unwrap();
        assert_eq!(d2, h2);
        assert_eq!(d2.active().unwrap().generation, 2);
        assert_eq!(d2.active().unwrap().key_version, 8);
        let gens: Vec<u64> = d2.candidates().iter().map(|k| k.generation).collect();
        assert_eq!(gens, [2, 1]);

        // Next rotation overwrites slot A (the now non-active one).
        let (h3, idx) = d2.with_rewrapped("k3", 9, &[2; 10]).unwrap();
        assert_eq!(idx, 0);
        assert_eq!(h3.active().unwrap().generation, 3);
        assert_eq!(h3.slots[1], h2.slots[1]);
        // Only the rewritten slot's bytes change.
        let (e2, e3) = (h2.encode().unwrap(), h3.encode().unwrap());
        assert_eq!(e2[..32], e3[..32]);
        assert_eq!(e2[FileHeader::slot_range(1)], e3[FileHeader::slot_range(1)]);
        assert_eq!(e3[FileHeader::slot_range(0)], h3.encode_slot(0).unwrap());
    }

    #[test]
    fn crc_damage_falls_back() {
        let (h, _) = sample().with_rewrapped("k2", 2, b"blob2").unwrap();
        let good = h.encode().unwrap();

        // Torn new slot (B): falls back to A.
        let mut bytes = good;
        bytes[FileHeader::slot_range(1).start + 20] ^= 1;
        let d = FileHeader::decode(&bytes).unwrap();
        assert_eq!(d.slots[1], None);
        assert_eq!(d.active().unwrap().key_id, "alias/k");

        // Damaged old slot (A): B still active.
        let mut bytes = good;
        bytes[FileHeader::slot_range(0).end - 1] ^= 0x80; // the CRC itself
        let d = FileHeader::decode(&bytes).unwrap();
        assert_eq!(d.slots[0], None);
        assert_eq!(d.active().unwrap().key_id, "k2");

        // Both damaged.
        let mut bytes = good;
        bytes[40] ^= 1;
        bytes[600] ^= 1;
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::NoValidSlot));

        // One empty, one damaged: nothing usable either.
        let mut bytes = sample().encode().unwrap();
        bytes[40] ^= 1;
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::NoValidSlot));
    }

    #[test]
    fn crc_valid_but_inconsistent_slot_is_rejected() {
        let good = sample().encode().unwrap();
        let reseal = |bytes: &mut [u8; HEADER_LEN], index: usize| {
            let r = FileHeader::slot_range(index);
            let crc = crc32fast::hash(&bytes[r.start..r.start + SLOT_CRC_OFFSET]);
            bytes[r.start + SLOT_CRC_OFFSET..r.end].copy_from_slice(&crc.to_be_bytes());
        };
        // Oversized blob_len.
        let mut bytes = good;
        bytes[32 + 20..32 + 22].copy_from_slice(&0xffffu16.to_be_bytes());
        reseal(&mut bytes, 0);
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::NoValidSlot));
        // Non-UTF-8 key id.
        let mut bytes = good;
        bytes[32 + 13] = 0xff;
        reseal(&mut bytes, 0);
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::NoValidSlot));
        // Garbage in the padding.
        let mut bytes = good;
        bytes[32 + 400] = 1;
        reseal(&mut bytes, 0);
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::NoValidSlot));
    }

    #[test]
    fn preamble_errors() {
        let good = sample().encode().unwrap();
        let with = |at: usize, val: u8| {
            let mut b = good;
            b[at] = val;
            FileHeader::decode(&b)
        };
        assert_eq!(
            FileHeader::decode(&good[..1023]),
            Err(HeaderError::BadLength(1023))
        );
        assert_eq!(with(0, b'X'), Err(HeaderError::BadMagic));
        assert_eq!(with(5, 0), Err(HeaderError::UnsupportedVersion(0)));
        assert_eq!(with(5, 3), Err(HeaderError::UnsupportedVersion(3)));
        assert_eq!(with(4, 1), Err(HeaderError::UnsupportedVersion(0x0101)));
        assert_eq!(with(5, 2).unwrap().version, FormatVersion::V2);
        assert_eq!(with(6, 9), Err(HeaderError::UnknownSuite(9)));
        assert_eq!(with(7, 13), Err(HeaderError::UnsupportedBlockShift(13)));
        assert_eq!(with(26, 8), Err(HeaderError::BadHeaderLen(2048)));
        assert_eq!(with(31, 1), Err(HeaderError::ReservedNotZero));
    }

    #[test]
    fn slot_capacity() {
        let h = sample();
        let id = "x".repeat(255);
        assert!(
            h.with_rewrapped(&id, 1, &vec![0; SLOT_PAYLOAD_MAX - 255])
                .is_ok()
        );
        assert_eq!(
            h.with_rewrapped(&id, 1, &vec![0; SLOT_PAYLOAD_MAX - 254])
                .unwrap_err(),
            HeaderError::SlotOverflow {
                key_id_len: 255,
                blob_len: SLOT_PAYLOAD_MAX - 254
            }
        );
        assert!(matches!(
            h.with_rewrapped(&"y".repeat(256), 1, b""),
            Err(HeaderError::SlotOverflow { .. })
        ));
        // A maximal slot round-trips.
        let (full, _) = h
            .with_rewrapped(&id, 1, &vec![0xab; SLOT_PAYLOAD_MAX - 255])
            .unwrap();
        assert_eq!(FileHeader::decode(&full.encode().unwrap()).unwrap(), full);
        assert_eq!(SLOT_PAYLOAD_MAX, 477);
        assert_ne!(random_file_id(), random_file_id());
    }
}
