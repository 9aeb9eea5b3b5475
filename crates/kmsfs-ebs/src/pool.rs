//! The pool directory: every image and the state that names them.
//!
//! ```text
//! POOL/            0700, owned by the user running kmsfs (root)
//!   state.json     volumes, snapshots, per-region defaults (docs/FORMAT.md)
//!   lock           flock'ed: shared to read the state, exclusive to change it
//!   images/        0700; vol-….img and snap-….img, 0600
//! ```
//!
//! The state is replaced whole and atomically (written to `state.json.tmp`,
//! fsynced, renamed, the directory fsynced), so a crash leaves the old
//! state or the new one, never a mix. Images are created before the state
//! names them and erased after it stops naming them, so a crash can leave
//! an image nobody names ([`Pool::orphans`]), never a record without its
//! image.
//!
//! Like a volume's backing directory, the pool is trusted only if nobody but
//! its owner can change it: a pool directory (or state file) that another
//! user owns or can write is refused.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use kmsfs_volume::backing::Dir;
use kmsfs_volume::trusted::{UntrustedFile, check_owner_and_mode, read_trusted};
use nix::fcntl::{Flock, FlockArg, RenameFlags};
use serde::{Deserialize, Serialize};

use super::error::{EbsError, Result};
use super::model::{RegionDefaults, Snapshot, Volume};

/// The state file's format version.
pub const STATE_VERSION: u32 = 1;
/// The state file may not grow past this (about 100,000 records).
const STATE_LIMIT: u64 = 64 << 20;
const STATE: &str = "state.json";
const STATE_TMP: &str = "state.json.tmp";
const LOCK: &str = "lock";
const IMAGES: &str = "images";

/// Everything the pool records.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolState {
    pub version: u32,
    #[serde(default)]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(default)]
    pub snapshots: BTreeMap<String, Snapshot>,
    /// Encryption by default, per region.
    #[serde(default)]
    pub defaults: BTreeMap<String, RegionDefaults>,
    /// Copies under way: snapshot id → the pid of the process copying. A
    /// copy whose process is gone is marked failed when the pool is next
    /// opened.
    #[serde(default)]
    pub copies: BTreeMap<String, u32>,
}

/// The pool, reached through descriptors: the directory the administrator
/// named is opened once, and every file in it is reached by one name from
/// that descriptor without following symlinks (`kmsfs_volume::backing`),
/// so nothing renamed or planted along the path later can redirect it.
pub struct Pool {
    /// For messages only.
    dir: PathBuf,
    root: Dir,
    images: Dir,
}

fn refused(path: &Path, why: impl std::fmt::Display) -> EbsError {
    EbsError::Storage(format!("refusing the EBS pool: {}: {why}", path.display()))
}

fn io_failed(what: &str, path: &Path, e: std::io::Error) -> EbsError {
    EbsError::Storage(format!("{what} {}: {e}", path.display()))
}

/// Refuses a directory another user could change.
fn check_dir(dir: &Dir, path: &Path) -> Result<()> {
    let meta = dir
        .metadata()
        .map_err(|e| io_failed("cannot stat", path, e))?;
    check_owner_and_mode(&meta).map_err(|e| refused(path, e))
}

/// The subdirectory `name` of `parent` (made 0700 if missing), opened
/// without following a symlink, and only if only its owner can change it.
fn private_subdir(parent: &Dir, name: &str, path: &Path) -> Result<Dir> {
    match parent.mkdir(OsStr::new(name), 0o700) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_failed("cannot create", path, e)),
    }
    let dir = parent.open_dir(OsStr::new(name)).map_err(|e| {
        refused(
            path,
            format!("not a directory reached without a symlink ({e})"),
        )
    })?;
    check_dir(&dir, path)?;
    Ok(dir)
}

