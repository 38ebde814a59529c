//! The trait every cache backend implements, and what it answers with.

#[allow(unused_imports)]
use super::*;
use crate::Result;
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;

/// The remaining lifetime of a key, as [`CacheStore::ttl`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key never expires.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

/// What [`CacheStore::delete_expired`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// This many expired entries were removed.
    Removed(u64),
    /// The backend expires keys itself (Redis); there was nothing to do.
    NotNeeded,
}

/// The bytes-level operations every cache backend implements.
///
/// Keys arrive already namespaced and validated by [`Cache`], as bytes (text or binary: every
/// backend stores them byte for byte); values are opaque bytes. Methods
/// return [`ErrorKind::Timeout`](crate::ErrorKind::Timeout)/[`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) (retryable) when the server cannot be
/// reached within the configured timeout, never hang.
///
/// Counters written by [`incr`](Self::incr) are stored as decimal text (`b"42"`), the same on
/// every backend.
pub trait CacheStore: Send + Sync + 'static {
    /// The backend's name for errors and spans (`"memory"`, `"redis"`, `"tiered"`).
    fn name(&self) -> &'static str;

    /// The value at `key`, or `None` when missing or expired.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Answers a lookup from process memory without I/O, when the store can: `Some(found)`
    /// settles it, `None` means "ask [`get`](Self::get)". The memory store always answers; the
    /// tiered store answers near hits; Redis never does. [`Cache`] tries this first, so
    /// in-process hits skip the async call and its span (they are still counted in
    /// [`CacheStats`]).
    fn get_local(&self, key: &[u8]) -> Option<Option<Bytes>> {
        let _ = key;
        None
    }

    /// [`get_local`](Self::get_local) for [`Cache`]'s hit path, answering only for values
    /// that do not start with byte `0xFF` (the first byte of the cache's envelopes: tagged and
    /// stamped values, which [`Cache`] unwraps on its longer path). The default reads the
    /// value's first byte; a store that keeps a flag per entry instead (the memory store)
    /// saves the CPU cache miss of touching the value on every hit.
    fn get_local_plain(&self, key: &[u8]) -> Option<Option<Bytes>> {
        match self.get_local(key) {
            Some(Some(value)) if super::fresh::maybe_wrapped(&value) => None,
            found => found,
        }
    }

    /// Stores `value` in process memory without I/O, when the store can: `Ok(())` settles it,
    /// `Err(value)` hands the value back for [`set`](Self::set). The memory store always
    /// stores; every other store declines (the default). Like [`get_local`](Self::get_local),
    /// [`Cache`] tries this first, so in-process writes skip the async call and its span (they
    /// are still counted in [`CacheStats`]).
    fn set_local(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> std::result::Result<(), Bytes> {
        let _ = (key, ttl);
        Err(value)
    }

    /// Stores `value` at `key`, expiring after `ttl` (`None`: never).
    fn set(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stores `value` only if `key` holds nothing; true when it was stored. Atomic.
    fn set_if_absent(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes `key`; true when it existed.
    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<bool>> + Send;

    /// Whether `key` holds a live value.
    fn exists(&self, key: &[u8]) -> impl Future<Output = Result<bool>> + Send;

    /// The remaining lifetime of `key`, or `None` when it is missing.
    fn ttl(&self, key: &[u8]) -> impl Future<Output = Result<Option<Ttl>>> + Send;

    /// Sets the lifetime of an existing key (`None`: never expire); false when it is missing.
    fn expire(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Adds `delta` to the integer at `key` (a missing key counts as 0) and returns the result.
    /// When the key had no expiry and `ttl` is given, the key then expires after `ttl`. Atomic.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the key holds something that is not an integer.
    fn incr(
        &self,
        key: &[u8],
        delta: i64,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<i64>> + Send;

    /// The values at `keys`, in order.
    fn get_many(&self, keys: &[Vec<u8>])
    -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send;

    /// Stores every entry, each expiring after `ttl`.
    fn set_many(
        &self,
        entries: Vec<(Vec<u8>, Bytes)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes `keys`; returns how many existed.
    fn delete_many(&self, keys: &[Vec<u8>]) -> impl Future<Output = Result<u64>> + Send;

    /// Removes every key starting with `prefix` (all keys for `""`); returns how many.
    fn delete_prefix(&self, prefix: &[u8]) -> impl Future<Output = Result<u64>> + Send;

    /// Removes entries whose TTL has passed, where the backend keeps them until then.
    fn delete_expired(&self) -> impl Future<Output = Result<Purge>> + Send;

    /// Checks that the backend answers (for readiness probes).
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// Takes the lock at `key` for `ttl` if nobody holds it: `Some(token)` when taken, the
    /// token being greater than every token handed out before for that lock (`fence` names
    /// where the store may keep its last token). Atomic. [`Cache::lock`] is the API to use.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) from stores without locks
    /// (the default).
    fn lock_acquire(
        &self,
        key: &[u8],
        fence: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>>> + Send {
        let _ = (key, fence, ttl);
        std::future::ready(Err(unsupported_lock(self.name())))
    }

    /// Sets the lock at `key` to expire after `ttl` if `token` still holds it; false when it
    /// does not (it expired, or another holder took it since). Atomic.
    ///
    /// # Errors
    /// As [`lock_acquire`](Self::lock_acquire).
    fn lock_extend(
        &self,
        key: &[u8],
        token: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool>> + Send {
        let _ = (key, token, ttl);
        std::future::ready(Err(unsupported_lock(self.name())))
    }

    /// Releases the lock at `key` if `token` still holds it; false when it does not.
    /// Atomic (compare and delete).
    ///
    /// # Errors
    /// As [`lock_acquire`](Self::lock_acquire).
    fn lock_release(&self, key: &[u8], token: u64) -> impl Future<Output = Result<bool>> + Send {
        let _ = (key, token);
        std::future::ready(Err(unsupported_lock(self.name())))
    }

    /// Entries the backend evicted to stay within its bounds, since it was created.
    fn evictions(&self) -> u64 {
        0
    }

    /// Releases the backend's connections (Redis: closes the pool and the subscriber). Calls
    /// made afterwards fail. Stores that hold nothing (memory) have nothing to do.
    fn close(&self) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(Ok(()))
    }

    /// The concrete store, for [`Cache::downcast_ref`]: the store itself, or for [`AnyStore`]
    /// the store it wraps.
    fn as_any(&self) -> &dyn std::any::Any
    where
        Self: Sized,
    {
        self
    }
}

/// What a store without locks answers to the lock calls.
fn unsupported_lock(store: &'static str) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::Unsupported,
        "this cache store has no locks",
    )
    .with_backend(store)
    .with_operation("lock")
}
