//! One encrypted file of a volume, independent of FUSE: reading and writing
//! its header (in the file or in an xattr), getting its data key from the
//! key service, and handing out the content layer for its blocks. The FUSE
//! adapter, fsck and the rotation task all go through here.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use base64::Engine;
use kmsfs_format::cipher::{BlockAead, CipherSuite, DataKey, new_aead};
use kmsfs_format::content::{ContentError, FileContent, Layout, PositionalIo};
use kmsfs_format::header::{
    FileHeader, FormatVersion, HEADER_LEN, HeaderError, WrappedKey, random_file_id,
};
use kmsfs_kms::{Caller, EncryptionContext, KeyService, KmsError};

use super::config::{HEADER_XATTR, HeaderPlacement, NAME_KEY_PURPOSE, VolumeConfig};
use super::names::VolumeNames;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("damaged header: {0}")]
    Header(#[from] HeaderError),
    #[error("{0}")]
    Content(#[from] ContentError),
    /// The key service refused the caller or the key (policy, disabled,
    /// pending deletion, deleted): access is denied, nothing is damaged.
    #[error("key service refused: {} ({})", .0.message(), .0.code())]
    Denied(KmsError),
    /// The key service could not unwrap the data key: the header's wrapped
    /// key is damaged or belongs to another file.
    #[error("data key cannot be unwrapped: {} ({})", .0.message(), .0.code())]
    Unwrap(KmsError),
}

impl FileError {
    /// The errno a process sees at the mount.
    pub fn errno(&self) -> i32 {
        match self {
            FileError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            FileError::Content(ContentError::Io(e)) => e.raw_os_error().unwrap_or(libc::EIO),
            FileError::Content(ContentError::TooLarge) => libc::EFBIG,
            FileError::Denied(_) => libc::EACCES,
            FileError::Header(_) | FileError::Content(_) | FileError::Unwrap(_) => libc::EIO,
        }
    }

    pub(crate) fn from_kms(e: KmsError) -> FileError {
        match e {
            KmsError::AccessDenied(_)
            | KmsError::Disabled(_)
            | KmsError::InvalidState(_)
            | KmsError::NotFound(_) => FileError::Denied(e),
            other => FileError::Unwrap(other),
        }
    }
}

pub(crate) type Result<T, E = FileError> = std::result::Result<T, E>;

/// An unwrapped data key, ready to seal and open this file's blocks. The
/// AEAD's key schedule is zeroized when this is dropped.
pub struct FileKey {
    pub aead: Box<dyn BlockAead>,
    pub file_id: [u8; 16],
    /// The header it came from (for rotation and status).
    pub header: FileHeader,
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKey").finish_non_exhaustive()
    }
}

/// What every file of a volume shares: its config and its key service.
pub struct Volume {
    /// The config as loaded; `key_id` below may be newer (set-key while mounted).
    pub config: VolumeConfig,
    /// The CMK new files are wrapped with. Changes when the volume is
    /// re-keyed while mounted; the rotation task then moves old files over.
    key_id: std::sync::RwLock<String>,
    pub suite: CipherSuite,
    pub layout: Layout,
    pub kms: Arc<dyn KeyService>,
    /// How names are stored; for version 2 unwrapped on first use (see
    /// [`Volume::names`]).
    names: std::sync::OnceLock<VolumeNames>,
}

/// The encryption context of a volume's wrapped name key.
pub(crate) fn name_key_context(volume_id: &str) -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    ctx.insert("kmsfs:volume".into(), volume_id.to_string());
    ctx.insert("kmsfs:purpose".into(), NAME_KEY_PURPOSE.into());
    ctx
}