impl Pool {
    /// Opens (creating if needed) the pool at `dir`.
    pub fn open(dir: &Path) -> Result<Pool> {
        let (parent, name) = match (dir.parent(), dir.file_name()) {
            (Some(p), Some(n)) => (
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                },
                n,
            ),
            _ => return Err(refused(dir, "not a directory name")),
        };
        std::fs::create_dir_all(parent).map_err(|e| io_failed("cannot create", parent, e))?;
        let parent_dir = Dir::open_root(parent).map_err(|e| io_failed("cannot open", parent, e))?;
        let name = name.to_str().ok_or_else(|| refused(dir, "not UTF-8"))?;
        let root = private_subdir(&parent_dir, name, dir)?;
        let images = private_subdir(&root, IMAGES, &dir.join(IMAGES))?;
        Ok(Pool {
            dir: dir.to_path_buf(),
            root,
            images,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self, arg: FlockArg) -> Result<Flock<File>> {
        let path = self.dir.join(LOCK);
        let name = OsStr::new(LOCK);
        let file = loop {
            match self.root.open_file(name, true) {
                Ok(f) => break f,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    match self.root.create_file(name, 0o600) {
                        Ok(f) => break f,
                        // Another process made it meanwhile: open that one.
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(io_failed("cannot create", &path, e)),
                    }
                }
                Err(e) => return Err(io_failed("cannot open", &path, e)),
            }
        };
        Flock::lock(file, arg)
            .map_err(|(_, e)| EbsError::Storage(format!("cannot lock {}: {e}", path.display())))
    }

