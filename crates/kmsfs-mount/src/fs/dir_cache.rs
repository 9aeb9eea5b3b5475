//! A bounded cache of directory descriptors, by FUSE inode.
//!
//! Why: resolving a directory from the backing root costs one `openat` per
//! component; most requests name a directory the kernel used a moment ago.
//! A cached `O_PATH` descriptor names the directory inode itself, so it can
//! never come to mean another directory (its inode number cannot be reused
//! while we hold it); at worst the directory was removed and operations in
//! it fail with ENOENT. The bound keeps the daemon far from its descriptor
//! limit; the least recently used entry goes first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[cfg(test)]
use kmsfs_volume::backing::Dir;

/// Directory descriptors kept open at most.
pub(super) const CAPACITY: usize = 256;

struct Slot<T> {
    dir: Arc<T>,
    used: u64,
}

struct Inner<T> {
    slots: HashMap<u64, Slot<T>>,
    clock: u64,
}

/// `T` is what the cache holds per directory (the tree's `CachedDir`).
pub(super) struct DirCache<T> {
    capacity: usize,
    inner: Mutex<Inner<T>>,
}

impl<T> DirCache<T> {
    pub(super) fn new(capacity: usize) -> DirCache<T> {
        DirCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                clock: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn get(&self, ino: u64) -> Option<Arc<T>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.slots.get_mut(&ino).map(|slot| {
            slot.used = now;
            slot.dir.clone()
        })
    }

    pub(super) fn insert(&self, ino: u64, dir: Arc<T>) {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if inner.slots.len() >= self.capacity && !inner.slots.contains_key(&ino) {
            let oldest = inner
                .slots
                .iter()
                .min_by_key(|(_, slot)| slot.used)
                .map(|(ino, _)| *ino);
            if let Some(oldest) = oldest {
                inner.slots.remove(&oldest);
            }
        }
        inner.slots.insert(ino, Slot { dir, used: now });
    }

    pub(super) fn remove(&self, ino: u64) {
        self.lock().slots.remove(&ino);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_directory_goes_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let open = || Arc::new(Dir::open_root(tmp.path()).expect("open"));
        let cache: DirCache<Dir> = DirCache::new(2);
        cache.insert(1, open());
        cache.insert(2, open());
        assert!(cache.get(1).is_some());
        cache.insert(3, open());
        assert!(cache.get(2).is_none());
        assert!(cache.get(1).is_some() && cache.get(3).is_some());
        assert_eq!(cache.len(), 2);
        cache.remove(1);
        assert!(cache.get(1).is_none());
    }
}
