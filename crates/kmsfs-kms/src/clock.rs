//! Time, injectable: the store's life cycle (rotation dates, deletion
//! windows, import token expiry) depends on it, and tests must be able to
//! move it forward by days without waiting.

use std::sync::atomic::{AtomicI64, Ordering};

/// Unix time in seconds. Defined here, below the model and IAM, so that
/// both can use it without importing each other.
pub type Timestamp = i64;

pub trait Clock: Send + Sync {
    /// Unix time in seconds.
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now().timestamp()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(AtomicI64::new(start))
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}