    fn load(&self) -> Result<PoolState> {
        let path = self.dir.join(STATE);
        let bytes = match read_trusted(&self.root, OsStr::new(STATE), STATE_LIMIT) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Ok(PoolState {
                    version: STATE_VERSION,
                    ..PoolState::default()
                });
            }
            Err(UntrustedFile::Io(e)) => return Err(io_failed("cannot read", &path, e)),
            Err(e) => return Err(refused(&path, e)),
        };
        let state: PoolState = serde_json::from_slice(&bytes).map_err(|e| {
            EbsError::Storage(format!("{} is not a valid pool state: {e}", path.display()))
        })?;
        if state.version != STATE_VERSION {
            return Err(EbsError::Storage(format!(
                "{} has format version {}; this kmsfs reads version {STATE_VERSION}",
                path.display(),
                state.version
            )));
        }
        Ok(state)
    }

    fn store(&self, state: &PoolState) -> Result<()> {
        let path = self.dir.join(STATE);
        let text = serde_json::to_vec_pretty(state)
            .map_err(|e| EbsError::Internal(format!("cannot encode the pool state: {e}")))?;
        let tmp = OsStr::new(STATE_TMP);
        match self.root.unlink(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_failed("cannot remove", &self.dir.join(STATE_TMP), e)),
        }
        let mut file = self
            .root
            .create_file(tmp, 0o600)
            .map_err(|e| io_failed("cannot create", &self.dir.join(STATE_TMP), e))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_failed("cannot write", &self.dir.join(STATE_TMP), e))?;
        self.root
            .rename(tmp, &self.root, OsStr::new(STATE), RenameFlags::empty())
            .map_err(|e| io_failed("cannot replace", &path, e))?;
        self.root
            .sync()
            .map_err(|e| io_failed("cannot sync", &self.dir, e))
    }

    /// Reads the state under a shared lock.
    pub fn read<T>(&self, f: impl FnOnce(&PoolState) -> Result<T>) -> Result<T> {
        let _lock = self.lock(FlockArg::LockShared)?;
        f(&self.load()?)
    }

    /// Changes the state under the exclusive lock; `f`'s changes are kept
    /// (durably) only if it succeeds.
    pub fn update<T>(&self, f: impl FnOnce(&mut PoolState) -> Result<T>) -> Result<T> {
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let mut state = self.load()?;
        let out = f(&mut state)?;
        self.store(&state)?;
        Ok(out)
    }

    /// The file name of `id`'s image. Ids come from requests: only the two
    /// kinds the pool stores, in their exact form, can name a file (no `/`,
    /// no `..`).
    fn image_name(id: &str) -> Result<String> {
        if !(super::ids::is_id("vol", id) || super::ids::is_id("snap", id)) {
            return Err(EbsError::Internal(format!("not an image id: {id:?}")));
        }
        Ok(format!("{id}.img"))
    }

    fn image_path(&self, name: &str) -> PathBuf {
        self.dir.join(IMAGES).join(name)
    }

    /// Creates the (empty) image file of `id`; fails if it exists.
    pub fn create_image(&self, id: &str) -> Result<File> {
        let name = Self::image_name(id)?;
        self.images
            .create_file(OsStr::new(&name), 0o600)
            .map_err(|e| io_failed("cannot create", &self.image_path(&name), e))
    }

    /// Opens the image of `id` read-write: a regular file (no symlink,
    /// FIFO or device is opened) that only its owner can change.
    pub fn open_image(&self, id: &str) -> Result<File> {
        let name = Self::image_name(id)?;
        let path = self.image_path(&name);
        let file = self
            .images
            .open_file(OsStr::new(&name), true)
            .map_err(|e| io_failed("cannot open", &path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| io_failed("cannot stat", &path, e))?;
        check_owner_and_mode(&meta).map_err(|e| refused(&path, e))?;
        Ok(file)
    }

    /// Removes the image of `id` (after its key was erased); a missing file
    /// is not an error.
    pub fn remove_image(&self, id: &str) -> Result<()> {
        let name = Self::image_name(id)?;
        match self.images.unlink(OsStr::new(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_failed("cannot remove", &self.image_path(&name), e)),
        }
        self.images
            .sync()
            .map_err(|e| io_failed("cannot sync", &self.dir.join(IMAGES), e))
    }

    /// Image files no record names (left by a crash between creating an
    /// image and recording it).
    pub fn orphans(&self, state: &PoolState) -> Result<Vec<String>> {
        let entries = self
            .images
            .entries()
            .map_err(|e| io_failed("cannot list", &self.dir.join(IMAGES), e))?;
        Ok(entries
            .iter()
            .filter_map(|e| e.name.to_str()?.strip_suffix(".img").map(str::to_owned))
            .filter(|id| !state.volumes.contains_key(id) && !state.snapshots.contains_key(id))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn changes_survive_reopening_and_failed_changes_are_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = Pool::open(&tmp.path().join("pool")).unwrap();
        pool.update(|s| {
            s.defaults
                .entry("us-east-1".into())
                .or_default()
                .encryption_by_default = true;
            Ok(())
        })
        .unwrap();
        let e = pool.update(|s| {
            s.defaults.clear();
            Err::<(), _>(EbsError::IncorrectState("no".into()))
        });
        assert!(e.is_err());
        let pool = Pool::open(&tmp.path().join("pool")).unwrap();
        let on = pool
            .read(|s| Ok(s.defaults["us-east-1"].encryption_by_default))
            .unwrap();
        assert!(on);
        let mode = std::fs::metadata(tmp.path().join("pool/state.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_pool_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pool");
        Pool::open(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Pool::open(&dir).err().unwrap();
        assert!(e.to_string().contains("lets group or others write"), "{e}");
    }

    #[test]
    fn symlinks_in_the_pool_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pool");
        let pool = Pool::open(&dir).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("state.json"), br#"{"version": 1}"#).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("state.json"), dir.join("state.json")).unwrap();
        assert!(pool.read(|_| Ok(())).is_err(), "a symlinked state was read");
        std::fs::remove_file(dir.join("state.json")).unwrap();
        let id = "vol-0123456789abcdef0";
        std::fs::write(elsewhere.join("x.img"), b"not ours").unwrap();
        std::os::unix::fs::symlink(
            elsewhere.join("x.img"),
            dir.join(format!("images/{id}.img")),
        )
        .unwrap();
        assert!(pool.open_image(id).is_err(), "a symlinked image was opened");
        std::fs::remove_dir_all(dir.join("images")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("images")).unwrap();
        assert!(Pool::open(&dir).is_err(), "a symlinked images/ was used");
    }

    #[test]
    fn image_ids_cannot_name_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = Pool::open(&tmp.path().join("pool")).unwrap();
        assert!(pool.create_image("../state").is_err());
        assert!(pool.create_image("vol-0123456789abcdef0").is_ok());
        assert!(pool.create_image("vol-0123456789abcdef0").is_err());
        let state = pool.read(|s| Ok(s.clone())).unwrap();
        assert_eq!(pool.orphans(&state).unwrap(), vec!["vol-0123456789abcdef0"]);
    }
}
