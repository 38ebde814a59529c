//! Memory in front of Redis, kept correct by Redis's key tracking and corekit's own channel.

mod fence;
mod listener;
mod subscribers;

use super::{CacheStore, MemoryStore, Purge, RedisStore, Ttl};
use crate::{Error, Result};
use bytes::Bytes;
use fence::Fence;
use fred::interfaces::PubsubInterface;
pub use listener::Invalidation;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use subscribers::{Setup, Subscribers};

/// A two-tier cache store: reads are served from process memory when possible, writes go to
/// Redis, and the near copies are dropped on every instance when the key changes.
///
/// How an instance learns of changes ([`invalidation`](Self::invalidation)):
/// - **Redis tracking** (Redis 6+; the default): the store's subscriber connection turns on
///   `CLIENT TRACKING` in `BCAST` mode for the
///   [tracking prefixes](TieredStoreBuilder::tracking_prefix), so a write, delete, expiry or
///   eviction by *any* client (another service, a script, `redis-cli`) drops the near copy.
///   `BCAST` rather than the default mode because tracking and its invalidations then live on
///   that one connection: reads stay on the pipelined pool, and losing the connection loses
///   both together (the near tier is cleared and tracking re-armed on reconnect). The cost is
///   a message for every change under the prefixes, held near or not. On a Cluster a node
///   tracks only its own keys: the store keeps one such connection per primary, and when the
///   far pool sees other primaries (a failover, checked every second) it clears the tier and
///   connects to the new ones. Behind Sentinel the connection follows the primary.
/// - **corekit's channel** (always listened to; alone on servers that refuse tracking, or
///   with [`tracking(false)`](TieredStoreBuilder::tracking)): every write or delete made
///   through corekit is announced on a pub/sub channel.
///
/// A near copy lives at most `near_ttl` (default 60 s) and never longer than the Redis key.
/// Invalidations are at most once: when the subscriber connection drops, near copies stop
/// being served and filled until it is back and re-armed, and the tier is cleared; messages
/// lost to a slow listener clear it too ([`near_flushes`](Self::near_flushes) counts both).
/// A read racing a change never keeps a stale copy: a fill checks, after inserting, that no
/// invalidation of its key arrived since it started. Invalidation is asynchronous: another
/// instance may serve the old value for the time a message takes to arrive (BENCHMARKS.md
/// measures it).
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use corekit::cache::{Cache, Invalidation, MemoryStore, RedisStore, TieredStore};
/// use std::time::Duration;
///
/// let far = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let store = TieredStore::builder(MemoryStore::new(10_000), far)
///     .near_ttl(Duration::from_secs(30))
///     // The cache's namespace: only its keys are tracked.
///     .tracking_prefix("users:")
///     .build()
///     .await?;
/// assert_eq!(store.invalidation(), Invalidation::Tracking);
/// let cache = Cache::builder(store).prefix("users").build()?;
/// cache.set("42", &"Ada").await?;
/// # Ok::<(), corekit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TieredStore {
    inner: Arc<TieredInner>,
}

struct TieredInner {
    near: MemoryStore,
    far: RedisStore,
    near_ttl: Duration,
    channel: String,
    id: String,
    subscribers: Arc<Subscribers>,
    fence: Arc<Fence>,
    tracking: Arc<AtomicBool>,
}

/// Builds a [`TieredStore`]; from [`TieredStore::builder`].
#[must_use]
pub struct TieredStoreBuilder {
    near: MemoryStore,
    far: RedisStore,
    near_ttl: Duration,
    channel: String,
    tracking: bool,
    prefixes: Vec<String>,
}

impl TieredStoreBuilder {
    /// Longest time a near copy is served (default 60 s).
    pub fn near_ttl(mut self, ttl: Duration) -> Self {
        self.near_ttl = ttl;
        self
    }

    /// The Redis pub/sub channel for invalidations (default `corekit:cache:invalidate`).
    /// Instances sharing a cache must use the same channel.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// Whether to use Redis's key tracking where the server offers it (default `true`); see
    /// [`Invalidation`].
    pub fn tracking(mut self, on: bool) -> Self {
        self.tracking = on;
        self
    }

