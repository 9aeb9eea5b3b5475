//! A bounded cache of unwrapped data keys in front of a remote key service,
//! like the AWS Encryption SDK's caching materials manager: opening many
//! files that were wrapped under one CMK should not cost a round trip each.
//!
//! - Only *unwrapping* is cached: `decrypt` answers are kept, keyed by the
//!   caller's uid, the exact ciphertext blob and the encryption context; a
//!   data key made by `generate_data_key` is put in as well (its file will be
//!   opened next). New data keys are never reused: every file still gets its
//!   own.
//! - Bounded in count (least recently used goes first) and in age (an entry
//!   older than the age limit is never served, so a key disabled in the KMS
//!   stops new opens within that time).
//! - Plaintext keys are zeroized when an entry is evicted, expires, or the
//!   cache is dropped.
//! - `re_encrypt` and `describe_key` always go to the service.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use super::blob::{EncryptionContext, encode_context};
use super::clock::Clock;
use super::error::{KmsError, Result};
use super::model::Timestamp;
use super::policy::Caller;
use super::{DataKeyPair, Decrypted, KeyDescription, KeyService, Wrapped};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most data keys held at once; 0 disables the cache.
    pub max_keys: usize,
    /// Seconds an unwrapped key may be served after the service gave it.
    pub max_age_seconds: i64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_keys: 10_000,
            max_age_seconds: 60,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    uid: u32,
    blob: Vec<u8>,
    ctx: Vec<u8>,
}

struct Entry {
    key_arn: String,
    key_version: u32,
    plaintext: Zeroizing<Vec<u8>>,
    fetched: Timestamp,
    /// Position in the recency order.
    seq: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<CacheKey, Entry>,
    /// seq → key, oldest use first.
    recency: BTreeMap<u64, CacheKey>,
    next_seq: u64,
}

impl State {
    fn remove(&mut self, key: &CacheKey) {
        if let Some(e) = self.entries.remove(key) {
            self.recency.remove(&e.seq);
        }
    }

    fn touch(&mut self, key: &CacheKey) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(e) = self.entries.get_mut(key) {
            self.recency.remove(&e.seq);
            e.seq = seq;
            self.recency.insert(seq, key.clone());
        }
    }
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

pub struct CachingKms {
    inner: Arc<dyn KeyService>,
    limits: CacheLimits,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for CachingKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingKms")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl CachingKms {
    pub fn new(inner: Arc<dyn KeyService>, limits: CacheLimits, clock: Arc<dyn Clock>) -> Self {
        CachingKms {
            inner,
            limits,
            clock,
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.entries.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops (and zeroizes) every cached key.
    pub fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = State::default();
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| KmsError::Internal("data key cache lock poisoned".into()))
    }

