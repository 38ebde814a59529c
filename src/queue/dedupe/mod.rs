//! Effectively-once processing: a [`Consumer`](super::Consumer) skips a message whose id it
//! already handled, using a window of handled ids kept in a [`DedupeStore`].

#[cfg(feature = "queue-dedupe-redis")]
mod redis;

#[cfg(feature = "queue-dedupe-redis")]
pub use redis::RedisDedupe;

use super::BoxFuture;
use crate::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What [`DedupeStore::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// Not seen within the window: the caller now holds it for the lease and handles it.
    New,
    /// Handled already: acknowledge without handling.
    Done,
    /// Another consumer holds it right now (a redelivery while the first is still at work).
    Busy,
}

/// Where a consumer keeps the ids it handled: [`MemoryDedupe`] (one process) or
/// [`RedisDedupe`](crate::queue::RedisDedupe) (shared by every consumer of a group; feature
/// `queue-dedupe-redis`).
///
/// Keys are the caller's (`corekit:dedupe:<topic>:<group>:<id>`). A key is *busy* for the lease
/// after [`claim`](Self::claim), held by that claim's token, and *done* for the window after
/// [`complete`](Self::complete).
pub trait DedupeStore: Send + Sync + 'static {
    /// Short name (`memory`, `redis`) for logs.
    fn name(&self) -> &'static str;
    /// Makes `key` busy for `lease`, held by `token`, unless it is busy or done already.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim>>;
    /// Marks `key` done for `window`.
    fn complete<'a>(&'a self, key: &'a str, window: Duration) -> BoxFuture<'a, Result<()>>;
    /// Forgets `key` if it is still busy under `token` (its handling failed or paused; the
    /// message is tried again). A claim that expired and was taken by another, or a key marked
    /// done meanwhile, is left alone.
    fn release<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// De-duplication settings of a consumer: the store, how long a handled id is remembered, how
/// long a claim holds.
#[derive(Clone)]
pub(crate) struct Dedupe {
    pub store: Arc<dyn DedupeStore>,
    pub window: Duration,
    pub lease: Duration,
}

impl std::fmt::Debug for Dedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedupe")
            .field("store", &self.store.name())
            .field("window", &self.window)
            .field("lease", &self.lease)
            .finish()
    }
}

impl Dedupe {
    /// The store key of a message id in a group.
    pub(crate) fn key(topic: &str, group: &str, id: &str) -> String {
        format!("corekit:dedupe:{topic}:{group}:{id}")
    }
}

#[derive(Debug, Clone)]
enum State {
    Busy(Instant, String),
    Done(Instant),
}

/// Handled ids in this process's memory: right for one consumer process, or as a first line in
/// tests. Entries past their window are dropped as new ones come.
#[derive(Debug, Default, Clone)]
pub struct MemoryDedupe {
    ids: Arc<Mutex<HashMap<String, State>>>,
}

impl MemoryDedupe {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl DedupeStore for MemoryDedupe {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim>> {
        let now = Instant::now();
        let mut ids = self.ids();
        // Amortised: a sweep each time the map doubles keeps it near the live entries.
        if ids.len() >= 1024 && ids.len().is_power_of_two() {
            ids.retain(|_, s| match s {
                State::Busy(until, _) | State::Done(until) => *until > now,
            });
        }
        let claim = match ids.get(key) {
            Some(State::Done(until)) if *until > now => Claim::Done,
            Some(State::Busy(until, _)) if *until > now => Claim::Busy,
            _ => {
                ids.insert(key.to_owned(), State::Busy(now + lease, token.to_owned()));
                Claim::New
            }
        };
        Box::pin(std::future::ready(Ok(claim)))
    }

    fn complete<'a>(&'a self, key: &'a str, window: Duration) -> BoxFuture<'a, Result<()>> {
        self.ids()
            .insert(key.to_owned(), State::Done(Instant::now() + window));
        Box::pin(std::future::ready(Ok(())))
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<()>> {
        let mut ids = self.ids();
        if matches!(ids.get(key), Some(State::Busy(_, t)) if t == token) {
            ids.remove(key);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Checks `QUEUE_DEDUPE_URL`'s scheme.
pub(crate) fn check_url(url: &str) -> std::result::Result<(), crate::config::ConfigIssue> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("memory" | "redis" | "rediss" | "redis-cluster" | "redis-sentinel") => Ok(()),
        _ => Err(crate::config::ConfigIssue::new(
            "dedupe_url",
            url,
            "memory:// or a Redis URL (redis://, rediss://, redis-cluster://, redis-sentinel://)",
        )),
    }
}

/// The de-duplication `QUEUE_DEDUPE_*` asks for, connected.
pub(crate) async fn from_config(c: &super::QueueConfig) -> Result<Option<Dedupe>> {
    let Some(url) = c.dedupe_url.as_ref().map(crate::config::Secret::expose) else {
        return Ok(None);
    };
    let store: Arc<dyn DedupeStore> = if url.starts_with("memory://") {
        Arc::new(MemoryDedupe::new())
    } else {
        redis_store(url, c.connect_timeout).await?
    };
    Ok(Some(Dedupe {
        store,
        window: c.dedupe_window,
        lease: c.dedupe_lease,
    }))
}

#[cfg(feature = "queue-dedupe-redis")]
async fn redis_store(url: &str, timeout: Duration) -> Result<Arc<dyn DedupeStore>> {
    Ok(Arc::new(RedisDedupe::connect(url, timeout).await?))
}

#[cfg(not(feature = "queue-dedupe-redis"))]
async fn redis_store(_: &str, _: Duration) -> Result<Arc<dyn DedupeStore>> {
    Err(crate::Error::config(
        "QUEUE_DEDUPE_URL is a Redis URL, which needs the cargo feature queue-dedupe-redis",
    ))
}
