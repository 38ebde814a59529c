//! In-process store on `quick_cache`, with per-entry TTL built on top.

use super::{CacheStore, Purge, Ttl};
use crate::{Error, Result};
use bytes::Bytes;
use quick_cache::sync::Cache as Qc;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires_at: Option<Instant>,
    /// The value does not start with `0xFF` (see `get_local_plain`): known without reading
    /// the value, whose buffer is a CPU cache miss of its own on a hit. (Packing the expiry
    /// and this flag into one `u64` of nanoseconds made entries 40 bytes instead of 56, but
    /// converting `Instant::now()` on every hit of an expiring entry cost a near-cache hit 77
    /// instructions more, callgrind.)
    plain: bool,
}

impl Entry {
    fn new(value: Bytes, expires_at: Option<Instant>) -> Self {
        let plain = !super::fresh::maybe_wrapped(&value);
        Self {
            value,
            expires_at,
            plain,
        }
    }

    fn live(&self, now: impl FnOnce() -> Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now())
    }
}

/// Weight per entry: 1 (bounded by entries) or key + value bytes (bounded by bytes).
#[derive(Clone)]
struct EntryWeighter {
    by_bytes: bool,
}

/// Per-entry bookkeeping quick_cache keeps besides key and value, counted in byte mode.
const ENTRY_OVERHEAD: u64 = 48;

impl Weighter<Vec<u8>, Entry> for EntryWeighter {
    fn weight(&self, key: &Vec<u8>, val: &Entry) -> u64 {
        if self.by_bytes {
            key.len() as u64 + val.value.len() as u64 + ENTRY_OVERHEAD
        } else {
            1
        }
    }
}

/// Counts evictions in `before_evict`, which quick_cache 0.7 calls only for entries leaving
/// for room or over the size limit; `on_evict` also reports the value an insert overwrites,
/// and telling the two apart there cost every overwrite a second hash of its key (54
/// instructions, callgrind).
#[derive(Clone, Default)]
struct Evictions {
    count: Arc<AtomicU64>,
    hasher: DefaultHashBuilder,
}

impl Lifecycle<Vec<u8>, Entry> for Evictions {
    type RequestState = ();
    fn before_evict(&self, _: &mut (), _key: &Vec<u8>, _val: &mut Entry) {
        // The weighter never gives 0 (1, or bytes + 48), so every call is an eviction.
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

const LOCK_STRIPES: usize = 64;

/// The store's locks ([`CacheStore::lock_acquire`]), apart from the entries so that eviction
/// never drops a held lock. Tokens come from one counter per store, so they grow per lock too.
#[derive(Default)]
struct Locks {
    held: Mutex<std::collections::HashMap<Vec<u8>, (u64, Instant)>>,
    last_token: AtomicU64,
}

/// `now + ttl`, or about a century from now for a TTL too long to add (`Duration::MAX`).
fn until(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// Held locks above which an acquire first drops the expired ones.
const LOCKS_BEFORE_PURGE: usize = 1024;

impl Locks {
    fn held(&self) -> MutexGuard<'_, std::collections::HashMap<Vec<u8>, (u64, Instant)>> {
        // No code path can panic while holding it; take it anyway if one did.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn acquire(&self, key: &[u8], ttl: Duration) -> Option<u64> {
        let now = Instant::now();
        let mut held = self.held();
        if held.len() >= LOCKS_BEFORE_PURGE {
            held.retain(|_, (_, until)| *until > now);
        }
        if held.get(key).is_some_and(|(_, until)| *until > now) {
            return None;
        }
        let token = self.last_token.fetch_add(1, Ordering::Relaxed) + 1;
        held.insert(key.to_vec(), (token, until(now, ttl)));
        Some(token)
    }

    /// Whether `token` holds the lock at `key` now.
    fn holds(entry: Option<&(u64, Instant)>, token: u64, now: Instant) -> bool {
        entry.is_some_and(|&(t, until)| t == token && until > now)
    }

    fn extend(&self, key: &[u8], token: u64, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut held = self.held();
        let holds = Self::holds(held.get(key), token, now);
        if let (true, Some(entry)) = (holds, held.get_mut(key)) {
            entry.1 = until(now, ttl);
        }
        holds
    }

    fn release(&self, key: &[u8], token: u64) -> bool {
        let mut held = self.held();
        let holds = Self::holds(held.get(key), token, Instant::now());
        if holds {
            held.remove(key);
        }
        holds
    }
}

struct Shared {
    cache: Qc<Vec<u8>, Entry, EntryWeighter, DefaultHashBuilder, Evictions>,
    evictions: Evictions,
    // Writers of one key take its stripe so read-modify-write (incr, set_if_absent, expire)
    // is atomic against other writers; readers never lock.
    locks: Box<[Mutex<()>]>,
    held_locks: Locks,
}

/// A writer's hold on its key's stripe.
struct Stripe<'a> {
    _guard: MutexGuard<'a, ()>,
}

/// An in-process cache store, bounded by entry count or by bytes, with per-entry TTL.
///
/// Expired entries are never returned; they are dropped when read, when evicted, or by
/// [`delete_expired`](CacheStore::delete_expired). Eviction is quick_cache's S3-FIFO. Cloning
/// shares the store.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.shared.cache.capacity())
            .finish()
    }
}

