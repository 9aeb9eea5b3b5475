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
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::error::{EbsError, Result};
use super::model::{RegionDefaults, Snapshot, Volume};

/// The state file's format version.
pub const STATE_VERSION: u32 = 1;
/// The state file may not grow past this (about 100,000 records).
const STATE_LIMIT: u64 = 64 << 20;

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

pub struct Pool {
    dir: PathBuf,
}

fn io_err<'a>(what: &'a str, path: &'a Path) -> impl Fn(std::io::Error) -> EbsError + 'a {
    move |e| EbsError::Storage(format!("{what} {}: {e}", path.display()))
}

/// Refuses a directory or file another user could have changed.
fn check_trusted(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(EbsError::Storage(format!(
            "refusing the EBS pool: {} belongs to uid {}, not to uid {me} or root",
            path.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(EbsError::Storage(format!(
            "refusing the EBS pool: {} has mode {:04o}, which lets group or others write it",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Creates `path` as a 0700 directory if it is missing, then checks it is a
/// real directory (not a symlink) that only its owner can change.
fn private_dir(path: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("cannot create", path)(e)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(io_err("cannot stat", path))?;
    if !meta.is_dir() {
        return Err(EbsError::Storage(format!(
            "refusing the EBS pool: {} is not a directory",
            path.display()
        )));
    }
    check_trusted(path, &meta)
}

impl Pool {
    /// Opens (creating if needed) the pool at `dir`.
    pub fn open(dir: &Path) -> Result<Pool> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
        }
        private_dir(dir)?;
        private_dir(&dir.join("images"))?;
        Ok(Pool {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self, arg: FlockArg) -> Result<Flock<File>> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err("cannot open", &path))?;
        Flock::lock(file, arg)
            .map_err(|(_, e)| EbsError::Storage(format!("cannot lock {}: {e}", path.display())))
    }

    fn load(&self) -> Result<PoolState> {
        let path = self.dir.join("state.json");
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PoolState {
                    version: STATE_VERSION,
                    ..PoolState::default()
                });
            }
            Err(e) => return Err(io_err("cannot open", &path)(e)),
        };
        let meta = file.metadata().map_err(io_err("cannot stat", &path))?;
        check_trusted(&path, &meta)?;
        if !meta.is_file() || meta.len() > STATE_LIMIT {
            return Err(EbsError::Storage(format!(
                "refusing {}: not a regular file of at most {STATE_LIMIT} bytes",
                path.display()
            )));
        }
        let mut text = String::new();
        file.take(STATE_LIMIT)
            .read_to_string(&mut text)
            .map_err(io_err("cannot read", &path))?;
        let state: PoolState = serde_json::from_str(&text).map_err(|e| {
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
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(state)
            .map_err(|e| EbsError::Internal(format!("cannot encode the pool state: {e}")))?;
        let _ = std::fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io_err("cannot create", &tmp))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(io_err("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err("cannot replace", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot sync", &self.dir))
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

    fn image_path(&self, id: &str) -> Result<PathBuf> {
        // Ids come from requests: only the two kinds the pool stores, in
        // their exact form, can name a file (no `/`, no `..`).
        if !(super::ids::is_id("vol", id) || super::ids::is_id("snap", id)) {
            return Err(EbsError::Internal(format!("not an image id: {id:?}")));
        }
        Ok(self.dir.join("images").join(format!("{id}.img")))
    }

    /// Creates the (empty) image file of `id`; fails if it exists.
    pub fn create_image(&self, id: &str) -> Result<File> {
        let path = self.image_path(id)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err("cannot create", &path))
    }

    /// Opens the image of `id` read-write, refusing anything but a regular
    /// file of ours.
    pub fn open_image(&self, id: &str) -> Result<File> {
        let path = self.image_path(id)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err("cannot open", &path))?;
        let meta = file.metadata().map_err(io_err("cannot stat", &path))?;
        if !meta.is_file() {
            return Err(EbsError::Storage(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        check_trusted(&path, &meta)?;
        Ok(file)
    }

    /// Removes the image of `id` (after its key was erased); a missing file
    /// is not an error.
    pub fn remove_image(&self, id: &str) -> Result<()> {
        let path = self.image_path(id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot remove", &path)(e)),
        }
        File::open(self.dir.join("images"))
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot sync", &self.dir))
    }

    /// Image files no record names (left by a crash between creating an
    /// image and recording it).
    pub fn orphans(&self, state: &PoolState) -> Result<Vec<String>> {
        let dir = self.dir.join("images");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err("cannot list", &dir))? {
            let entry = entry.map_err(io_err("cannot list", &dir))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".img")) else {
                continue;
            };
            if !state.volumes.contains_key(id) && !state.snapshots.contains_key(id) {
                out.push(id.to_owned());
            }
        }
        Ok(out)
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
