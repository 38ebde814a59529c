//! `AnyStore`: the backend chosen at run time, dispatching to the concrete store.

#[allow(unused_imports)]
use super::*;
use crate::Result;
use bytes::Bytes;
use std::time::Duration;

/// The backend chosen at run time by [`Cache::from_env`].
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// [`MemoryStore`].
    #[cfg(feature = "cache-memory")]
    Memory(MemoryStore),
    /// [`RedisStore`].
    #[cfg(feature = "cache-redis")]
    Redis(RedisStore),
    /// [`TieredStore`].
    #[cfg(all(feature = "cache-memory", feature = "cache-redis"))]
    Tiered(TieredStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "cache-memory")]
            AnyStore::Memory($s) => $call,
            #[cfg(feature = "cache-redis")]
            AnyStore::Redis($s) => $call,
            #[cfg(all(feature = "cache-memory", feature = "cache-redis"))]
            AnyStore::Tiered($s) => $call,
        }
    };
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        dispatch!(self, s => s.fmt(f))
    }
}

impl CacheStore for AnyStore {
    fn name(&self) -> &'static str {
        dispatch!(self, s => s.name())
    }
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        dispatch!(self, s => s.get(key).await)
    }
    fn get_local(&self, key: &[u8]) -> Option<Option<Bytes>> {
        dispatch!(self, s => s.get_local(key))
    }
    fn get_local_plain(&self, key: &[u8]) -> Option<Option<Bytes>> {
        dispatch!(self, s => s.get_local_plain(key))
    }
    fn set_local(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> std::result::Result<(), Bytes> {
        dispatch!(self, s => s.set_local(key, value, ttl))
    }
    async fn set(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, s => s.set(key, value, ttl).await)
    }
    async fn set_if_absent(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        dispatch!(self, s => s.set_if_absent(key, value, ttl).await)
    }
    async fn delete(&self, key: &[u8]) -> Result<bool> {
        dispatch!(self, s => s.delete(key).await)
    }
    async fn exists(&self, key: &[u8]) -> Result<bool> {
        dispatch!(self, s => s.exists(key).await)
    }
    async fn ttl(&self, key: &[u8]) -> Result<Option<Ttl>> {
        dispatch!(self, s => s.ttl(key).await)
    }
    async fn expire(&self, key: &[u8], ttl: Option<Duration>) -> Result<bool> {
        dispatch!(self, s => s.expire(key, ttl).await)
    }
    async fn incr(&self, key: &[u8], delta: i64, ttl: Option<Duration>) -> Result<i64> {
        dispatch!(self, s => s.incr(key, delta, ttl).await)
    }
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>> {
        dispatch!(self, s => s.get_many(keys).await)
    }
    async fn set_many(&self, entries: Vec<(Vec<u8>, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, s => s.set_many(entries, ttl).await)
    }
    async fn delete_many(&self, keys: &[Vec<u8>]) -> Result<u64> {
        dispatch!(self, s => s.delete_many(keys).await)
    }
    async fn delete_prefix(&self, prefix: &[u8]) -> Result<u64> {
        dispatch!(self, s => s.delete_prefix(prefix).await)
    }
    async fn delete_expired(&self) -> Result<Purge> {
        dispatch!(self, s => s.delete_expired().await)
    }
    async fn ping(&self) -> Result<()> {
        dispatch!(self, s => s.ping().await)
    }
    async fn lock_acquire(&self, key: &[u8], fence: &[u8], ttl: Duration) -> Result<Option<u64>> {
        dispatch!(self, s => s.lock_acquire(key, fence, ttl).await)
    }
    async fn lock_extend(&self, key: &[u8], token: u64, ttl: Duration) -> Result<bool> {
        dispatch!(self, s => s.lock_extend(key, token, ttl).await)
    }
    async fn lock_release(&self, key: &[u8], token: u64) -> Result<bool> {
        dispatch!(self, s => s.lock_release(key, token).await)
    }
    fn evictions(&self) -> u64 {
        dispatch!(self, s => s.evictions())
    }
    async fn close(&self) -> Result<()> {
        dispatch!(self, s => s.close().await)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        dispatch!(self, s => s.as_any())
    }
}