impl MemoryStore {
    /// A store holding about `max_entries` entries.
    pub fn new(max_entries: u64) -> Self {
        Self::build(max_entries.max(1), false)
    }

    /// A store holding about `max_bytes` of keys and values (plus ~48 bytes per entry).
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self::build(max_bytes.max(1), true)
    }

    fn build(capacity: u64, by_bytes: bool) -> Self {
        let estimated_items = if by_bytes {
            (capacity / 256).max(16)
        } else {
            capacity
        };
        let evictions = Evictions::default();
        let options = OptionsBuilder::new()
            .estimated_items_capacity(usize::try_from(estimated_items).unwrap_or(usize::MAX))
            .weight_capacity(capacity)
            .build();
        // The builder only fails for zero capacities, excluded above.
        let cache = match options {
            Ok(options) => Qc::with_options(
                options,
                EntryWeighter { by_bytes },
                DefaultHashBuilder::default(),
                evictions.clone(),
            ),
            Err(_) => Qc::with(
                16,
                capacity,
                EntryWeighter { by_bytes },
                DefaultHashBuilder::default(),
                evictions.clone(),
            ),
        };
        Self {
            shared: Arc::new(Shared {
                cache,
                evictions,
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
                held_locks: Locks::default(),
            }),
        }
    }

    /// Entries currently held (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.shared.cache.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.shared.cache.is_empty()
    }

    fn lock(&self, key: &[u8]) -> Stripe<'_> {
        let hash = self.shared.evictions.hasher.hash_one(key);
        // A panic while holding a stripe cannot leave the cache inconsistent: take it anyway.
        let guard = self.shared.locks[(hash as usize) % LOCK_STRIPES]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Stripe { _guard: guard }
    }

    #[inline(always)]
    fn live(&self, key: &[u8]) -> Option<Entry> {
        let entry = self.shared.cache.get(key)?;
        match entry.expires_at {
            // Compared here, inline: a near copy of the tiered store always has an expiry, and
            // an out-of-line check cost its hits 37 instructions (callgrind).
            Some(at) if at <= Instant::now() => self.drop_expired(key, at),
            _ => Some(entry),
        }
    }

    #[cold]
    #[inline(never)]
    fn drop_expired(&self, key: &[u8], at: Instant) -> Option<Entry> {
        self.shared
            .cache
            .remove_if(key, |e| e.expires_at == Some(at));
        None
    }

    fn insert(&self, stripe: &Stripe<'_>, key: &[u8], value: Bytes, ttl: Option<Duration>) {
        let expires_at = ttl.map(|t| until(Instant::now(), t));
        self.put(stripe, key, Entry::new(value, expires_at));
    }

    /// Writes under the key's stripe (`_stripe` proves it is held).
    fn put(&self, _stripe: &Stripe<'_>, key: &[u8], entry: Entry) {
        self.shared.cache.insert(key.to_vec(), entry);
    }
}

