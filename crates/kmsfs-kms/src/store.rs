//! The embedded key store: one file holding every CMK, sealed under a root
//! key. Byte layout in docs/FORMAT.md ("Key store").
//!
//! Durability and concurrency rules:
//! - Every change is written to a temporary file in the same folder, fsynced,
//!   renamed over the store, and the folder is fsynced: a crash leaves the old
//!   or the new store, never a mix.
//! - Writers take an exclusive `flock` on `<store>.lock`, re-read the store
//!   under it and apply their change to what is on disk, so two processes
//!   never lose each other's changes. Readers need no lock: rename is atomic.
//! - A store that fails to parse or authenticate is refused and never
//!   overwritten (every write starts by reading and authenticating).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::error::{KmsError, Result, StoreError};
use super::material::{KeyMaterial, NONCE_LEN, random_nonce};
use super::model::StoreData;

mod postgres;
pub use postgres::{is_postgres_url, root_key_file};

pub const STORE_MAGIC: [u8; 8] = *b"KMSFSKS\0";
pub const STORE_VERSION: u16 = 1;
pub const STORE_HEADER_LEN: usize = 52;
pub const ROOT_KEY_MAGIC: [u8; 8] = *b"KMSFSRK1";

const KIND_KEY_FILE: u8 = 1;
const KIND_PASSPHRASE: u8 = 2;

/// Argon2id cost for passphrase-protected stores: 64 MiB, 3 passes, 1 lane
/// (the RFC 9106 "second recommended" profile).
const ARGON2_M_KIB: u32 = 64 * 1024;
const ARGON2_T: u32 = 3;
const ARGON2_P: u32 = 1;

/// The largest Argon2id costs a store header may name: 1 GiB of memory, 10
/// passes, 8 lanes. kmsfs writes 64 MiB / 3 / 1; the limits leave room for a
/// stronger profile later, but the header is only authenticated *after* the
/// key is derived from it, so a damaged or tampered header must not be able
/// to make every command hang (a pass count of 2^32) or allocate terabytes.
const ARGON2_MAX_M_KIB: u32 = 1 << 20;
const ARGON2_MAX_T: u32 = 10;
const ARGON2_MAX_P: u32 = 8;

/// Where the root key comes from when a store is created or opened.
pub enum RootSecret<'a> {
    /// The zero-setup default: a random key in `<store>.rootkey`, created on
    /// first use. Protects against theft of the store file alone.
    KeyFile,
    /// A passphrase stretched with Argon2id; asked only when needed.
    Passphrase(&'a dyn Fn() -> Result<Zeroizing<String>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoreHeader {
    kind: u8,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: [u8; 16],
}

impl StoreHeader {
    /// The header of a new passphrase store: this build's Argon2id costs
    /// and a fresh random salt.
    fn new_passphrase() -> StoreHeader {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt[..]);
        StoreHeader {
            kind: KIND_PASSPHRASE,
            m_kib: ARGON2_M_KIB,
            t: ARGON2_T,
            p: ARGON2_P,
            salt,
        }
    }

    fn encode(&self, nonce: &[u8; NONCE_LEN]) -> [u8; STORE_HEADER_LEN] {
        let mut h = [0u8; STORE_HEADER_LEN];
        h[0..8].copy_from_slice(&STORE_MAGIC);
        h[8..10].copy_from_slice(&STORE_VERSION.to_be_bytes());
        h[10] = self.kind;
        h[12..16].copy_from_slice(&self.m_kib.to_be_bytes());
        h[16..20].copy_from_slice(&self.t.to_be_bytes());
        h[20..24].copy_from_slice(&self.p.to_be_bytes());
        h[24..40].copy_from_slice(&self.salt);
        h[40..52].copy_from_slice(nonce);
        h
    }

    fn decode(bytes: &[u8], path: &Path) -> Result<(StoreHeader, [u8; NONCE_LEN])> {
        let bad = |why: &str| {
            KmsError::store(format!(
                "The key store {} is not usable ({why}); it was left untouched",
                path.display()
            ))
        };
        if bytes.len() < STORE_HEADER_LEN + 16 {
            return Err(bad("too short"));
        }
        if bytes[0..8] != STORE_MAGIC {
            return Err(bad("bad magic: not a kmsfs key store"));
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != STORE_VERSION {
            return Err(bad(&format!("unsupported format version {version}")));
        }
        let u32_at =
            |o: usize| u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let header = StoreHeader {
            kind: bytes[10],
            m_kib: u32_at(12),
            t: u32_at(16),
            p: u32_at(20),
            salt: bytes[24..40].try_into().map_err(|_| bad("salt"))?,
        };
        if header.kind != KIND_KEY_FILE && header.kind != KIND_PASSPHRASE {
            return Err(bad(&format!("unknown root key kind {}", header.kind)));
        }
        if header.kind == KIND_PASSPHRASE {
            header.check_argon2_params(path)?;
        }
        let nonce: [u8; NONCE_LEN] = bytes[40..52].try_into().map_err(|_| bad("nonce"))?;
        Ok((header, nonce))
    }

    /// Refuses Argon2id costs outside the limits above (and below Argon2's
    /// own minimums), naming the first bad one, before anything is derived.
    fn check_argon2_params(&self, path: &Path) -> Result<()> {
        let bad = if !(1..=ARGON2_MAX_P).contains(&self.p) {
            Some(format!("lanes={}", self.p))
        } else if !(1..=ARGON2_MAX_T).contains(&self.t) {
            Some(format!("t_cost={}", self.t))
        } else if !(8 * self.p..=ARGON2_MAX_M_KIB).contains(&self.m_kib) {
            Some(format!("m_cost={} KiB", self.m_kib))
        } else {
            None
        };
        match bad {
            None => Ok(()),
            Some(which) => Err(KmsError::store(format!(
                "The key store's Argon2 parameters are out of range ({which}; at most \
                 m_cost={ARGON2_MAX_M_KIB} KiB, t_cost={ARGON2_MAX_T}, lanes={ARGON2_MAX_P}): \
                 the store file {} is damaged or was tampered with; it was left untouched",
                path.display()
            ))),
        }
    }
}

