//! Per-principal request rates, as AWS KMS's request quotas: each caller
//! (an IAM user, or a uid on the Unix socket) has a token bucket holding up
//! to one second of its allowed rate; a request takes a token, and one that
//! finds none is refused with `ThrottlingException` before it reaches the
//! store. So one busy or hostile principal cannot take the server from the
//! others, and SDKs back off as they do against AWS (they retry throttling
//! with exponential backoff).
//!
//! Only authenticated requests are counted: the principal must be known.
//! Unauthenticated floods are the admission layer's (admission.rs).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use kmsfs_kms::policy::Caller;

/// Whose bucket a request draws from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A request signed with an IAM user's access key.
    Iam(String),
    /// A local caller (the Unix socket), by uid.
    Uid(u32),
}

impl Principal {
    pub fn of(caller: &Caller) -> Principal {
        match &caller.iam_user {
            Some(name) => Principal::Iam(name.clone()),
            None => Principal::Uid(caller.uid),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets kept before full ones (which carry no information) are dropped.
const PRUNE_ABOVE: usize = 4096;

#[derive(Debug)]
struct Buckets {
    map: HashMap<Principal, Bucket>,
    /// The size at which full buckets are next dropped: twice what a
    /// pruning kept, so many active principals cost amortised O(1).
    prune_at: usize,
}

#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    /// `per_second` requests per principal, in bursts of as many; None for
    /// 0 (no limit).
    pub fn new(per_second: u32) -> Option<RateLimiter> {
        (per_second > 0).then(|| RateLimiter {
            per_second: f64::from(per_second),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                prune_at: PRUNE_ABOVE,
            }),
        })
    }

    /// Takes a token of `who`'s bucket at `now`; false if it had none.
    pub fn admit(&self, who: &Principal, now: Instant) -> bool {
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = &mut *guard;
        if buckets.map.len() >= buckets.prune_at {
            let full = self.per_second;
            buckets.map.retain(|_, b| refilled(*b, now, full) < full);
            buckets.prune_at = PRUNE_ABOVE.max(2 * buckets.map.len());
        }
        let bucket = buckets.map.entry(who.clone()).or_insert(Bucket {
            tokens: self.per_second,
            last: now,
        });
        bucket.tokens = refilled(*bucket, now, self.per_second);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The tokens of `b` at `now`, refilled at `rate` per second up to `rate`.
fn refilled(b: Bucket, now: Instant, rate: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
    (b.tokens + elapsed * rate).min(rate)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let limiter = RateLimiter::new(10).unwrap();
        let alice = Principal::Iam("alice".into());
        let t0 = Instant::now();
        assert_eq!((0..15).filter(|_| limiter.admit(&alice, t0)).count(), 10);
        // 0.5 s later: five more.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..15).filter(|_| limiter.admit(&alice, t1)).count(), 5);
        // Others are not held back by alice.
        assert!(limiter.admit(&Principal::Uid(1000), t1));
        assert!(limiter.admit(&Principal::Iam("bob".into()), t1));
        // Idle time refills no more than one second's worth.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| limiter.admit(&alice, t2)).count(), 10);
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(RateLimiter::new(0).is_none());
    }

    #[test]
    fn idle_principals_are_forgotten() {
        let limiter = RateLimiter::new(5).unwrap();
        let t0 = Instant::now();
        let n = PRUNE_ABOVE as u32;
        for uid in 0..n {
            assert!(limiter.admit(&Principal::Uid(uid), t0));
        }
        // Two seconds on, those buckets are full again: the next growth
        // drops them, and keeps the active ones.
        let t1 = t0 + Duration::from_secs(2);
        for uid in n..3 * n {
            assert!(limiter.admit(&Principal::Uid(uid), t1));
        }
        let buckets = limiter.buckets.lock().unwrap();
        assert!(!buckets.map.contains_key(&Principal::Uid(0)));
        assert!(buckets.map.contains_key(&Principal::Uid(n)));
        assert_eq!(buckets.map.len(), 2 * n as usize);
    }
}