    /// Tracks only keys starting with `prefix` (may be given several times; prefixes must not
    /// overlap). Without one every key of the database is tracked, and every change to any
    /// key sends this instance a message: give the cache's namespace (`"prefix:"`, as
    /// [`Cache::from_env`](super::Cache::from_env) does from `CACHE_PREFIX`).
    pub fn tracking_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefixes.push(prefix.into());
        self
    }

    /// Subscribes (turning tracking on where offered) and returns the store.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when the subscriber cannot
    /// connect.
    pub async fn build(self) -> Result<TieredStore> {
        let id = format!("{:x}{:x}", std::process::id(), fastrand::u64(..));
        let fence = Arc::new(Fence::new());
        let tracking = Arc::new(AtomicBool::new(false));
        let setup = Setup {
            near: self.near.clone(),
            fence: fence.clone(),
            tracking: tracking.clone(),
            track: self.tracking,
            prefixes: self.prefixes,
            channel: self.channel.clone(),
            own: id.clone(),
            timeout: self.far.command_timeout().max(Duration::from_secs(1)),
        };
        let subscribers = Subscribers::start(setup, self.far.clone()).await?;
        Ok(TieredStore {
            inner: Arc::new(TieredInner {
                near: self.near,
                far: self.far,
                near_ttl: self.near_ttl,
                channel: self.channel,
                id,
                subscribers,
                fence,
                tracking,
            }),
        })
    }
}

/// Drops the near copy of a key (`'K'`) or of every key under a prefix (`'P'`): what a write
/// here and a message from another instance both do.
async fn drop_near(near: &MemoryStore, fence: &Fence, kind: char, target: &[u8]) -> Result<()> {
    // Bump first: a fill already under way must not keep what it read. Counters are per key,
    // so a prefix spoils every fill in flight.
    if kind == 'P' {
        fence.flushed();
        near.delete_prefix(target).await?;
    } else {
        fence.changed(target);
        near.delete(target).await?;
    }
    Ok(())
}

impl std::fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("near", &self.inner.near)
            .field("far", &self.inner.far)
            .field("near_ttl", &self.inner.near_ttl)
            .field("channel", &self.inner.channel)
            .finish()
    }
}

impl TieredStore {
    /// A builder over a near (memory) and a far (Redis) store.
    pub fn builder(near: MemoryStore, far: RedisStore) -> TieredStoreBuilder {
        TieredStoreBuilder {
            near,
            far,
            near_ttl: Duration::from_secs(60),
            channel: "corekit:cache:invalidate".into(),
            tracking: true,
            prefixes: Vec::new(),
        }
    }

    /// How this instance hears of changes right now: [`Invalidation::Tracking`] once Redis
    /// tracks keys for it, else [`Invalidation::Channel`].
    pub fn invalidation(&self) -> Invalidation {
        if self.inner.tracking.load(Ordering::SeqCst) {
            Invalidation::Tracking
        } else {
            Invalidation::Channel
        }
    }

    /// How many times the whole near tier was cleared because invalidations may have been
    /// missed (a lost subscriber connection, messages lost to a slow listener, new Cluster
    /// primaries) or everything went (`FLUSHALL`).
    pub fn near_flushes(&self) -> u64 {
        self.inner.fence.clears()
    }

    /// The near (in-process) tier.
    pub fn near(&self) -> &MemoryStore {
        &self.inner.near
    }

    /// The far (Redis) tier.
    pub fn far(&self) -> &RedisStore {
        &self.inner.far
    }

    fn near_ttl(&self, far_ttl: Option<Duration>) -> Duration {
        far_ttl.map_or(self.inner.near_ttl, |t| t.min(self.inner.near_ttl))
    }

    /// After a far write, drops near copies here and on the other instances, also when the
    /// write failed: a write that timed out may still land (a paused server runs it when it
    /// resumes), so no near copy may outlive it. The write's own error wins.
    async fn after_write<T>(
        &self,
        written: Result<T>,
        kind: char,
        targets: &[&[u8]],
        op: &'static str,
    ) -> Result<T> {
        self.after_write_here(written, kind, targets, op, true)
            .await
    }