/// Parses and unseals the bytes of a store file under `root`, as
/// [`KeyStore::open`] does once it has the root key (no Argon2, no file).
/// For the fuzz targets (`fuzz/`); not part of the API.
#[doc(hidden)]
pub fn parse_store_bytes(bytes: &[u8], root: &KeyMaterial) -> Result<StoreData> {
    let path = Path::new("<bytes>");
    StoreHeader::decode(bytes, path)?;
    KeyStore::unseal(bytes, root, path)
}

/// Identity of the store file's current version, to notice changes made by
/// other processes cheaply (one stat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    mtime_ns: i128,
    size: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        size: m.size(),
    })
}

pub struct KeyStore {
    path: PathBuf,
    header: StoreHeader,
    root: KeyMaterial,
    data: StoreData,
    stamp: Option<Stamp>,
    /// Set when the store is a PostgreSQL database (`path` is then its URL
    /// and `header`/`stamp` are unused).
    pg: Option<postgres::PgStore>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> KmsError {
    KmsError::Store(StoreError::io(format!("{what} {}", path.display()), e))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The default store location: /var/lib/kmsfs/keystore for root,
/// $XDG_DATA_HOME/kmsfs/keystore (or ~/.local/share/kmsfs/keystore) otherwise.
pub fn default_store_path() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/kmsfs/keystore");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("kmsfs/keystore")
}

fn derive_root(header: &StoreHeader, secret: &RootSecret, path: &Path) -> Result<KeyMaterial> {
    match (header.kind, secret) {
        (KIND_KEY_FILE, _) => read_root_key_file(&sibling(path, ".rootkey")),
        (KIND_PASSPHRASE, RootSecret::Passphrase(ask)) => {
            let passphrase = ask()?;
            let params = Params::new(header.m_kib, header.t, header.p, Some(32))
                .map_err(|e| KmsError::store(format!("bad Argon2 parameters in store: {e}")))?;
            let mut out = Zeroizing::new([0u8; 32]);
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password_into(passphrase.as_bytes(), &header.salt, &mut out[..])
                .map_err(|e| KmsError::store(format!("Argon2id failed: {e}")))?;
            KeyMaterial::from_slice(&out[..])
                .ok_or_else(|| KmsError::Internal("derived key has the wrong length".into()))
        }
        (_, RootSecret::KeyFile) => Err(KmsError::store(format!(
            "The key store {} is protected by a passphrase: set KMSFS_PASSPHRASE_FILE or run on a terminal",
            path.display()
        ))),
        (kind, _) => Err(KmsError::store(format!("unknown root key kind {kind}"))),
    }
}

fn read_root_key_file(path: &Path) -> Result<KeyMaterial> {
    let mut bytes = Zeroizing::new(Vec::new());
    let mut file =
        File::open(path).map_err(|e| io_err("cannot read the root key file", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| io_err("cannot read the root key file", path, e))?;
    check_root_key_file(path, &meta)?;
    file.read_to_end(&mut bytes)
        .map_err(|e| io_err("cannot read the root key file", path, e))?;
    if bytes.len() != 40 || bytes[0..8] != ROOT_KEY_MAGIC {
        return Err(KmsError::store(format!(
            "The root key file {} is not a kmsfs root key",
            path.display()
        )));
    }
    KeyMaterial::from_slice(&bytes[8..40])
        .ok_or_else(|| KmsError::Internal("root key has the wrong length".into()))
}

/// Refuses a root key file that another user could have written (they
/// would choose every key the store seals) or can read (it is the store's
/// one secret), as ssh refuses such a private key.
fn check_root_key_file(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != me && meta.uid() != 0 {
        return Err(KmsError::store(format!(
            "The root key file {} belongs to uid {}: only uid {me} or root may own it",
            path.display(),
            meta.uid()
        )));
    }
    if mode & 0o077 != 0 {
        return Err(KmsError::store(format!(
            "The root key file {} has mode {mode:04o}: others may read or change it \
             (chmod 600 it, and consider the key exposed if others could read it)",
            path.display()
        )));
    }
    Ok(())
}

fn create_root_key_file(path: &Path) -> Result<KeyMaterial> {
    let key = KeyMaterial::random();
    let mut bytes = Zeroizing::new(ROOT_KEY_MAGIC.to_vec());
    bytes.extend_from_slice(key.as_bytes());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("cannot create the root key file", path, e))?;
    f.write_all(&bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("cannot write the root key file", path, e))?;
    Ok(key)
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot fsync folder", dir, e))
}

/// Holds `<store>.lock` exclusively until dropped.
struct WriteLock(#[allow(dead_code)] nix::fcntl::Flock<File>);

fn lock(path: &Path) -> Result<WriteLock> {
    let lock_path = sibling(path, ".lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| io_err("cannot open the lock file", &lock_path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map(WriteLock)
        .map_err(|(_, e)| io_err("cannot lock", &lock_path, e.into()))
}

impl KeyStore {
    /// Opens the store at `path`, creating it (and its root key) if absent.
    /// `region` and `account` are the new store's default region and account.
    pub fn open_or_create(
        path: &Path,
        secret: &RootSecret,
        region: &str,
        account: &str,
    ) -> Result<KeyStore> {
        if is_postgres_url(path) {
            return KeyStore::open_postgres(path, secret, Some((region, account)));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| io_err("cannot create folder", dir, e))?;
        }
        if path.exists() {
            return KeyStore::open(path, secret);
        }
        let _guard = lock(path)?;
        // Another process may have created it while we waited for the lock.
        if path.exists() {
            return KeyStore::open(path, secret);
        }
        let (header, root) = match secret {
            RootSecret::KeyFile => {
                let key_path = sibling(path, ".rootkey");
                let root = if key_path.exists() {
                    read_root_key_file(&key_path)?
                } else {
                    create_root_key_file(&key_path)?
                };
                let header = StoreHeader {
                    kind: KIND_KEY_FILE,
                    m_kib: 0,
                    t: 0,
                    p: 0,
                    salt: [0; 16],
                };
                (header, root)
            }
            RootSecret::Passphrase(_) => {
                let header = StoreHeader::new_passphrase();
                let root = derive_root(&header, secret, path)?;
                (header, root)
            }
        };
        let mut store = KeyStore {
            path: path.to_path_buf(),
            header,
            root,
            data: StoreData::new(region, account),
            stamp: None,
            pg: None,
        };
        store.write()?;
        Ok(store)
    }

    /// Opens an existing store; refuses one that does not parse or authenticate.
    pub fn open(path: &Path, secret: &RootSecret) -> Result<KeyStore> {
        if is_postgres_url(path) {
            return KeyStore::open_postgres(path, secret, None);
        }
        let bytes = fs::read(path).map_err(|e| io_err("cannot read the key store", path, e))?;
        let (header, _) = StoreHeader::decode(&bytes, path)?;
        let root = derive_root(&header, secret, path)?;
        let data = Self::unseal(&bytes, &root, path)?;
        Ok(KeyStore {
            path: path.to_path_buf(),
            header,
            root,
            data,
            stamp: stamp(path),
            pg: None,
        })
    }

    fn open_postgres(
        url: &Path,
        secret: &RootSecret,
        create: Option<(&str, &str)>,
    ) -> Result<KeyStore> {
        let text = url
            .to_str()
            .ok_or_else(|| KmsError::store("the PostgreSQL URL is not UTF-8"))?;
        let (pg, data) = postgres::PgStore::open(text, secret, create)?;
        Ok(KeyStore {
            // Without the password, should the URL hold one.
            path: PathBuf::from(pg.shown()),
            header: StoreHeader {
                kind: 0,
                m_kib: 0,
                t: 0,
                p: 0,
                salt: [0; 16],
            },
            root: KeyMaterial::random(),
            data,
            stamp: None,
            pg: Some(pg),
        })
    }

    /// Whether this store is a PostgreSQL database shared with other
    /// processes (and hosts).
    pub fn is_shared_database(&self) -> bool {
        self.pg.is_some()
    }

    fn unseal(bytes: &[u8], root: &KeyMaterial, path: &Path) -> Result<StoreData> {
        let (_, nonce) = StoreHeader::decode(bytes, path)?;
        let plain = root
            .open(&nonce, &bytes[..STORE_HEADER_LEN], &bytes[STORE_HEADER_LEN..])
            .ok_or_else(|| {
                KmsError::store(format!(
                    "The key store {} cannot be authenticated: wrong root key or passphrase, or the file is damaged; it was left untouched",
                    path.display()
                ))
            })?;
        let mut data: StoreData = serde_json::from_slice(&plain).map_err(|e| {
            KmsError::store(format!(
                "The key store {} is authentic but its contents do not parse ({e}); it was left untouched",
                path.display()
            ))
        })?;
        // In memory only: the upgraded layout reaches the disk with the
        // next change, so merely reading never rewrites a store.
        data.upgrade()?;
        Ok(data)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn data(&self) -> &StoreData {
        &self.data
    }

    /// Re-reads the store if another process changed it since we last looked.
    pub fn refresh(&mut self) -> Result<()> {
        if let Some(pg) = self.pg.as_mut() {
            return pg.refresh(&mut self.data);
        }
        let now = stamp(&self.path);
        if now.is_some() && now == self.stamp {
            return Ok(());
        }
        self.reload()
    }

    fn reload(&mut self) -> Result<()> {
        let bytes =
            fs::read(&self.path).map_err(|e| io_err("cannot read the key store", &self.path, e))?;
        let (header, _) = StoreHeader::decode(&bytes, &self.path)?;
        if header != self.header {
            return Err(KmsError::store(format!(
                "The key store {} was replaced by another store while in use",
                self.path.display()
            )));
        }
        let stamp_before = stamp(&self.path);
        self.data = Self::unseal(&bytes, &self.root, &self.path)?;
        self.stamp = stamp_before;
        Ok(())
    }

    /// Applies `change` to the current on-disk contents under the write lock
    /// and saves the result. Nothing is written if `change` fails.
    pub fn update<T>(&mut self, change: impl FnOnce(&mut StoreData) -> Result<T>) -> Result<T> {
        if let Some(pg) = self.pg.as_mut() {
            pg.begin(&mut self.data)?;
            let mut next = self.data.clone();
            let out = match change(&mut next) {
                Ok(out) => out,
                Err(e) => {
                    pg.rollback();
                    return Err(e);
                }
            };
            next.sync_multi_region();
            pg.commit(&mut next)?;
            self.data = next;
            return Ok(out);
        }
        let _guard = lock(&self.path)?;
        self.reload()?;
        let mut next = self.data.clone();
        let out = change(&mut next)?;
        // Whatever changed, related multi-Region keys leave with the same
        // material (a rotation of the primary reaches every replica).
        next.sync_multi_region();
        let previous = std::mem::replace(&mut self.data, next);
        if let Err(e) = self.write() {
            self.data = previous;
            return Err(e);
        }
        Ok(out)
    }

    fn write(&mut self) -> Result<()> {
        let nonce = random_nonce();
        let header = self.header.encode(&nonce);
        let plain = Zeroizing::new(
            serde_json::to_vec(&self.data)
                .map_err(|e| KmsError::Internal(format!("cannot serialize the key store: {e}")))?,
        );
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&self.root.seal(&nonce, &header, &plain));

        let tmp = sibling(&self.path, &format!(".tmp.{}", std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| io_err("cannot create", &tmp, e))?;
            f.write_all(&bytes)
                .and_then(|_| f.sync_all())
                .map_err(|e| io_err("cannot write", &tmp, e))?;
            fs::rename(&tmp, &self.path).map_err(|e| io_err("cannot replace", &self.path, e))?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fsync_dir(dir)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        self.stamp = stamp(&self.path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alias, StoreData};

    #[test]
    fn create_reopen_and_refuse_wrong_root_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keystore");
        let mut store =
            KeyStore::open_or_create(&path, &RootSecret::KeyFile, "local", "000000000000").unwrap();
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        store
            .update(|d: &mut StoreData| {
                d.aliases_mut("local").insert(
                    "alias/x".into(),
                    Alias {
                        target: uuid::Uuid::nil(),
                        created: 1,
                        updated: 1,
                    },
                );
                Ok(())
            })
            .unwrap();
        let again = KeyStore::open(&path, &RootSecret::KeyFile).unwrap();
        assert!(again.data().alias("local", "alias/x").is_some());

        // Another root key: refused, and the store is left byte-identical.
        let before = fs::read(&path).unwrap();
        let key_path = sibling(&path, ".rootkey");
        fs::remove_file(&key_path).unwrap();
        create_root_key_file(&key_path).unwrap();
        let err = KeyStore::open(&path, &RootSecret::KeyFile).unwrap_err();
        assert!(matches!(err, KmsError::Store(_)), "{err}");
        assert!(err.to_string().contains("cannot be authenticated"));
        assert_eq!(fs::read(&path).unwrap(), before);

        // A root key file others may read or write is refused, as ssh
        // refuses such a private key.
        use std::os::unix::fs::PermissionsExt;
        for mode in [0o644, 0o620, 0o604] {
            fs::set_permissions(&key_path, fs::Permissions::from_mode(mode)).unwrap();
            let err = KeyStore::open(&path, &RootSecret::KeyFile).unwrap_err();
            assert!(err.to_string().contains("chmod 600"), "{mode:o}: {err}");
        }
    }

    #[test]
    fn passphrase_store_refuses_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore");
        let good = || Ok(Zeroizing::new("correct horse".to_string()));
        let bad = || Ok(Zeroizing::new("battery staple".to_string()));
        KeyStore::open_or_create(
            &path,
            &RootSecret::Passphrase(&good),
            "local",
            "000000000000",
        )
        .unwrap();
        assert!(!sibling(&path, ".rootkey").exists());
        KeyStore::open(&path, &RootSecret::Passphrase(&good)).unwrap();
        let before = fs::read(&path).unwrap();
        let err = KeyStore::open(&path, &RootSecret::Passphrase(&bad)).unwrap_err();
        assert!(err.to_string().contains("cannot be authenticated"), "{err}");
        let err = KeyStore::open(&path, &RootSecret::KeyFile).unwrap_err();
        assert!(err.to_string().contains("passphrase"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    #[test]
    fn tampered_argon2_cost_is_refused_before_deriving() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore");
        let good = || Ok(Zeroizing::new("correct horse".to_string()));
        KeyStore::open_or_create(
            &path,
            &RootSecret::Passphrase(&good),
            "local",
            "000000000000",
        )
        .unwrap();
        let original = fs::read(&path).unwrap();
        // t_cost at bytes 16..20, m_cost at 12..16, lanes at 20..24.
        for (offset, value, name) in [
            (16, u32::MAX, "t_cost=4294967295"),
            (16, 0, "t_cost=0"),
            (12, u32::MAX, "m_cost=4294967295 KiB"),
            (20, 0x00ff_ffff, "lanes=16777215"),
        ] {
            let mut bytes = original.clone();
            bytes[offset..offset + 4].copy_from_slice(&u32::to_be_bytes(value));
            fs::write(&path, &bytes).unwrap();
            // Asking for the passphrase means Argon2 is about to run with the
            // tampered costs (before the fix: for hours, or out of memory).
            let asked = std::cell::Cell::new(false);
            let ask = || {
                asked.set(true);
                Err(KmsError::store("the passphrase was asked for"))
            };
            let err = KeyStore::open(&path, &RootSecret::Passphrase(&ask)).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("Argon2 parameters are out of range")
                    && msg.contains(name)
                    && msg.contains("damaged or was tampered with"),
                "{msg}"
            );
            assert!(!asked.get(), "{name}: refused only after asking");
            assert_eq!(fs::read(&path).unwrap(), bytes, "left untouched");
        }
        fs::write(&path, &original).unwrap();
        KeyStore::open(&path, &RootSecret::Passphrase(&good)).unwrap();
    }

    #[test]
    fn corrupted_store_is_refused_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore");
        let mut store =
            KeyStore::open_or_create(&path, &RootSecret::KeyFile, "local", "000000000000").unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        fs::write(&path, &bytes).unwrap();
        assert!(KeyStore::open(&path, &RootSecret::KeyFile).is_err());
        // An update through a handle opened earlier must not clobber it either.
        assert!(store.update(|_| Ok(())).is_err());
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}