    fn lookup(&self, key: &CacheKey) -> Result<Option<Decrypted>> {
        let now = self.clock.now();
        let mut s = self.lock()?;
        let fresh = match s.entries.get(key) {
            None => return Ok(None),
            Some(e) => now - e.fetched < self.limits.max_age_seconds && now >= e.fetched,
        };
        if !fresh {
            s.remove(key);
            self.evictions.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        s.touch(key);
        let e = &s.entries[key];
        Ok(Some(Decrypted {
            key_arn: e.key_arn.clone(),
            key_version: e.key_version,
            plaintext: e.plaintext.clone(),
        }))
    }

    fn insert(&self, key: CacheKey, key_arn: &str, key_version: u32, plaintext: &[u8]) {
        if self.limits.max_keys == 0 || self.limits.max_age_seconds <= 0 {
            return;
        }
        let Ok(mut s) = self.lock() else { return };
        s.remove(&key);
        while s.entries.len() >= self.limits.max_keys {
            let Some((_, oldest)) = s.recency.pop_first() else {
                break;
            };
            s.entries.remove(&oldest);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.recency.insert(seq, key.clone());
        s.entries.insert(
            key,
            Entry {
                key_arn: key_arn.to_string(),
                key_version,
                plaintext: Zeroizing::new(plaintext.to_vec()),
                fetched: self.clock.now(),
                seq,
            },
        );
    }
}

fn cache_key(caller: &Caller, blob: &[u8], ctx: &EncryptionContext) -> CacheKey {
    CacheKey {
        uid: caller.uid,
        blob: blob.to_vec(),
        ctx: encode_context(ctx),
    }
}

impl KeyService for CachingKms {
    fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<DataKeyPair> {
        let pair = self.inner.generate_data_key(caller, key_id, ctx)?;
        self.insert(
            cache_key(caller, &pair.ciphertext_blob, ctx),
            &pair.key_arn,
            pair.key_version,
            &pair.plaintext,
        );
        Ok(pair)
    }

    fn decrypt(&self, caller: &Caller, blob: &[u8], ctx: &EncryptionContext) -> Result<Decrypted> {
        let key = cache_key(caller, blob, ctx);
        if let Some(hit) = self.lookup(&key)? {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let d = self.inner.decrypt(caller, blob, ctx)?;
        self.insert(key, &d.key_arn, d.key_version, &d.plaintext);
        Ok(d)
    }

    fn re_encrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
        destination_key_id: &str,
    ) -> Result<Wrapped> {
        self.inner.re_encrypt(caller, blob, ctx, destination_key_id)
    }

    fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyDescription> {
        self.inner.describe_key(caller, key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::local::{CreateKeyInput, LocalKms};
    use crate::store::RootSecret;

    /// LocalKms behind a counter of decrypt calls.
    struct Counting {
        kms: LocalKms,
        decrypts: AtomicU64,
    }

    impl KeyService for Counting {
        fn generate_data_key(
            &self,
            c: &Caller,
            k: &str,
            ctx: &EncryptionContext,
        ) -> Result<DataKeyPair> {
            KeyService::generate_data_key(&self.kms, c, k, ctx)
        }
        fn decrypt(&self, c: &Caller, b: &[u8], ctx: &EncryptionContext) -> Result<Decrypted> {
            self.decrypts.fetch_add(1, Ordering::Relaxed);
            KeyService::decrypt(&self.kms, c, b, ctx)
        }
        fn re_encrypt(
            &self,
            c: &Caller,
            b: &[u8],
            ctx: &EncryptionContext,
            d: &str,
        ) -> Result<Wrapped> {
            KeyService::re_encrypt(&self.kms, c, b, ctx, d)
        }
        fn describe_key(&self, c: &Caller, k: &str) -> Result<KeyDescription> {
            KeyService::describe_key(&self.kms, c, k)
        }
    }

    fn setup(
        limits: CacheLimits,
    ) -> (
        tempfile::TempDir,
        Arc<Counting>,
        CachingKms,
        Arc<ManualClock>,
        String,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let kms =
            LocalKms::open(&dir.path().join("ks"), &RootSecret::KeyFile, clock.clone()).unwrap();
        let arn = kms
            .create_key(&Caller::current(), CreateKeyInput::default())
            .unwrap()
            .arn;
        let counting = Arc::new(Counting {
            kms,
            decrypts: AtomicU64::new(0),
        });
        let cache = CachingKms::new(counting.clone(), limits, clock.clone());
        (dir, counting, cache, clock, arn)
    }

    fn ctx(i: usize) -> EncryptionContext {
        [("file".to_string(), i.to_string())].into_iter().collect()
    }

    #[test]
    fn hits_skip_the_service_and_limits_hold() {
        let (_d, inner, cache, clock, arn) = setup(CacheLimits {
            max_keys: 3,
            max_age_seconds: 60,
        });
        let me = Caller::current();
        let blobs: Vec<(Vec<u8>, Vec<u8>)> = (0..5)
            .map(|i| {
                let p = inner
                    .kms
                    .generate_data_key(&me, &arn, 32, &ctx(i), true)
                    .unwrap();
                (p.ciphertext_blob, p.plaintext.to_vec())
            })
            .collect();
        // First open of each: a miss; again at once: a hit, same key.
        for (i, (blob, plain)) in blobs.iter().take(3).enumerate() {
            assert_eq!(
                cache
                    .decrypt(&me, blob, &ctx(i))
                    .unwrap()
                    .plaintext
                    .as_slice(),
                plain
            );
        }
        for (i, (blob, plain)) in blobs.iter().take(3).enumerate() {
            assert_eq!(
                cache
                    .decrypt(&me, blob, &ctx(i))
                    .unwrap()
                    .plaintext
                    .as_slice(),
                plain
            );
        }
        assert_eq!(inner.decrypts.load(Ordering::Relaxed), 3);
        assert_eq!(cache.stats().hits, 3);
        // A wrong context is not a hit (and fails at the service).
        assert!(cache.decrypt(&me, &blobs[0].0, &ctx(9)).is_err());
        // Count limit: two more evict the two least recently used.
        cache.decrypt(&me, &blobs[3].0, &ctx(3)).unwrap();
        cache.decrypt(&me, &blobs[4].0, &ctx(4)).unwrap();
        assert_eq!(cache.len(), 3);
        let before = inner.decrypts.load(Ordering::Relaxed);
        cache.decrypt(&me, &blobs[2].0, &ctx(2)).unwrap(); // still cached
        assert_eq!(inner.decrypts.load(Ordering::Relaxed), before);
        cache.decrypt(&me, &blobs[0].0, &ctx(0)).unwrap(); // evicted
        assert_eq!(inner.decrypts.load(Ordering::Relaxed), before + 1);
        // Age limit: after 60 s everything is asked again.
        clock.advance(60);
        let before = inner.decrypts.load(Ordering::Relaxed);
        cache.decrypt(&me, &blobs[2].0, &ctx(2)).unwrap();
        assert_eq!(inner.decrypts.load(Ordering::Relaxed), before + 1);
    }

    #[test]
    fn disabled_key_stops_new_opens_within_the_age_limit() {
        let (_d, inner, cache, clock, arn) = setup(CacheLimits {
            max_keys: 100,
            max_age_seconds: 30,
        });
        let me = Caller::current();
        let pair = cache.generate_data_key(&me, &arn, &ctx(1)).unwrap();
        // The new key is cached: opening its file costs nothing.
        cache.decrypt(&me, &pair.ciphertext_blob, &ctx(1)).unwrap();
        assert_eq!(inner.decrypts.load(Ordering::Relaxed), 0);
        inner.kms.disable_key(&me, &arn).unwrap();
        clock.advance(29);
        assert!(cache.decrypt(&me, &pair.ciphertext_blob, &ctx(1)).is_ok());
        clock.advance(1);
        let err = cache
            .decrypt(&me, &pair.ciphertext_blob, &ctx(1))
            .unwrap_err();
        assert!(matches!(err, KmsError::Disabled(_)), "{err}");
        // Another caller never shares an entry.
        let other = Caller {
            uid: me.uid + 1,
            ..me.clone()
        };
        inner.kms.enable_key(&me, &arn).unwrap();
        let before = inner.decrypts.load(Ordering::Relaxed);
        let _ = cache.decrypt(&other, &pair.ciphertext_blob, &ctx(1));
        assert_eq!(inner.decrypts.load(Ordering::Relaxed), before + 1);
    }

    #[test]
    fn zero_limits_disable_the_cache() {
        let (_d, inner, cache, _clock, arn) = setup(CacheLimits {
            max_keys: 0,
            max_age_seconds: 60,
        });
        let me = Caller::current();
        let pair = cache.generate_data_key(&me, &arn, &ctx(1)).unwrap();
        cache.decrypt(&me, &pair.ciphertext_blob, &ctx(1)).unwrap();
        cache.decrypt(&me, &pair.ciphertext_blob, &ctx(1)).unwrap();
        assert_eq!(inner.decrypts.load(Ordering::Relaxed), 2);
        assert!(cache.is_empty());
    }
}