impl Volume {
    pub fn new(config: VolumeConfig, kms: Arc<dyn KeyService>) -> Result<Volume, String> {
        let suite = config.suite()?;
        // New files get the volume's format version; every file of a
        // volume has it (a header of the other version is refused on read).
        let version = if config.encrypted_names() {
            FormatVersion::V2
        } else {
            FormatVersion::V1
        };
        let layout = Layout {
            header_len: config.header_len(),
            version,
        };
        Ok(Volume {
            key_id: std::sync::RwLock::new(config.key_id.clone()),
            config,
            suite,
            layout,
            kms,
            names: std::sync::OnceLock::new(),
        })
    }

    /// How this volume's names are stored. For a version 2 volume the first
    /// call unwraps the name key with the key service, as the process's own
    /// user (the mount daemon, or the administrator running a command):
    /// names protect the tree from whoever holds the backing directory;
    /// who may see a name at the mount is up to the directory's mode bits,
    /// as on any filesystem.
    pub fn names(&self) -> Result<&VolumeNames> {
        if let Some(names) = self.names.get() {
            return Ok(names);
        }
        let names = match &self.config.name_key {
            None => VolumeNames::Plain,
            Some(wrapped) => {
                let blob = base64::engine::general_purpose::STANDARD
                    .decode(&wrapped.blob)
                    .map_err(|_| {
                        FileError::Unwrap(KmsError::InvalidCiphertext(
                            "the volume config's name_key.blob is not base64".into(),
                        ))
                    })?;
                let ctx = name_key_context(&self.config.volume_id);
                let d = self
                    .kms
                    .decrypt(&Caller::current(), &blob, &ctx)
                    .map_err(FileError::from_kms)?;
                let key = DataKey::from_slice(&d.plaintext).map_err(|_| {
                    FileError::Unwrap(KmsError::InvalidCiphertext(
                        "the name key is not 32 bytes".into(),
                    ))
                })?;
                VolumeNames::encrypted(&key)
            }
        };
        Ok(self.names.get_or_init(|| names))
    }

