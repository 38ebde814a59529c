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
    /// `OWN` stripes each written by one thread only, then the shared one.
    stripes: [Stripe; OWN + 1],
}

/// This thread's stripe: its own for the first `OWN` threads that count (in any cache), the
/// shared last one after that.
fn stripe_index() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static INDEX: Cell<usize> = const { Cell::new(usize::MAX) });
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Ordering::Relaxed).min(OWN));
        }
        i.get()
    })
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
    pub(super) fn set(&self) {
        self.sets(1);
    }
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
