//! Pacing background work (rotation) to a number of files per second.
//!
//! The rate comes from a mount option or the command line, so the pacing
//! must not panic whatever it is: a rate of 1e-300 made `count / rate`
//! overflow `Duration::from_secs_f64`, and the panic ended the daemon's
//! rotation thread for good.

use std::time::{Duration, Instant};

/// Paces a loop to at most `rate` iterations per second (None: unpaced).
pub struct Throttle {
    rate: Option<f64>,
    start: Instant,
    count: u64,
}

impl Throttle {
    /// The slowest pace kept: one file every 1000 s. Slower rates (down to
    /// 1e-300) are paced at this one rather than never finishing a file;
    /// the mount option refuses them outright.
    pub const MIN_RATE: f64 = 0.001;
    /// The fastest rate that still means something (a million files a
    /// second is unpaced in practice).
    pub const MAX_RATE: f64 = 1e6;

    /// `rate` files per second; a rate that is not a positive number
    /// (0, negative, NaN) or is infinite means unpaced.
    pub fn new(rate: Option<f64>) -> Throttle {
        Throttle {
            rate: rate
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| r.max(Throttle::MIN_RATE)),
            start: Instant::now(),
            count: 0,
        }
    }

    pub fn tick(&mut self) {
        self.count = self.count.saturating_add(1);
        let pause = self.pause(self.start.elapsed());
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }

    /// How long to wait, `elapsed` after the start, so that `count`
    /// iterations take at least `count / rate` seconds; never more than one
    /// iteration's share (1 / rate), never a panic.
    fn pause(&self, elapsed: Duration) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let share = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::MAX);
        let due = Duration::try_from_secs_f64(self.count as f64 / rate).unwrap_or(Duration::MAX);
        due.saturating_sub(elapsed).min(share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(rate: Option<f64>, count: u64, elapsed: Duration) -> Duration {
        let mut t = Throttle::new(rate);
        t.count = count;
        t.pause(elapsed)
    }

    #[test]
    fn paces_to_the_rate() {
        let s = Duration::from_secs;
        assert_eq!(after(Some(2.0), 1, s(0)), Duration::from_millis(500));
        assert_eq!(
            after(Some(2.0), 4, Duration::from_millis(1500)),
            Duration::from_millis(500)
        );
        // Behind schedule: no pause.
        assert_eq!(after(Some(2.0), 4, s(10)), Duration::ZERO);
        // Ahead by far (a clock jump): one file's share, not the whole lead.
        assert_eq!(after(Some(1.0), 1000, s(0)), s(1));
    }

    #[test]
    fn any_rate_gives_a_bounded_pause_without_panicking() {
        let s = Duration::from_secs;
        // Before the fix, 1e-300 panicked in Duration::from_secs_f64.
        for rate in [1e-300, f64::MIN_POSITIVE, 1e-9, 0.0005] {
            assert_eq!(after(Some(rate), 1, s(0)), s(1000), "rate {rate}");
            assert_eq!(after(Some(rate), u64::MAX, s(0)), s(1000), "rate {rate}");
        }
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(after(Some(rate), 1, s(0)), Duration::ZERO, "rate {rate}");
        }
        assert_eq!(after(None, u64::MAX, s(0)), Duration::ZERO);
        assert_eq!(after(Some(f64::MAX), u64::MAX, s(0)), Duration::ZERO);
    }
}
