//! Fixed-window rate limiting over any cache store.

use super::{Cache, CacheStore, Codec, Ttl};
use crate::Result;
use crate::config::ConfigIssue;
use std::time::Duration;

/// The verdict of [`RateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Whether this request is within the limit.
    pub allowed: bool,
    /// Requests still allowed in the current window.
    pub remaining: u64,
    /// The limit per window.
    pub limit: u64,
    /// When the current window ends (for `Retry-After`).
    pub reset_after: Duration,
}

/// A fixed-window rate limiter: at most `limit` hits per key per `window`.
///
/// Each check is one atomic increment (a Lua script on Redis, so every instance sharing the
/// Redis shares the limit; a striped lock in memory). Keys live in the cache's namespace under
/// `ratelimit:`.
///
/// ```
/// # #[cfg(feature = "cache-memory")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use corekit::cache::{Cache, MemoryStore, RateLimiter};
/// use std::time::Duration;
///
/// let limiter = RateLimiter::new(Cache::new(MemoryStore::new(1000)), 2, Duration::from_secs(60))?;
/// assert!(limiter.check("client-1").await?.allowed);
/// assert!(limiter.check("client-1").await?.allowed);
/// let third = limiter.check("client-1").await?;
/// assert!(!third.allowed);
/// assert!(third.reset_after <= Duration::from_secs(60));
/// # Ok::<(), corekit::Error>(())
/// # }).unwrap();
/// ```
pub struct RateLimiter<S, C> {
    cache: Cache<S, C>,
    limit: u64,
    window: Duration,
}

impl<S: CacheStore, C: Codec> RateLimiter<S, C> {
    /// `limit` requests per `window` for each key.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when `limit` is 0 or `window` is under
    /// a millisecond.
    pub fn new(cache: Cache<S, C>, limit: u64, window: Duration) -> Result<Self> {
        if limit == 0 {
            return Err(
                ConfigIssue::new("limit", "0", "at least 1 request per window")
                    .into_error("RATE_", &[]),
            );
        }
        if window < Duration::from_millis(1) {
            return Err(
                ConfigIssue::new("window", format!("{window:?}"), "at least 1ms")
                    .into_error("RATE_", &[]),
            );
        }
        Ok(Self {
            cache,
            limit,
            window,
        })
    }

    /// Counts one request for `key` and says whether it is allowed.
    ///
    /// # Errors
    /// As [`Cache::incr`]; a limiter whose backend is down should usually fail open, which is
    /// the caller's decision.
    pub async fn check(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> Result<RateLimit> {
        let mut full = b"ratelimit:".to_vec();
        full.extend_from_slice(key.as_ref());
        let key = full;
        let count = self.cache.incr_window(&key, self.window).await?;
        let count = u64::try_from(count).unwrap_or(0);
        let allowed = count <= self.limit;
        // The window's end is only needed to tell a rejected caller when to come back.
        let reset_after = if allowed {
            self.window
        } else {
            match self.cache.ttl(&key).await? {
                Some(Ttl::Expires(t)) => t,
                _ => self.window,
            }
        };
        Ok(RateLimit {
            allowed,
            remaining: self.limit.saturating_sub(count),
            limit: self.limit,
            reset_after,
        })
    }
}