    /// [`after_write`](Self::after_write), dropping this instance's copies only when `here`.
    async fn after_write_here<T>(
        &self,
        written: Result<T>,
        kind: char,
        targets: &[&[u8]],
        op: &'static str,
        here: bool,
    ) -> Result<T> {
        let mut invalidated = Ok(());
        for target in targets {
            if here && let Err(e) = self.drop_here(kind, target).await {
                invalidated = Err(e);
            }
            // Boxed: every write's future carries this, and the tiered store's futures nest
            // deep enough (cache handle, instrumentation, Redis bounds) to matter on a stack.
            if let Err(e) = Box::pin(self.announce(kind, target, op)).await {
                invalidated = Err(e);
            }
        }
        let value = written?;
        invalidated.map(|()| value)
    }

    /// Keeps a near copy read or written under `ticket`, unless an invalidation of the key
    /// arrived since the ticket was taken (see [`Fence`]).
    async fn fill(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Duration,
        ticket: fence::Ticket,
    ) -> Result<()> {
        self.inner.near.set(key, value, Some(ttl)).await?;
        if !self.inner.fence.holds(key, ticket) {
            self.inner.near.delete(key).await?;
        }
        Ok(())
    }

    /// Drops this instance's near copy of `target` (a key, or a prefix for `'P'`).
    async fn drop_here(&self, kind: char, target: &[u8]) -> Result<()> {
        drop_near(&self.inner.near, &self.inner.fence, kind, target).await
    }

    /// Announces the change to the other instances on corekit's channel.
    async fn announce(&self, kind: char, target: &[u8], op: &'static str) -> Result<()> {
        // `<id> <kind> ` then the key's bytes as they are: binary keys travel intact.
        let mut message = format!("{} {kind} ", self.inner.id).into_bytes();
        message.extend_from_slice(target);
        let message = Bytes::from(message);
        // Bounded like every command: a paused server must not hold the writer up.
        let publish = self
            .inner
            .far
            .pool()
            .next()
            .publish::<i64, _, _>(self.inner.channel.as_str(), message);
        crate::redis::bounded(self.inner.far.command_timeout(), op, publish).await?;
        Ok(())
    }
}

