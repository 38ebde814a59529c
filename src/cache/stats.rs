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

const STRIPES: usize = 8;

#[derive(Default)]
#[repr(align(64))]
struct Stripe {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    errors: AtomicU64,
}

#[derive(Default)]
pub(super) struct Counters {
    stripes: [Stripe; STRIPES],
}

fn stripe_index() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static INDEX: Cell<usize> = const { Cell::new(usize::MAX) });
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES);
        }
        i.get()
    })
}

impl Counters {
    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }
    pub(super) fn hit(&self) {
        self.stripe().hits.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn miss(&self) {
        self.stripe().misses.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn set(&self) {
        self.sets(1);
    }
    pub(super) fn sets(&self, n: u64) {
        self.stripe().sets.fetch_add(n, Ordering::Relaxed);
    }
    pub(super) fn error(&self) {
        self.stripe().errors.fetch_add(1, Ordering::Relaxed);
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
        }
    }
}
