//! Hit/miss counters, striped so threads do not fight over one cache line.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters, from [`Cache::stats`](super::Cache::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that found a value.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Values written.
    pub sets: u64,
    /// Entries the backend evicted to stay within its bounds.
    pub evictions: u64,
    /// Backend calls that failed.
    pub errors: u64,
    /// Values [`get_or_refresh`](super::Cache::get_or_refresh) returned past their TTL: while
    /// a refresh ran, or because the loader or the store failed (also counted in `hits`).
    pub stale_hits: u64,
    /// Loader runs of [`get_or_refresh`](super::Cache::get_or_refresh) (misses, refreshes
    /// ahead of the TTL and refreshes of stale values; not a refresh that found the value
    /// already refreshed by another load).
    pub loads: u64,
    /// Of those, the runs that failed, panicked or timed out.
    pub load_failures: u64,
}

impl CacheStats {
    /// hits / (hits + misses), or 0 before any lookup.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// Threads that get a stripe of their own; later ones share one more.
const OWN: usize = 16;

#[derive(Default)]
#[repr(align(64))]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    errors: AtomicU64,
    stale_hits: AtomicU64,
    loads: AtomicU64,
    load_failures: AtomicU64,
}

#[derive(Default)]
pub(super) struct Counters {
    /// `OWN` stripes each written by one live thread at a time, then the shared one.
    stripes: [Stripe; OWN + 1],
}

/// Which of the `OWN` stripes are owned by a live thread, one bit each.
static OWNED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A thread's claim on a stripe, given back when the thread exits, so that threads that come
/// and go (a blocking pool's) do not use up the stripes and leave every later thread on the
/// shared, contended one.
struct Claim(usize);

impl Claim {
    fn take() -> Self {
        let mut owned = OWNED.load(Ordering::Relaxed);
        loop {
            let free = !owned & ((1u32 << OWN) - 1);
            if free == 0 {
                return Self(OWN);
            }
            let bit = free.trailing_zeros();
            // Acquire: the stripe's last owner's writes are seen before this thread adds to them.
            match OWNED.compare_exchange_weak(
                owned,
                owned | (1 << bit),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Self(bit as usize),
                Err(now) => owned = now,
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.0 < OWN {
            // Release: this thread's writes to the stripe happen before its next owner's.
            OWNED.fetch_and(!(1u32 << self.0), Ordering::Release);
        }
    }
}

/// This thread's stripe: its own while fewer than `OWN` threads that count (in any cache) are
/// alive, else the shared last one.
fn stripe_index() -> usize {
    thread_local!(static CLAIM: Claim = Claim::take());
    // During the thread's own exit the claim may be gone: count on the shared stripe.
    CLAIM.try_with(|c| c.0).unwrap_or(OWN)
}

impl Counters {
    #[inline]
    fn add(&self, counter: fn(&Stripe) -> &AtomicU64, n: u64) {
        let i = stripe_index();
        let c = counter(&self.stripes[i]);
        if i < OWN {
            // Only this thread writes this stripe: a plain add, not a locked read-modify-write
            // (which cost ~20 ns per memory-store hit, a third of the hit).
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub(super) fn hit(&self) {
        self.add(|s| &s.hits, 1);
    }
    pub(super) fn miss(&self) {
        self.add(|s| &s.misses, 1);
    }
    #[inline]
    pub(super) fn set(&self) {
        self.sets(1);
    }
    #[inline]
    pub(super) fn sets(&self, n: u64) {
        self.add(|s| &s.sets, n);
    }
    pub(super) fn error(&self) {
        self.add(|s| &s.errors, 1);
    }
    pub(super) fn stale_hit(&self) {
        self.add(|s| &s.stale_hits, 1);
    }
    pub(super) fn load(&self) {
        self.add(|s| &s.loads, 1);
    }
    pub(super) fn load_failure(&self) {
        self.add(|s| &s.load_failures, 1);
    }
    pub(super) fn snapshot(&self, evictions: u64) -> CacheStats {
        let sum = |f: fn(&Stripe) -> &AtomicU64| -> u64 {
            self.stripes
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum()
        };
        CacheStats {
            hits: sum(|s| &s.hits),
            misses: sum(|s| &s.misses),
            sets: sum(|s| &s.sets),
            evictions,
            errors: sum(|s| &s.errors),
            stale_hits: sum(|s| &s.stale_hits),
            loads: sum(|s| &s.loads),
            load_failures: sum(|s| &s.load_failures),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_exits_gives_its_stripe_back() {
        // Far more threads than stripes, one after the other: each still gets one of its own
        // (before, the 17th thread of the process and every later one shared the last).
        for n in 0..(OWN * 3) {
            let index = std::thread::spawn(stripe_index).join().expect("thread");
            assert!(index < OWN, "thread {n} got the shared stripe");
        }
        let counters = Counters::default();
        std::thread::scope(|s| {
            for _ in 0..(OWN * 2) {
                s.spawn(|| counters.hit());
            }
        });
        assert_eq!(counters.snapshot(0).hits, OWN as u64 * 2, "no count lost");
    }
}
