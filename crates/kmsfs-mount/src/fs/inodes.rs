//! Inode numbers ↔ backing paths.
//!
//! FUSE inode numbers are the backing files' own inode numbers (the backing
//! root is mapped to FUSE's root, 1), so hard links share an inode number
//! for free. For each inode we remember the (parent, name) links the kernel
//! has looked up; a path is rebuilt by walking parents, so renaming a
//! directory is one update, not one per descendant.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

pub const ROOT: u64 = 1;

#[derive(Debug, Default)]
struct Node {
    /// (parent inode, name) of every link the kernel knows; the first one
    /// is used to build the path.
    links: Vec<(u64, OsString)>,
    lookups: u64,
}

#[derive(Debug)]
pub struct InodeTable {
    root: PathBuf,
    root_backing_ino: u64,
    nodes: RwLock<HashMap<u64, Node>>,
}

impl InodeTable {
    pub fn new(root: PathBuf, root_backing_ino: u64) -> InodeTable {
        InodeTable {
            root,
            root_backing_ino,
            nodes: RwLock::new(HashMap::new()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The FUSE inode number of a backing inode.
    pub fn fuse_ino(&self, backing_ino: u64) -> u64 {
        if backing_ino == self.root_backing_ino {
            ROOT
        } else {
            backing_ino
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, Node>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, Node>> {
        self.nodes.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The backing path of an inode the kernel knows, or None (ESTALE).
    pub fn path(&self, ino: u64) -> Option<PathBuf> {
        let nodes = self.read();
        let mut names: Vec<&OsStr> = Vec::new();
        let mut current = ino;
        // A path is at most as deep as the table is large; the bound stops a
        // corrupted (cyclic) table from looping forever.
        for _ in 0..=nodes.len() {
            if current == ROOT {
                let mut path = self.root.clone();
                path.extend(names.iter().rev());
                return Some(path);
            }
            let (parent, name) = nodes.get(&current)?.links.first()?;
            names.push(name);
            current = *parent;
        }
        None
    }

    pub fn child_path(&self, parent: u64, name: &OsStr) -> Option<PathBuf> {
        self.path(parent).map(|p| p.join(name))
    }

    /// The kernel learnt of `ino` as `parent/name` (lookup, create, …).
    pub fn remember(&self, ino: u64, parent: u64, name: &OsStr) {
        if ino == ROOT {
            return;
        }
        let mut nodes = self.write();
        let node = nodes.entry(ino).or_default();
        node.lookups += 1;
        if !node.links.iter().any(|(p, n)| *p == parent && n == name) {
            // The newest link first: it is the one most likely to exist.
            node.links.insert(0, (parent, name.to_os_string()));
        }
    }

    pub fn forget(&self, ino: u64, n: u64) {
        let mut nodes = self.write();
        if let Some(node) = nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
            if node.lookups == 0 {
                nodes.remove(&ino);
            }
        }
    }

    /// `parent/name` no longer names `ino` (unlink, rmdir, replaced by rename).
    pub fn unlink(&self, ino: u64, parent: u64, name: &OsStr) {
        if let Some(node) = self.write().get_mut(&ino) {
            node.links.retain(|(p, n)| !(*p == parent && n == name));
        }
    }

    /// `ino` moved from `from` to `to`.
    pub fn rename(&self, ino: u64, from: (u64, &OsStr), to: (u64, &OsStr)) {
        if let Some(node) = self.write().get_mut(&ino) {
            node.links.retain(|(p, n)| !(*p == from.0 && n == from.1));
            node.links.retain(|(p, n)| !(*p == to.0 && n == to.1));
            node.links.insert(0, (to.0, to.1.to_os_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_renames_and_links() {
        let t = InodeTable::new("/b".into(), 2);
        assert_eq!(t.fuse_ino(2), ROOT);
        t.remember(10, ROOT, OsStr::new("dir"));
        t.remember(11, 10, OsStr::new("f"));
        assert_eq!(t.path(11).unwrap(), PathBuf::from("/b/dir/f"));
        t.remember(12, ROOT, OsStr::new("other"));
        t.rename(10, (ROOT, OsStr::new("dir")), (12, OsStr::new("moved")));
        assert_eq!(t.path(11).unwrap(), PathBuf::from("/b/other/moved/f"));
        t.remember(11, ROOT, OsStr::new("hardlink"));
        assert_eq!(t.path(11).unwrap(), PathBuf::from("/b/hardlink"));
        t.unlink(11, ROOT, OsStr::new("hardlink"));
        assert_eq!(t.path(11).unwrap(), PathBuf::from("/b/other/moved/f"));
        t.forget(11, 2);
        assert!(t.path(11).is_none());
    }
}
