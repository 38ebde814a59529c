//! Memory in front of Redis, kept correct across instances by pub/sub invalidation.

use super::{CacheStore, MemoryStore, Purge, RedisStore, Ttl};
use crate::redis::map_err;
use crate::{Error, Result};
use bytes::Bytes;
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Builder;
use std::sync::Arc;
use std::time::Duration;

/// A two-tier cache store: reads are served from process memory when possible, writes go to
/// Redis, and every write or delete is announced on a Redis channel so that the near copies
/// held by *other* instances are dropped.
///
/// A near copy lives at most `near_ttl` (default 60 s) and never longer than the Redis key.
/// While the subscriber connection is down invalidations can be missed, so the whole near tier
/// is cleared whenever it reconnects. Invalidation is asynchronous: another instance may serve
/// the old value for the time a pub/sub message takes to arrive (not measured yet; the tests
/// allow up to two seconds).
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
    subscriber: SubscriberClient,
}

impl Drop for TieredInner {
    fn drop(&mut self) {
        let subscriber = self.subscriber.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}

/// Builds a [`TieredStore`]; from [`TieredStore::builder`].
#[must_use]
pub struct TieredStoreBuilder {
    near: MemoryStore,
    far: RedisStore,
    near_ttl: Duration,
    channel: String,
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

    /// Subscribes to the invalidation channel and returns the store.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when the subscriber cannot
    /// connect.
    pub async fn build(self) -> Result<TieredStore> {
        let pool = self.far.pool();
        let client = pool.next();
        let subscriber = Builder::from_config(client.client_config())
            .set_connection_config(client.connection_config().clone())
            .set_performance_config(client.perf_config())
            .set_policy(client.client_reconnect_policy().unwrap_or_else(|| {
                fred::types::config::ReconnectPolicy::new_exponential(0, 100, 2_000, 2)
            }))
            .build_subscriber_client()
            .map_err(|e| map_err(e, "subscribe"))?;
        subscriber
            .init()
            .await
            .map_err(|e| map_err(e, "subscribe"))?;
        // Resubscribes after a reconnect.
        let _resubscriber = subscriber.manage_subscriptions();
        let id = format!("{:x}{:x}", std::process::id(), fastrand::u64(..));
        let near = self.near.clone();
        let own = id.clone();
        let _listener = subscriber.on_message(move |message| {
            let near = near.clone();
            let own = own.clone();
            async move {
                if let Some(bytes) = message.value.as_bytes() {
                    apply_invalidation(&near, &own, bytes).await;
                }
                Ok(())
            }
        });
        let near = self.near.clone();
        let _reconnects = subscriber.on_reconnect(move |_| {
            let near = near.clone();
            async move {
                // Messages sent while disconnected are lost: forget everything near.
                let _ = near.delete_prefix(b"").await;
                Ok(())
            }
        });
        subscriber
            .subscribe(self.channel.clone())
            .await
            .map_err(|e| map_err(e, "subscribe"))?;
        Ok(TieredStore {
            inner: Arc::new(TieredInner {
                near: self.near,
                far: self.far,
                near_ttl: self.near_ttl,
                channel: self.channel,
                id,
                subscriber,
            }),
        })
    }
}

/// Invalidation messages: `<instance id> K <key>` or `<instance id> P <prefix>`, the key or
/// prefix as raw bytes (it may hold spaces or be binary: only the first two spaces split).
async fn apply_invalidation(near: &MemoryStore, own: &str, message: &[u8]) {
    let mut parts = message.splitn(3, |b| *b == b' ');
    let (Some(id), Some(kind), Some(target)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    if id == own.as_bytes() {
        return;
    }
    let _ = match kind {
        b"K" => near.delete(target).await.map(|_| ()),
        b"P" => near.delete_prefix(target).await.map(|_| ()),
        _ => Ok(()),
    };
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
        }
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
        let mut invalidated = Ok(());
        for target in targets {
            // Boxed: every write's future carries this, and the tiered store's futures nest
            // deep enough (cache handle, instrumentation, Redis bounds) to matter on a stack.
            if let Err(e) = Box::pin(self.invalidate(kind, target, op)).await {
                invalidated = Err(e);
            }
        }
        let value = written?;
        invalidated.map(|()| value)
    }

    /// Drops the near copy here and announces the change to the other instances.
    async fn invalidate(&self, kind: char, target: &[u8], op: &'static str) -> Result<()> {
        match kind {
            'P' => self.inner.near.delete_prefix(target).await?,
            _ => u64::from(self.inner.near.delete(target).await?),
        };
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
        let (value, ttl) = tokio::try_join!(self.inner.far.get(key), self.inner.far.ttl(key))?;
        // Copy near only with the far key's lifetime known: a key that expired or was deleted
        // between the two reads (no TTL answer) is not cached near for a whole near TTL.
        let far_ttl = match ttl {
            Some(Ttl::Expires(t)) => Some(Some(t)),
            Some(Ttl::Persistent) => Some(None),
            None => None,
        };
        if let (Some(v), Some(far_ttl)) = (&value, far_ttl) {
            self.inner
                .near
                .set(key, v.clone(), Some(self.near_ttl(far_ttl)))
                .await?;
        }
        Ok(value)
    }

    #[inline]
    fn get_local(&self, key: &[u8]) -> Option<Option<Bytes>> {
        // A near miss is not an answer: Redis may hold the key.
        self.inner.near.get_local(key).flatten().map(Some)
    }

    async fn set(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let written = self.inner.far.set(key, value.clone(), ttl).await;
        self.after_write(written, 'K', &[key], "set").await?;
        self.inner
            .near
            .set(key, value, Some(self.near_ttl(ttl)))
            .await
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
        let _ = self.inner.subscriber.quit().await;
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
        if !self.inner.subscriber.is_connected() {
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
