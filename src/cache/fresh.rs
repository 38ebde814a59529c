//! The freshness envelope `get_or_refresh` writes: when the value is due for a refresh and
//! when its TTL ends, so it can be kept (and served stale) up to `max_stale` past that.
//!
//! Times are wall-clock milliseconds since the Unix epoch, so every instance sharing the store
//! reads the same stamp (their clocks must agree to within what a refresh-ahead fraction or a
//! stale window can absorb).

use bytes::{BufMut, Bytes, BytesMut};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Starts every stamped value: like the tags' envelope, 0xFF never starts JSON and the rest
/// makes a collision with another codec's first 8 bytes vanishingly unlikely.
const MAGIC: &[u8; 8] = b"\xFFckFRSH\x01";
const HEADER: usize = MAGIC.len() + 16;

/// When a stamped value is due for a refresh and when its TTL ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) refresh_at: u64,
    pub(super) fresh_until: u64,
}

impl Stamp {
    /// The stamp of a value written at `now` with `ttl` (`None`: fresh forever), due for a
    /// refresh after `ahead` of its TTL (`None`: only once stale).
    pub(super) fn new(now: u64, ttl: Option<Duration>, ahead: Option<f64>) -> Self {
        let Some(ttl) = ttl else {
            return Self {
                refresh_at: u64::MAX,
                fresh_until: u64::MAX,
            };
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let fresh_until = now.saturating_add(ms(ttl));
        let refresh_at = match ahead {
            Some(fraction) => now.saturating_add(ms(ttl.mul_f64(fraction))),
            None => fresh_until,
        };
        Self {
            refresh_at,
            fresh_until,
        }
    }

    /// A value written by anything but `get_or_refresh`: fresh until the store drops it.
    pub(super) const PLAIN: Self = Self {
        refresh_at: u64::MAX,
        fresh_until: u64::MAX,
    };

    pub(super) fn is_fresh(&self, now: u64) -> bool {
        now < self.fresh_until
    }

    pub(super) fn refresh_due(&self, now: u64) -> bool {
        now >= self.refresh_at
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `value` starts like one of the cache's envelopes (stamped or tagged): one byte
/// compare settles almost every plain value (also what `CacheStore::get_local_plain` and the
/// memory store's entry flag test).
#[inline]
pub(super) fn maybe_wrapped(value: &[u8]) -> bool {
    value.first() == Some(&MAGIC[0])
}

/// `MAGIC`, the stamp, then the value.
pub(super) fn wrap(stamp: Stamp, value: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + value.len());
    out.put_slice(MAGIC);
    out.put_u64_le(stamp.refresh_at);
    out.put_u64_le(stamp.fresh_until);
    out.put_slice(value);
    out.freeze()
}

/// The stamp and the value of a stamped value; `None` when `bytes` is not one.
pub(super) fn unwrap(bytes: &Bytes) -> Option<(Stamp, Bytes)> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (refresh_at, rest) = rest.split_first_chunk::<8>()?;
    let (fresh_until, _) = rest.split_first_chunk::<8>()?;
    let stamp = Stamp {
        refresh_at: u64::from_le_bytes(*refresh_at),
        fresh_until: u64::from_le_bytes(*fresh_until),
    };
    Some((stamp, bytes.slice(HEADER..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_and_a_plain_value_is_not_one() {
        let stamp = Stamp::new(1_000, Some(Duration::from_secs(10)), Some(0.8));
        assert_eq!(
            stamp,
            Stamp {
                refresh_at: 9_000,
                fresh_until: 11_000
            }
        );
        let bytes = wrap(stamp, b"{\"x\":1}");
        assert!(maybe_wrapped(&bytes));
        assert_eq!(
            unwrap(&bytes),
            Some((stamp, Bytes::from_static(b"{\"x\":1}")))
        );
        assert_eq!(unwrap(&Bytes::from_static(b"{\"x\":1}")), None);
        assert!(!maybe_wrapped(b"{\"x\":1}"));
        // Truncated: not a stamped value, never a panic.
        for cut in 0..HEADER {
            assert_eq!(unwrap(&bytes.slice(..cut)), None, "cut at {cut}");
        }
    }

    #[test]
    fn freshness_and_refresh_points() {
        let s = Stamp::new(0, Some(Duration::from_millis(100)), None);
        assert!(s.is_fresh(99) && !s.is_fresh(100));
        assert!(!s.refresh_due(99) && s.refresh_due(100));
        let s = Stamp::new(0, Some(Duration::from_millis(100)), Some(0.5));
        assert!(s.refresh_due(50) && s.is_fresh(50));
        assert!(Stamp::new(5, None, Some(0.5)).is_fresh(u64::MAX - 1));
        assert!(!Stamp::PLAIN.refresh_due(u64::MAX - 1));
    }
}
