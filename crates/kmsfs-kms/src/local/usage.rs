//! Last cryptographic use per key (GetKeyLastUsage), kept cheaply.
//!
//! The store is one sealed file, rewritten whole (fsync, rename) on every
//! change; writing it on every Encrypt or Decrypt would make each
//! cryptographic call as costly as a key management call and serialise
//! them on the store's lock. So uses are recorded here, in memory, and
//! merged into the store with the next write this process makes anyway (any
//! key management call, CreateKey, …) and when the `LocalKms` is dropped
//! (end of a CLI call, of `kmsfs kms serve`, of a mount). GetKeyLastUsage
//! answers the newer of the stored and the in-memory record, so a process
//! always sees its own uses at once; another process sees them after the
//! next merge. docs/KMS.md, "Key last usage", says the same to users.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use super::LocalKms;
use crate::model::{LastUse, StoreData, Timestamp};
use crate::protocol::Operation;

pub(super) struct UsageTracker {
    /// Since when this process records (the tracking start of a store that
    /// never recorded before).
    since: Timestamp,
    pending: Mutex<HashMap<Uuid, LastUse>>,
    /// Bumped on every record, and `merged` set to the value a merge saw:
    /// whether anything is newer than the last merge, without the lock.
    recorded: AtomicU64,
    merged: AtomicU64,
}

impl UsageTracker {
    pub(super) fn new(now: Timestamp) -> UsageTracker {
        UsageTracker {
            since: now,
            pending: Mutex::new(HashMap::new()),
            recorded: AtomicU64::new(0),
            merged: AtomicU64::new(0),
        }
    }

    pub(super) fn record(&self, keys: &[Uuid], op: Operation, now: Timestamp) {
        if keys.is_empty() {
            return;
        }
        // A poisoned lock only loses usage records, never key data.
        if let Ok(mut pending) = self.pending.lock() {
            for id in keys {
                pending.insert(
                    *id,
                    LastUse {
                        when: now,
                        operation: op.name().to_string(),
                    },
                );
            }
            self.recorded.fetch_add(1, Ordering::Release);
        }
    }

    /// Copies the in-memory records into `data` (about to be written),
    /// keeping the newer of each pair. The records stay in memory: the
    /// write may still fail, and merging again is harmless.
    pub(super) fn merge_into(&self, data: &mut StoreData) {
        let seen = self.recorded.load(Ordering::Acquire);
        let Ok(pending) = self.pending.lock() else {
            return;
        };
        let usage = &mut data.usage;
        let since = *usage.tracking_since.get_or_insert(self.since);
        usage.tracking_since = Some(since.min(self.since));
        for (id, last) in pending.iter() {
            if !data.keys.contains_key(id) {
                continue;
            }
            let newer = usage.last.get(id).is_none_or(|l| l.when <= last.when);
            if newer {
                usage.last.insert(*id, last.clone());
            }
        }
        self.merged.store(seen, Ordering::Release);
    }

    fn unmerged(&self) -> bool {
        self.recorded.load(Ordering::Acquire) != self.merged.load(Ordering::Acquire)
    }

    /// The newer of the stored record and this process's.
    pub(super) fn last_use(&self, data: &StoreData, id: &Uuid) -> Option<LastUse> {
        let stored = data.usage.last.get(id).cloned();
        let mine = self.pending.lock().ok().and_then(|p| p.get(id).cloned());
        match (stored, mine) {
            (Some(s), Some(m)) => Some(if m.when >= s.when { m } else { s }),
            (s, m) => s.or(m),
        }
    }

    /// When recording began, for this store as this process sees it.
    pub(super) fn tracking_since(&self, data: &StoreData) -> Timestamp {
        data.usage
            .tracking_since
            .map_or(self.since, |s| s.min(self.since))
    }
}

impl Drop for LocalKms {
    /// Writes the uses not yet merged, best effort: a store this process
    /// may not write (a read-only mount of it) only loses usage records.
    fn drop(&mut self) {
        if !self.usage.unmerged() {
            return;
        }
        let Ok(store) = self.store.get_mut() else {
            return;
        };
        let usage = &self.usage;
        if let Err(e) = store.update(|data| {
            usage.merge_into(data);
            Ok(())
        }) {
            tracing::warn!(error = %e, "could not save the keys' last usage to the key store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Key, KeyState, Origin};

    fn test_key(key_id: Uuid) -> Key {
        Key {
            key_id,
            region: "local".into(),
            description: String::new(),
            creation_date: 0,
            origin: Origin::AwsKms,
            state: KeyState::Enabled,
            deletion_date: None,
            pending_window_days: None,
            rotation_period_days: None,
            next_rotation: None,
            versions: vec![],
            policy: String::new(),
            parsed_policy: Default::default(),
            tags: vec![],
            pending_import: None,
            key_spec: Default::default(),
            key_usage: Default::default(),
            private_material: None,
            deleted_material_digest: None,
            grants: Vec::new(),
            multi_region: None,
        }
    }

    #[test]
    fn newer_use_wins_and_merge_keeps_known_keys_only() {
        let t = UsageTracker::new(100);
        let mut data = StoreData::new("local", "000000000000");
        let known = Uuid::new_v4();
        let gone = Uuid::new_v4();
        data.keys.insert(known, test_key(known));
        t.record(&[known, gone], Operation::Encrypt, 150);
        assert!(t.unmerged());
        assert_eq!(
            t.last_use(&data, &known).map(|l| l.operation),
            Some("Encrypt".to_string())
        );
        t.merge_into(&mut data);
        assert!(!t.unmerged());
        assert_eq!(data.usage.tracking_since, Some(100));
        assert_eq!(data.usage.last.get(&known).map(|l| l.when), Some(150));
        assert!(!data.usage.last.contains_key(&gone));
        // A newer stored record (another process) beats an older own one.
        data.usage.last.insert(
            known,
            LastUse {
                when: 200,
                operation: "Decrypt".into(),
            },
        );
        assert_eq!(t.last_use(&data, &known).map(|l| l.when), Some(200));
        t.merge_into(&mut data);
        assert_eq!(data.usage.last.get(&known).map(|l| l.when), Some(200));
    }
}