    /// The CMK (ARN) new files are wrapped with.
    pub fn key_id(&self) -> String {
        self.key_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_key_id(&self, key_id: &str) {
        *self.key_id.write().unwrap_or_else(|p| p.into_inner()) = key_id.to_string();
    }

    /// The encryption context a file's data key is wrapped with. It binds the
    /// wrapped key to this volume, this file id and this cipher: a header
    /// moved onto another file, or a flipped cipher byte, fails to unwrap.
    pub fn context(&self, file_id: &[u8; 16], suite: CipherSuite) -> EncryptionContext {
        let mut ctx = EncryptionContext::new();
        ctx.insert("kmsfs:volume".into(), self.config.volume_id.clone());
        ctx.insert("kmsfs:file".into(), hex(file_id));
        ctx.insert("kmsfs:cipher".into(), suite.name().into());
        ctx
    }

    /// The content layer of one file: the volume's header placement with
    /// the format version of the file's own header.
    pub fn content<'a>(&self, key: &'a FileKey) -> FileContent<'a> {
        FileContent {
            aead: key.aead.as_ref(),
            file_id: key.file_id,
            layout: Layout {
                version: key.header.version,
                ..self.layout
            },
        }
    }

    /// Reads a file's header; `None` for a file that has none yet (created
    /// empty, or by a crash before its header was written).
    pub fn read_header(&self, file: &File) -> Result<Option<FileHeader>> {
        match self.config.header {
            HeaderPlacement::File => {
                if file.metadata()?.len() == 0 {
                    return Ok(None);
                }
                let mut buf = vec![0u8; HEADER_LEN];
                file.read_exact_at(&mut buf, 0).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        FileError::Header(HeaderError::BadLength(0))
                    } else {
                        FileError::Io(e)
                    }
                })?;
                Ok(Some(self.check_version(FileHeader::decode(&buf)?)?))
            }
            HeaderPlacement::Xattr => match kmsfs_sys::fgetxattr(file.as_fd(), HEADER_XATTR) {
                Ok(buf) => Ok(Some(self.check_version(FileHeader::decode(&buf)?)?)),
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {
                    if file.metadata()?.len() == 0 {
                        Ok(None)
                    } else {
                        // Content without a header can never be decrypted.
                        Err(FileError::Header(HeaderError::NoValidSlot))
                    }
                }
                Err(e) => Err(FileError::Io(e)),
            },
        }
    }

    /// Writes a whole header (a new file's, or a rewritten one).
    pub fn write_header(&self, file: &File, header: &FileHeader) -> Result<()> {
        let bytes = header.encode()?;
        match self.config.header {
            HeaderPlacement::File => {
                // Out of space, fail before writing: a torn header would
                // make the file unreadable for good, while a file left
                // without one is simply still empty.
                PositionalIo::reserve(file, 0, bytes.len() as u64)?;
                file.write_all_at(&bytes, 0)?
            }
            HeaderPlacement::Xattr => kmsfs_sys::fsetxattr(file.as_fd(), HEADER_XATTR, &bytes, 0)?,
        }
        Ok(())
    }

    /// Writes only slot `index` of `header` — the crash-safe update used by
    /// re-wrapping: the other slot keeps the previous wrapped key intact. For
    /// xattr headers the whole value is replaced atomically instead.
    pub fn write_header_slot(&self, file: &File, header: &FileHeader, index: usize) -> Result<()> {
        match self.config.header {
            HeaderPlacement::File => {
                let slot = header.encode_slot(index)?;
                file.write_all_at(&slot, FileHeader::slot_range(index).start as u64)?;
            }
            HeaderPlacement::Xattr => {
                let bytes = header.encode()?;
                kmsfs_sys::fsetxattr(file.as_fd(), HEADER_XATTR, &bytes, libc::XATTR_REPLACE)?;
            }
        }
        Ok(())
    }

    fn file_key(&self, plaintext: &[u8], header: FileHeader) -> Result<FileKey> {
        let key: &[u8; 32] = plaintext.try_into().map_err(|_| {
            FileError::Unwrap(KmsError::InvalidCiphertext(format!(
                "the wrapped data key is {} bytes, not 32",
                plaintext.len()
            )))
        })?;
        Ok(FileKey {
            aead: new_aead(header.suite, key),
            file_id: header.file_id,
            header,
        })
    }

    /// Gives a file without a header a new data key from the key service
    /// (as `caller`) and writes its header. Nothing is written if the key
    /// service refuses.
    pub fn create_key(&self, caller: &Caller, file: &File) -> Result<FileKey> {
        let file_id = random_file_id();
        let ctx = self.context(&file_id, self.suite);
        let pair = self
            .kms
            .generate_data_key(caller, &self.key_id(), &ctx)
            .map_err(FileError::from_kms)?;
        let header = FileHeader::new(
            self.layout.version,
            self.suite,
            file_id,
            WrappedKey {
                generation: 1,
                key_id: pair.key_arn.clone(),
                key_version: pair.key_version,
                blob: pair.ciphertext_blob.clone(),
            },
        )?;
        self.write_header(file, &header)?;
        let key = self.file_key(&pair.plaintext, header)?;
        if key.header.version == FormatVersion::V2 {
            // Version 2 files always end in a sealed final block; an
            // empty one has a block of no bytes.
            self.content(&key).seal_empty(file)?;
        }
        Ok(key)
    }

    /// A decoded header must be of the volume's own format version: a
    /// version byte changed from 2 to 1 would otherwise read the file
    /// without its authenticated length.
    fn check_version(&self, header: FileHeader) -> Result<FileHeader> {
        if header.version != self.layout.version {
            return Err(FileError::Header(HeaderError::UnsupportedVersion(
                header.version.id(),
            )));
        }
        Ok(header)
    }

    /// Unwraps a file's data key as `caller`. Tries the active slot first and
    /// falls back to the other one (a re-wrap interrupted by a crash).
    pub fn unwrap_key(&self, caller: &Caller, header: FileHeader) -> Result<FileKey> {
        let ctx = self.context(&header.file_id, header.suite);
        let mut last = None;
        for slot in header.candidates() {
            match self.kms.decrypt(caller, &slot.blob, &ctx) {
                Ok(d) => return self.file_key(&d.plaintext, header.clone()),
                Err(KmsError::InvalidCiphertext(m)) => last = Some(KmsError::InvalidCiphertext(m)),
                Err(e) => return Err(FileError::from_kms(e)),
            }
        }
        Err(FileError::Unwrap(last.unwrap_or_else(|| {
            KmsError::InvalidCiphertext("the header holds no wrapped key".into())
        })))
    }

    /// The key of an existing file, or a new one if it has no header yet
    /// (`create` false: `None` for such a file).
    pub fn open_key(&self, caller: &Caller, file: &File, create: bool) -> Result<Option<FileKey>> {
        match self.read_header(file)? {
            Some(header) => self.unwrap_key(caller, header).map(Some),
            None if create => self.create_key(caller, file).map(Some),
            None => Ok(None),
        }
    }

    /// Plaintext size of a backing file of `backing_len` bytes, as stat
    /// shows it. A damaged length (a torn final block) is shown rounded down
    /// rather than failing stat; reads of that block report the damage.
    pub fn display_size(&self, backing_len: u64) -> u64 {
        self.layout.plain_size(backing_len).unwrap_or_else(|_| {
            let body = backing_len.saturating_sub(self.layout.header_len);
            body / kmsfs_format::content::STORED_BLOCK_LEN as u64
                * kmsfs_format::content::BLOCK_SIZE as u64
        })
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyServiceConfig;
    use kmsfs_kms::{DataKeyPair, Decrypted, KeyDescription, Wrapped};

    /// A key service that refuses everything: `content` never calls it.
    struct NoKms;

    impl KeyService for NoKms {
        fn generate_data_key(
            &self,
            _: &Caller,
            _: &str,
            _: &EncryptionContext,
        ) -> Result<DataKeyPair, KmsError> {
            Err(KmsError::AccessDenied("test".into()))
        }
        fn decrypt(
            &self,
            _: &Caller,
            _: &[u8],
            _: &EncryptionContext,
        ) -> Result<Decrypted, KmsError> {
            Err(KmsError::AccessDenied("test".into()))
        }
        fn re_encrypt(
            &self,
            _: &Caller,
            _: &[u8],
            _: &EncryptionContext,
            _: &str,
        ) -> Result<Wrapped, KmsError> {
            Err(KmsError::AccessDenied("test".into()))
        }
        fn describe_key(&self, _: &Caller, _: &str) -> Result<KeyDescription, KmsError> {
            Err(KmsError::AccessDenied("test".into()))
        }
    }

    #[test]
    fn content_layout_takes_the_version_from_the_file_header() {
        for placement in [HeaderPlacement::File, HeaderPlacement::Xattr] {
            let config = VolumeConfig::new(
                CipherSuite::Aes256Gcm,
                placement,
                KeyServiceConfig::Embedded {
                    keystore: "/nonexistent".into(),
                },
                "arn:aws:kms:local:000000000000:key/x".into(),
            );
            let volume = Volume::new(config, Arc::new(NoKms)).unwrap();
            assert_eq!(volume.layout.version, FormatVersion::V1);
            for version in [FormatVersion::V1, FormatVersion::V2] {
                let header = FileHeader::new(
                    version,
                    CipherSuite::Aes256Gcm,
                    [3; 16],
                    WrappedKey {
                        generation: 1,
                        key_id: "k".into(),
                        key_version: 1,
                        blob: vec![1],
                    },
                )
                .unwrap();
                let key = FileKey {
                    aead: new_aead(CipherSuite::Aes256Gcm, &[5; 32]),
                    file_id: header.file_id,
                    header,
                };
                let layout = volume.content(&key).layout;
                assert_eq!(layout.version, version);
                assert_eq!(layout.header_len, volume.layout.header_len);
            }
        }
    }
}
