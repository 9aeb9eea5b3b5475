//! The volume configuration file at the root of a backing directory.
//!
//! It is JSON and NOT secret: it names the cipher, the block size, where file
//! headers live and which CMK (in which key service) wraps the data keys. No
//! key material is in it; reading it tells an attacker nothing that the
//! ciphertext's own headers do not. Layout in docs/FORMAT.md ("Volume config").

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::backing::Dir;

use serde::{Deserialize, Serialize};

use kmsfs_format::cipher::CipherSuite;
use kmsfs_format::header::HEADER_LEN;

/// A config is a few hundred bytes; anything this large is not one.
const MAX_CONFIG_LEN: u64 = 1 << 20;
/// File name of the config inside the backing directory (hidden at the mount).
pub const CONFIG_NAME: &str = ".kmsfs.volume.json";
/// The newest format: encrypted names, the tree in [`TREE_NAME`], an
/// authenticated file length. New volumes get it unless they ask for
/// plaintext names.
pub const FORMAT_VERSION: u32 = 2;
/// The format of volumes with plaintext names (the first format): the
/// backing root is the mount's root. Still read and written.
pub const FORMAT_VERSION_PLAIN_NAMES: u32 = 1;
/// In a version 2 volume, the directory below the backing root that is the
/// mount's root. The backing root itself holds only kmsfs's own files and is
/// sealed (owned by the daemon's user, mode 0700), so no other user reaches
/// the tree except through the mount.
pub const TREE_NAME: &str = "tree";
pub const BLOCK_SIZE: u32 = 4096;
/// Extended attribute holding a file's header with `header: xattr`.
pub const HEADER_XATTR: &str = "user.kmsfs.header";
/// The alias of the CMK a volume gets when none is named.
pub const DEFAULT_KEY_ALIAS: &str = "alias/kmsfs/default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderPlacement {
    /// The first 1024 bytes of each backing file.
    File,
    /// The `user.kmsfs.header` extended attribute; the backing file holds
    /// only blocks.
    Xattr,
}