impl CacheStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.live(key).map(|e| e.value))
    }

    #[inline]
    fn get_local(&self, key: &[u8]) -> Option<Option<Bytes>> {
        Some(self.live(key).map(|e| e.value))
    }

    // Always inline: out of line, moving the entry through it cost 55 instructions a hit.
    #[inline(always)]
    fn get_local_plain(&self, key: &[u8]) -> Option<Option<Bytes>> {
        match self.live(key) {
            None => Some(None),
            Some(e) if e.plain => Some(Some(e.value)),
            Some(_) => None,
        }
    }

    #[inline]
    fn set_local(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> std::result::Result<(), Bytes> {
        let stripe = self.lock(key);
        self.insert(&stripe, key, value, ttl);
        Ok(())
    }

    async fn set(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<()> {
        // Always stored in process.
        let _ = self.set_local(key, value, ttl);
        Ok(())
    }

    async fn set_if_absent(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let stripe = self.lock(key);
        if self.live(key).is_some() {
            return Ok(false);
        }
        self.insert(&stripe, key, value, ttl);
        Ok(true)
    }

    async fn delete(&self, key: &[u8]) -> Result<bool> {
        let _stripe = self.lock(key);
        let was_live = self.live(key).is_some();
        self.shared.cache.remove(key);
        Ok(was_live)
    }

    async fn exists(&self, key: &[u8]) -> Result<bool> {
        Ok(self.live(key).is_some())
    }

    async fn ttl(&self, key: &[u8]) -> Result<Option<Ttl>> {
        Ok(self.live(key).map(|e| match e.expires_at {
            None => Ttl::Persistent,
            Some(at) => Ttl::Expires(at.saturating_duration_since(Instant::now())),
        }))
    }

    async fn expire(&self, key: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let stripe = self.lock(key);
        match self.live(key) {
            Some(entry) => {
                self.insert(&stripe, key, entry.value, ttl);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn incr(&self, key: &[u8], delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let stripe = self.lock(key);
        let existing = self.live(key);
        let (current, expires_at) = match &existing {
            Some(e) => {
                let n = std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        Error::invalid_input(format!(
                            "the value at key {} is not an integer",
                            super::show_key(key)
                        ))
                    })?;
                (n, e.expires_at)
            }
            None => (0, None),
        };
        let next = current.checked_add(delta).ok_or_else(|| {
            Error::invalid_input(format!(
                "incrementing key {} overflows i64",
                super::show_key(key)
            ))
        })?;
        let expires_at = expires_at.or_else(|| ttl.map(|t| until(Instant::now(), t)));
        self.put(
            &stripe,
            key,
            Entry::new(Bytes::from(next.to_string()), expires_at),
        );
        Ok(next)
    }

    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys.iter().map(|k| self.live(k).map(|e| e.value)).collect())
    }

    async fn set_many(&self, entries: Vec<(Vec<u8>, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            let stripe = self.lock(&key);
            self.insert(&stripe, &key, value, ttl);
        }
        Ok(())
    }

    async fn delete_many(&self, keys: &[Vec<u8>]) -> Result<u64> {
        let mut n = 0;
        for key in keys {
            if self.delete(key).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn delete_prefix(&self, prefix: &[u8]) -> Result<u64> {
        let now = Instant::now();
        let removed = AtomicU64::new(0);
        self.shared.cache.retain(|k, e| {
            if k.starts_with(prefix) {
                if e.live(|| now) {
                    removed.fetch_add(1, Ordering::Relaxed);
                }
                false
            } else {
                true
            }
        });
        Ok(removed.into_inner())
    }

    async fn delete_expired(&self) -> Result<Purge> {
        let now = Instant::now();
        let removed = AtomicU64::new(0);
        self.shared.cache.retain(|_, e| {
            let keep = e.live(|| now);
            if !keep {
                removed.fetch_add(1, Ordering::Relaxed);
            }
            keep
        });
        Ok(Purge::Removed(removed.into_inner()))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn lock_acquire(&self, key: &[u8], _fence: &[u8], ttl: Duration) -> Result<Option<u64>> {
        Ok(self.shared.held_locks.acquire(key, ttl))
    }

    async fn lock_extend(&self, key: &[u8], token: u64, ttl: Duration) -> Result<bool> {
        Ok(self.shared.held_locks.extend(key, token, ttl))
    }

    async fn lock_release(&self, key: &[u8], token: u64) -> Result<bool> {
        Ok(self.shared.held_locks.release(key, token))
    }

    fn evictions(&self) -> u64 {
        self.shared.evictions.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_knows_whether_it_may_be_an_envelope() {
        assert!(!Entry::new(Bytes::from_static(b"\xFFenvelope"), None).plain);
        assert!(Entry::new(Bytes::from_static(b"{}"), None).plain);
        assert!(Entry::new(Bytes::new(), None).plain);
    }

    #[test]
    fn local_plain_reads_decline_envelopes_only() {
        let store = MemoryStore::new(10);
        let _ = store.set_local(b"plain", Bytes::from_static(b"1"), None);
        let _ = store.set_local(b"wrapped", Bytes::from_static(b"\xFF1"), None);
        assert_eq!(
            store.get_local_plain(b"plain"),
            Some(Some(Bytes::from_static(b"1")))
        );
        assert_eq!(store.get_local_plain(b"wrapped"), None, "the long path");
        assert_eq!(store.get_local_plain(b"missing"), Some(None));
        assert!(store.get_local(b"wrapped").flatten().is_some());
    }
}
