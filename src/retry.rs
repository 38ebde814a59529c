//! The one backoff rule every module retries with.
//!
//! Storage requests, queue consumer retries, email sends and background jobs all wait
//! [`Backoff::delay`] between attempts, configured with the same words everywhere:
//! `max_attempts`, `backoff` (the first delay) and `backoff_max` (the cap), read from
//! `<MODULE>_MAX_ATTEMPTS`, `<MODULE>_RETRY_BACKOFF` and `<MODULE>_RETRY_BACKOFF_MAX`.
//!
//! ```
//! use corekit::retry::Backoff;
//! use std::time::Duration;
//!
//! let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
//! assert_eq!(b.delay(1), Duration::from_millis(100));
//! assert_eq!(b.delay(3), Duration::from_millis(400));
//! assert_eq!(b.delay(10), Duration::from_secs(1));
//! ```

use crate::{Error, Result};
use std::time::Duration;

/// Exponential backoff: the delay before retry `n` (1-based) is `initial * 2^(n-1)`, capped at
/// `max`, less a random part of up to `jitter` of it so that many failing callers do not retry in
/// lockstep (`jitter` 1.0 is "full jitter", 0.0 none).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The delay before the first retry.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The fraction of each delay that is random, in `0.0..=1.0` (default 0.2).
    pub jitter: f64,
}

impl Backoff {
    /// Doubling from `initial` up to `max` (raised to `initial` if lower), 20% jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            jitter: 0.2,
        }
    }

    /// With this fraction of each delay random (clamped to `0.0..=1.0`).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Checks the fields set directly: `max` at least `initial`, `jitter` within `0.0..=1.0`.
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.max < self.initial {
            return Err(Error::config(format!(
                "backoff: the cap ({:?}) is below the first delay ({:?})",
                self.max, self.initial
            )));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::config(format!(
                "backoff: jitter {} is not within 0.0..=1.0",
                self.jitter
            )));
        }
        Ok(())
    }

    /// The delay before retry `retry` (1-based: after the first failed attempt, `delay(1)`).
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let full = self
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.max.max(self.initial));
        if self.jitter <= 0.0 {
            return full;
        }
        full.mul_f64(1.0 - self.jitter.min(1.0) * fastrand::f64())
    }
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s, 20% jitter.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_the_jitter() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..100 {
            let d = b.delay(2);
            assert!(
                d <= Duration::from_millis(200) && d >= Duration::from_millis(160),
                "{d:?}"
            );
            assert!(b.delay(40) <= Duration::from_secs(1));
        }
        let full = b.jitter(1.0);
        assert!((0..100).all(|_| full.delay(1) <= Duration::from_millis(100)));
        assert_eq!(b.jitter(f64::NAN).jitter, 0.0);
    }

    #[test]
    fn validate_refuses_what_new_cannot_produce() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.max, Duration::from_secs(2));
        assert!(b.validate().is_ok());
        b.max = Duration::from_secs(1);
        assert!(b.validate().is_err());
        b.max = Duration::from_secs(3);
        b.jitter = 1.5;
        assert!(b.validate().is_err());
    }
}
