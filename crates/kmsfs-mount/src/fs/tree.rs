//! From a FUSE inode to the backing inode it stands for, through directory
//! descriptors only (see ARCHITECTURE.md, "The backing tree").
//!
//! The kernel names inodes by number; the inode table remembers the
//! (parent, name) links it was told about. A directory is found in the
//! descriptor cache, or else by walking down from its nearest cached
//! ancestor (or the root) one `openat(O_PATH|O_DIRECTORY|O_NOFOLLOW)` per
//! component, checking at each step that the directory reached is the
//! inode (device and number) the table expects. Any other inode is ESTALE:
//! an entry swapped for a symlink or another directory in the backing tree
//! is never acted on. A non-directory is reached as (its parent's
//! descriptor, one name) and checked the same way.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use std::sync::OnceLock;

use fuser::Errno;
use kmsfs_format::names::DirId;
use kmsfs_volume::backing::{Atime, Dir, Node};
use kmsfs_volume::names::VolumeNames;

use super::dir_cache::{CAPACITY, DirCache};
use super::inodes::{InodeTable, ROOT};

pub(super) fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A directory descriptor and, once read, the directory's id (format
/// version 2 names its entries with it; see `kmsfs_volume::names`).
pub(super) struct CachedDir {
    dir: Dir,
    id: OnceLock<Option<DirId>>,
}

impl CachedDir {
    fn new(dir: Dir) -> CachedDir {
        CachedDir {
            dir,
            id: OnceLock::new(),
        }
    }

    /// The directory's id under `names` (read once, then remembered for as
    /// long as the descriptor is cached).
    pub(super) fn id(&self, names: &VolumeNames) -> Result<Option<DirId>, Errno> {
        if let Some(id) = self.id.get() {
            return Ok(*id);
        }
        let id = names.dir_id(&self.dir).map_err(|e| errno(&e))?;
        Ok(*self.id.get_or_init(|| id))
    }
}

impl std::ops::Deref for CachedDir {
    type Target = Dir;
    fn deref(&self) -> &Dir {
        &self.dir
    }
}

/// An inode found through one of its links: the parent directory and the
/// name in it (None for the root), and the inode itself.
pub(super) struct Located {
    pub link: Option<(Arc<CachedDir>, OsString)>,
    pub node: Node,
}

pub(super) struct Tree {
    pub inodes: InodeTable,
    root: Arc<CachedDir>,
    root_dev: u64,
    dirs: DirCache<CachedDir>,
    /// The backing directory as the administrator named it: for log lines.
    root_path: std::path::PathBuf,
    /// Directories removed through the mount that the kernel still knows
    /// (a process's working directory, say), by FUSE inode, until it
    /// forgets them. A removed directory has no name to be located by, but
    /// on a local filesystem it still has its attributes: the kernel asks
    /// for them (a permission check on `chdir("..")` once its cached ones
    /// expire, a `stat(".")`), and ESTALE there made `cd ..` fail
    /// (generic/011).
    removed: std::sync::Mutex<std::collections::HashMap<u64, Dir>>,
}

impl Tree {
    /// The tree whose root is `root` (the directory `root_path` names).
    pub(super) fn open(root: Dir, root_path: &Path) -> io::Result<Tree> {
        let meta = root.metadata()?;
        Ok(Tree {
            inodes: InodeTable::new(meta.ino()),
            root: Arc::new(CachedDir::new(root)),
            root_dev: meta.dev(),
            dirs: DirCache::new(CAPACITY),
            root_path: root_path.to_path_buf(),
            removed: Default::default(),
        })
    }

    pub(super) fn root(&self) -> &Arc<CachedDir> {
        &self.root
    }

    /// Whether `meta` is the backing inode of FUSE inode `ino`.
    fn is(&self, ino: u64, meta: &Metadata) -> bool {
        meta.dev() == self.root_dev && self.inodes.fuse_ino(meta.ino()) == ino
    }