impl std::str::FromStr for HeaderPlacement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(HeaderPlacement::File),
            "xattr" => Ok(HeaderPlacement::Xattr),
            other => Err(format!(
                "unknown header placement {other:?}: use file or xattr"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum KeyServiceConfig {
    /// The embedded key store file on this host.
    Embedded { keystore: PathBuf },
    /// A KMS endpoint speaking the AWS KMS JSON protocol (`kmsfs kms serve`),
    /// called with the SigV4 credentials of the mount's environment; unwrapped
    /// data keys are cached (see kms/cache.rs) within these limits.
    Endpoint {
        url: String,
        #[serde(default = "default_cache_max_keys")]
        cache_max_keys: usize,
        #[serde(default = "default_cache_max_age_seconds")]
        cache_max_age_seconds: i64,
    },
    /// AWS KMS through the AWS SDK (cargo feature `aws-kms`): the standard
    /// credential and region chains of the mount, unless overridden here.
    Aws {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
        #[serde(default = "default_cache_max_keys")]
        cache_max_keys: usize,
        #[serde(default = "default_cache_max_age_seconds")]
        cache_max_age_seconds: i64,
    },
}

fn default_cache_max_keys() -> usize {
    kmsfs_kms::cache::CacheLimits::default().max_keys
}

fn default_cache_max_age_seconds() -> i64 {
    kmsfs_kms::cache::CacheLimits::default().max_age_seconds
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeConfig {
    #[serde(rename = "_comment", default)]
    pub comment: String,
    pub format_version: u32,
    pub volume_id: String,
    pub cipher: String,
    pub block_size: u32,
    pub header: HeaderPlacement,
    pub key_service: KeyServiceConfig,
    /// The CMK new files are wrapped with (its ARN).
    pub key_id: String,
    /// Version 2: the volume's name key, wrapped by the CMK (see
    /// [`NAME_KEY_PURPOSE`] for its encryption context). Absent in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_key: Option<WrappedNameKey>,
}

/// The `kmsfs:purpose` of the name key's encryption context, which also
/// holds `kmsfs:volume` = the volume id: the wrapped name key of one volume
/// does not unwrap as another volume's, nor as a file's data key.
pub const NAME_KEY_PURPOSE: &str = "file-names";

/// A volume's name key as the key service wrapped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedNameKey {
    /// ARN of the CMK that wrapped it, as the key service reported it
    /// (informational, as in file headers: the blob names its key itself).
    pub key_id: String,
    pub key_version: u32,
    /// The key service's ciphertext blob, standard base64 with padding.
    pub blob: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the volume config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the volume config is not valid: {why}")]
    Invalid { path: PathBuf, why: String },
    /// Someone other than its owner (or root) could have written it: it is
    /// not believed (the daemon would act on it as root).
    #[error(
        "{path}: refusing the volume config: {source} (kmsfs acts only on a config \
         that nobody but its owner can change: chown it to the mounting user or root \
         and chmod 644)"
    )]
    Untrusted {
        path: PathBuf,
        source: crate::trusted::UntrustedFile,
    },
    #[error("{path}: cannot write the volume config: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl VolumeConfig {
    pub fn new(
        suite: CipherSuite,
        header: HeaderPlacement,
        key_service: KeyServiceConfig,
        key_arn: String,
    ) -> VolumeConfig {
        VolumeConfig {
            comment: "kmsfs volume configuration. Not secret: it holds no key material, \
                      only which cipher and which master key (CMK) protect this volume."
                .into(),
            format_version: FORMAT_VERSION_PLAIN_NAMES,
            volume_id: uuid::Uuid::new_v4().to_string(),
            cipher: suite.name().into(),
            block_size: BLOCK_SIZE,
            header,
            key_service,
            key_id: key_arn,
            name_key: None,
        }
    }

    /// This config, for a version 2 volume whose name key is `name_key`.
    pub fn with_name_key(mut self, name_key: WrappedNameKey) -> VolumeConfig {
        self.format_version = FORMAT_VERSION;
        self.comment = "kmsfs volume configuration. Not secret: it holds no key material in \
                        the clear, only which cipher and which master key (CMK) protect this \
                        volume, and the volume's name key wrapped by that CMK."
            .into();
        self.name_key = Some(name_key);
        self
    }

    /// Whether names, symlink targets and user xattrs are encrypted
    /// (format version 2).
    pub fn encrypted_names(&self) -> bool {
        self.format_version >= 2
    }

    /// Where the mount's root is in the backing directory (for messages).
    pub fn tree_path(&self, backing: &Path) -> PathBuf {
        if self.encrypted_names() {
            backing.join(TREE_NAME)
        } else {
            backing.to_path_buf()
        }
    }

    /// The directory that is the mount's root: the backing root itself in
    /// version 1, its `tree` subdirectory in version 2.
    pub fn open_tree(&self, backing: &Path) -> std::io::Result<Dir> {
        let root = Dir::open_root(backing)?;
        if self.encrypted_names() {
            root.open_dir(OsStr::new(TREE_NAME))
        } else {
            Ok(root)
        }
    }

    pub fn path_in(backing: &Path) -> PathBuf {
        backing.join(CONFIG_NAME)
    }

    pub fn exists_in(backing: &Path) -> bool {
        Self::path_in(backing).exists()
    }

    /// Reads and checks the config of the volume in `backing`. It is read
    /// without following a symlink and only if nobody but its owner (this
    /// process's user, or root) can write it; see `trusted`.
    pub fn load(backing: &Path) -> Result<VolumeConfig, ConfigError> {
        let path = Self::path_in(backing);
        let read = Dir::open_root(backing)
            .map_err(crate::trusted::UntrustedFile::from)
            .and_then(|root| {
                crate::trusted::read_trusted(&root, OsStr::new(CONFIG_NAME), MAX_CONFIG_LEN)
            });
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(crate::trusted::UntrustedFile::Io(source)) => {
                return Err(ConfigError::Read { path, source });
            }
            Err(source) => return Err(ConfigError::Untrusted { path, source }),
        };
        let text = String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
            path: path.clone(),
            why: "it is not UTF-8".into(),
        })?;
        Self::parse(&text).map_err(|why| ConfigError::Invalid { path, why })
    }

    /// Parses and validates the text of a config file (what [`load`] does
    /// after reading it); the error says why it is refused.
    ///
    /// [`load`]: VolumeConfig::load
    pub fn parse(text: &str) -> Result<VolumeConfig, String> {
        let config: VolumeConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match (config.format_version, &config.name_key) {
            (FORMAT_VERSION_PLAIN_NAMES, None) | (FORMAT_VERSION, Some(_)) => {}
            (FORMAT_VERSION_PLAIN_NAMES, Some(_)) => {
                return Err("format version 1 has no name_key".into());
            }
            (FORMAT_VERSION, None) => {
                return Err("format version 2 needs its name_key".into());
            }
            (other, _) => {
                return Err(format!(
                    "format version {other} is not supported (this kmsfs reads versions \
                     {FORMAT_VERSION_PLAIN_NAMES} and {FORMAT_VERSION})"
                ));
            }
        }
        if config.block_size != BLOCK_SIZE {
            return Err(format!("block size {} is not supported", config.block_size));
        }
        config.suite()?;
        Ok(config)
    }

    /// Writes the config crash-safely (temporary file, fsync, rename, fsync dir).
    /// Writes the config atomically (temporary file, fsync, rename, fsync of
    /// the directory), through the backing layer: the temporary name is
    /// created O_EXCL|O_NOFOLLOW, so a symlink planted there is never
    /// written through.
    pub fn save(&self, backing: &Path) -> Result<(), ConfigError> {
        let path = Self::path_in(backing);
        let err = |source| ConfigError::Write {
            path: path.clone(),
            source,
        };
        let tmp = format!("{CONFIG_NAME}.tmp");
        let tmp = OsStr::new(&tmp);
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        let root = Dir::open_root(backing).map_err(err)?;
        // A temporary file left by a crashed earlier save.
        let _ = root.unlink(tmp);
        let written = root.create_file(tmp, 0o644).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = root.unlink(tmp);
            return Err(err(e));
        }
        root.rename(
            tmp,
            &root,
            OsStr::new(CONFIG_NAME),
            nix::fcntl::RenameFlags::empty(),
        )
        .map_err(err)?;
        root.sync().map_err(err)
    }

    pub fn suite(&self) -> Result<CipherSuite, String> {
        self.cipher
            .parse::<CipherSuite>()
            .map_err(|e| e.to_string())
    }

    /// Bytes before the first block of every backing file.
    pub fn header_len(&self) -> u64 {
        match self.header {
            HeaderPlacement::File => HEADER_LEN as u64,
            HeaderPlacement::Xattr => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = VolumeConfig::new(
            CipherSuite::ChaCha20Poly1305,
            HeaderPlacement::Xattr,
            KeyServiceConfig::Embedded {
                keystore: "/tmp/ks".into(),
            },
            "arn:aws:kms:local:000000000000:key/x".into(),
        );
        cfg.save(dir.path()).unwrap();
        let back = VolumeConfig::load(dir.path()).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(back.header_len(), 0);
        let text = fs::read_to_string(VolumeConfig::path_in(dir.path())).unwrap();
        assert!(text.contains("\"cipher\": \"chacha20-poly1305\""), "{text}");
        assert!(text.contains("Not secret"));

        // Anyone could have written a group- or world-writable config, and
        // a symlink is not followed: neither is believed.
        let path = VolumeConfig::path_in(dir.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            VolumeConfig::load(dir.path()),
            Err(ConfigError::Untrusted { .. })
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::rename(&path, dir.path().join("real.json")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real.json"), &path).unwrap();
        assert!(VolumeConfig::load(dir.path()).is_err());
        fs::remove_file(&path).unwrap();
        fs::rename(dir.path().join("real.json"), &path).unwrap();

        let bad = text.replace("\"format_version\": 1", "\"format_version\": 9");
        fs::write(VolumeConfig::path_in(dir.path()), bad).unwrap();
        assert!(matches!(
            VolumeConfig::load(dir.path()),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