impl CacheStore for TieredStore {
    fn name(&self) -> &'static str {
        "tiered"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        if let Some(v) = self.inner.near.get(key).await? {
            return Ok(Some(v));
        }
        let ticket = self.inner.fence.ticket(key);
        let (value, ttl) = tokio::try_join!(self.inner.far.get(key), self.inner.far.ttl(key))?;
        // Copy near only with the far key's lifetime known: a key that expired or was deleted
        // between the two reads (no TTL answer) is not cached near for a whole near TTL.
        let far_ttl = match ttl {
            Some(Ttl::Expires(t)) => Some(Some(t)),
            Some(Ttl::Persistent) => Some(None),
            None => None,
        };
        if let (Some(v), Some(far_ttl), Some(ticket)) = (&value, far_ttl, ticket) {
            self.fill(key, v.clone(), self.near_ttl(far_ttl), ticket)
                .await?;
        }
        Ok(value)
    }

    #[inline]
    fn get_local(&self, key: &[u8]) -> Option<Option<Bytes>> {
        // A near miss is not an answer: Redis may hold the key.
        self.inner.near.get_local(key).flatten().map(Some)
    }

    #[inline]
    fn get_local_plain(&self, key: &[u8]) -> Option<Option<Bytes>> {
        self.inner.near.get_local_plain(key).flatten().map(Some)
    }

    async fn set(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<()> {
        // Under tracking the write's own invalidation would drop a near copy: the next read
        // fills it. On the channel alone this instance hears nothing of its own writes and
        // keeps the value it wrote, under a ticket taken before the write, so that another
        // instance's write landing after it (and heard before the fill) is not hidden.
        if self.invalidation() == Invalidation::Tracking {
            let written = self.inner.far.set(key, value, ttl).await;
            return self.after_write(written, 'K', &[key], "set").await;
        }
        self.drop_here('K', key).await?;
        let ticket = self.inner.fence.ticket(key);
        let written = self.inner.far.set(key, value.clone(), ttl).await;
        // A failed write may still land: then no copy may stay here either.
        let here = written.is_err();
        self.after_write_here(written, 'K', &[key], "set", here)
            .await?;
        match ticket {
            Some(ticket) => self.fill(key, value, self.near_ttl(ttl), ticket).await,
            None => Ok(()),
        }
    }

    async fn set_if_absent(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        match self.inner.far.set_if_absent(key, value, ttl).await {
            Ok(false) => Ok(false),
            written => {
                self.after_write(written, 'K', &[key], "set_if_absent")
                    .await
            }
        }
    }

    async fn delete(&self, key: &[u8]) -> Result<bool> {
        let written = self.inner.far.delete(key).await;
        self.after_write(written, 'K', &[key], "delete").await
    }

    async fn exists(&self, key: &[u8]) -> Result<bool> {
        if self.inner.near.exists(key).await? {
            return Ok(true);
        }
        self.inner.far.exists(key).await
    }

    async fn ttl(&self, key: &[u8]) -> Result<Option<Ttl>> {
        self.inner.far.ttl(key).await
    }

    async fn expire(&self, key: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let written = self.inner.far.expire(key, ttl).await;
        self.after_write(written, 'K', &[key], "expire").await
    }

    async fn incr(&self, key: &[u8], delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let written = self.inner.far.incr(key, delta, ttl).await;
        self.after_write(written, 'K', &[key], "incr").await
    }

    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>> {
        let mut out = self.inner.near.get_many(keys).await?;
        let missing: Vec<Vec<u8>> = keys
            .iter()
            .zip(&out)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let found = self.inner.far.get_many(&missing).await?;
        let mut found = found.into_iter();
        for slot in out.iter_mut().filter(|v| v.is_none()) {
            *slot = found.next().flatten();
        }
        Ok(out)
    }

    async fn set_many(&self, entries: Vec<(Vec<u8>, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
        let written = self.inner.far.set_many(entries, ttl).await;
        let targets: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        self.after_write(written, 'K', &targets, "set_many").await
    }

    async fn delete_many(&self, keys: &[Vec<u8>]) -> Result<u64> {
        let written = self.inner.far.delete_many(keys).await;
        let targets: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        self.after_write(written, 'K', &targets, "delete_many")
            .await
    }

    async fn delete_prefix(&self, prefix: &[u8]) -> Result<u64> {
        let written = self.inner.far.delete_prefix(prefix).await;
        self.after_write(written, 'P', &[prefix], "delete_prefix")
            .await
    }

    async fn delete_expired(&self) -> Result<Purge> {
        self.inner.near.delete_expired().await
    }

    async fn close(&self) -> Result<()> {
        self.inner.subscribers.close().await;
        self.inner.far.close().await
    }

    // Locks live in Redis only: a near copy of a lock would be another instance's stale view.
    async fn lock_acquire(&self, key: &[u8], fence: &[u8], ttl: Duration) -> Result<Option<u64>> {
        self.inner.far.lock_acquire(key, fence, ttl).await
    }

    async fn lock_extend(&self, key: &[u8], token: u64, ttl: Duration) -> Result<bool> {
        self.inner.far.lock_extend(key, token, ttl).await
    }

    async fn lock_release(&self, key: &[u8], token: u64) -> Result<bool> {
        self.inner.far.lock_release(key, token).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.far.ping().await?;
        if !self.inner.subscribers.all_connected() {
            return Err(Error::new(
                crate::ErrorKind::Unavailable,
                "the invalidation subscriber is not connected",
            )
            .with_backend("tiered")
            .with_operation("ping"));
        }
        Ok(())
    }

    fn evictions(&self) -> u64 {
        self.inner.near.evictions()
    }
}