    /// The directory descriptor of FUSE inode `ino`.
    pub(super) fn dir(&self, ino: u64) -> Result<Arc<CachedDir>, Errno> {
        if ino == ROOT {
            return Ok(self.root.clone());
        }
        if let Some(dir) = self.dirs.get(ino) {
            return Ok(dir);
        }
        // Up the first links to a known directory; a directory has one link.
        let mut chain: Vec<(u64, OsString)> = Vec::new();
        let mut current = ino;
        let mut start = loop {
            if current == ROOT {
                break self.root.clone();
            }
            if let Some(dir) = self.dirs.get(current) {
                break dir;
            }
            let (parent, name) = self.inodes.first_link(current).ok_or(Errno::ESTALE)?;
            chain.push((current, name));
            // A cycle in a corrupted table must not loop forever.
            if chain.len() > self.inodes.known() + 1 {
                return Err(Errno::ESTALE);
            }
            current = parent;
        };
        // … and down again, checking every step.
        for (expected, name) in chain.into_iter().rev() {
            let dir = start.open_dir(&name).map_err(|e| stale_if_swapped(&e))?;
            let meta = dir.metadata().map_err(|e| errno(&e))?;
            if !self.is(expected, &meta) {
                return Err(Errno::ESTALE);
            }
            let dir = Arc::new(CachedDir::new(dir));
            self.dirs.insert(expected, dir.clone());
            start = dir;
        }
        Ok(start)
    }

    /// FUSE inode `ino`, whatever its kind, through the first of its links
    /// that still names it.
    pub(super) fn locate(&self, ino: u64) -> Result<Located, Errno> {
        if ino == ROOT {
            let node = self.root.as_node().map_err(|e| errno(&e))?;
            return Ok(Located { link: None, node });
        }
        let links = self.inodes.links(ino).unwrap_or_default();
        if links.is_empty()
            && let Some(dir) = self
                .removed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&ino)
        {
            let node = dir.as_node().map_err(|e| errno(&e))?;
            return Ok(Located { link: None, node });
        }
        let mut failure = Errno::ESTALE;
        for (parent, name) in links {
            let Ok(dir) = self.dir(parent) else {
                continue;
            };
            match dir.open_node(&name) {
                Ok(node) if self.is(ino, node.opened_metadata()) => {
                    return Ok(Located {
                        link: Some((dir, name)),
                        node,
                    });
                }
                Ok(_) => failure = Errno::ESTALE,
                Err(e) => failure = stale_if_swapped(&e),
            }
        }
        Err(failure)
    }

    /// Opens FUSE inode `ino`, a regular file, for I/O.
    pub(super) fn open_file(&self, ino: u64, writable: bool, atime: Atime) -> Result<File, Errno> {
        let located = self.locate(ino)?;
        let (dir, name) = located.link.ok_or(Errno::EISDIR)?;
        let file = dir
            .open_file_with(&name, writable, atime)
            .map_err(|e| errno(&e))?;
        let meta = file.metadata().map_err(|e| errno(&e))?;
        if !self.is(ino, &meta) {
            return Err(Errno::ESTALE);
        }
        Ok(file)
    }

    /// The kernel learnt of `ino` as `parent/name`.
    pub(super) fn remember(&self, ino: u64, parent: u64, name: &OsStr) {
        self.inodes.remember(ino, parent, name);
    }

    pub(super) fn forget(&self, ino: u64, n: u64) {
        if self.inodes.forget(ino, n) {
            self.dirs.remove(ino);
            self.removed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ino);
        }
    }

    /// The directory `ino` (`dir`, a descriptor of it) was removed through
    /// the mount: keep answering for its attributes while the kernel knows
    /// it (see `removed`).
    pub(super) fn keep_removed_dir(&self, ino: u64, dir: Dir) {
        if self.inodes.links(ino).is_some() {
            self.removed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ino, dir);
        }
    }

    /// `ino` is gone (rmdir, replaced by a rename): drop its descriptor.
    pub(super) fn drop_dir(&self, ino: u64) {
        self.dirs.remove(ino);
    }

    /// The backing path of `ino` (or of its entry `name`), for log lines
    /// only: it is never handed to the kernel.
    pub(super) fn describe(&self, ino: u64, name: Option<&OsStr>) -> String {
        let mut path = self.root_path.clone();
        let below = self.inodes.describe(ino);
        if !below.is_empty() {
            path.push(below);
        }
        if let Some(name) = name {
            path.push(name);
        }
        path.display().to_string()
    }
}

/// A name that is now a symlink or a non-directory where a directory was:
/// the inode the kernel means is not there (ESTALE), as for any swap.
fn stale_if_swapped(e: &io::Error) -> Errno {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => Errno::ESTALE,
        _ => errno(e),
    }
}
