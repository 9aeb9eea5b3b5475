//! Inode numbers ↔ the links the kernel knows.
//!
//! FUSE inode numbers are the backing files' own inode numbers (the backing
//! root is mapped to FUSE's root, 1), so hard links share an inode number
//! for free. For each inode we remember the (parent, name) links the kernel
//! has looked up; `tree` resolves an inode from them one component at a
//! time, so renaming a directory is one update, not one per descendant, and
//! no path is ever built.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::RwLock;

pub(crate) const ROOT: u64 = 1;

#[derive(Debug, Default)]
struct Node {
    /// (parent inode, name) of every link the kernel knows; the first one
    /// is used to build the path.
    links: Vec<(u64, OsString)>,
    lookups: u64,
}

#[derive(Debug)]
pub(crate) struct InodeTable {
    root_backing_ino: u64,
    nodes: RwLock<HashMap<u64, Node>>,
}

impl InodeTable {
    pub(crate) fn new(root_backing_ino: u64) -> InodeTable {
        InodeTable {
            root_backing_ino,
            nodes: RwLock::new(HashMap::new()),
        }
    }

    /// The FUSE inode number of a backing inode.
    pub(crate) fn fuse_ino(&self, backing_ino: u64) -> u64 {
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

    /// How many inodes the table knows.
    pub(crate) fn known(&self) -> usize {
        self.read().len()
    }

    /// The link of `ino` to resolve it by (the newest the kernel told us).
    pub(crate) fn first_link(&self, ino: u64) -> Option<(u64, OsString)> {
        self.read().get(&ino)?.links.first().cloned()
    }

    /// Every link of `ino` the kernel knows, newest first.
    pub(crate) fn links(&self, ino: u64) -> Option<Vec<(u64, OsString)>> {
        Some(self.read().get(&ino)?.links.clone())
    }

    /// `a/b/c` for logs: the names from the root down to `ino` ("" for
    /// the root).
    pub(crate) fn describe(&self, ino: u64) -> String {
        let nodes = self.read();
        let mut names: Vec<String> = Vec::new();
        let mut current = ino;
        for _ in 0..=nodes.len() {
            if current == ROOT {
                names.reverse();
                return names.join("/");
            }
            let Some((parent, name)) = nodes.get(&current).and_then(|n| n.links.first()) else {
                break;
            };
            names.push(name.to_string_lossy().into_owned());
            current = *parent;
        }
        format!("<inode {ino}>")
    }

    /// The kernel learnt of `ino` as `parent/name` (lookup, create, …).
    pub(crate) fn remember(&self, ino: u64, parent: u64, name: &OsStr) {
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

    /// The kernel dropped `n` references; true if it knows `ino` no more.
    pub(crate) fn forget(&self, ino: u64, n: u64) -> bool {
        let mut nodes = self.write();
        if let Some(node) = nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
            if node.lookups == 0 {
                nodes.remove(&ino);
                return true;
            }
        }
        false
    }

    /// `parent/name` no longer names `ino` (unlink, rmdir, replaced by rename).
    pub(crate) fn unlink(&self, ino: u64, parent: u64, name: &OsStr) {
        if let Some(node) = self.write().get_mut(&ino) {
            node.links.retain(|(p, n)| !(*p == parent && n == name));
        }
    }

    /// `ino` moved from `from` to `to`.
    pub(crate) fn rename(&self, ino: u64, from: (u64, &OsStr), to: (u64, &OsStr)) {
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

    fn link(t: &InodeTable, ino: u64) -> (u64, String) {
        let (p, n) = t.first_link(ino).expect("known");
        (p, n.to_string_lossy().into_owned())
    }

    #[test]
    fn links_follow_renames_and_hard_links() {
        let t = InodeTable::new(2);
        assert_eq!(t.fuse_ino(2), ROOT);
        t.remember(10, ROOT, OsStr::new("dir"));
        t.remember(11, 10, OsStr::new("f"));
        assert_eq!(t.describe(11), "dir/f");
        t.remember(12, ROOT, OsStr::new("other"));
        t.rename(10, (ROOT, OsStr::new("dir")), (12, OsStr::new("moved")));
        assert_eq!(t.describe(11), "other/moved/f");
        t.remember(11, ROOT, OsStr::new("hardlink"));
        assert_eq!(link(&t, 11), (ROOT, "hardlink".into()));
        assert_eq!(t.links(11).map(|l| l.len()), Some(2));
        t.unlink(11, ROOT, OsStr::new("hardlink"));
        assert_eq!(link(&t, 11), (10, "f".into()));
        assert!(t.forget(11, 2));
        assert!(t.first_link(11).is_none());
    }
}
