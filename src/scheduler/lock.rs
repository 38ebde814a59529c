//! The seams to other instances and to restarts: tick locks and run histories.

use super::guard::lock;
use crate::Result;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

/// The boxed future returned by [`TickLock`] and [`RunHistory`] methods (object-safe async).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Decides which of several scheduler instances runs a tick of a
/// [`single_instance`](super::Job::single_instance) job: the first to take the tick's key wins.
pub trait TickLock: Send + Sync + 'static {
    /// Takes `key` for `ttl` if nobody holds it; true when this caller got it.
    fn acquire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, bool>;
}

/// Remembers when each job last ran, across restarts, so [`Misfire::RunOnce`](super::Misfire::RunOnce) can catch up
/// on ticks missed while the process was stopped. `RedisTickLock` implements it (feature
/// `scheduler-redis`); [`MemoryRunHistory`] lives as long as the process.
pub trait RunHistory: Send + Sync + 'static {
    /// When `job` last fired, if it ever did.
    fn last_run<'a>(&'a self, job: &'a str) -> StoreFuture<'a, Option<DateTime<Utc>>>;

    /// Records that `job` fired for the tick `at`.
    fn record<'a>(&'a self, job: &'a str, at: DateTime<Utc>) -> StoreFuture<'a, ()>;
}

/// A [`RunHistory`] in process memory: survives a `Scheduler` being rebuilt, not a restart.
#[derive(Debug, Default)]
pub struct MemoryRunHistory(Mutex<HashMap<String, DateTime<Utc>>>);

impl RunHistory for MemoryRunHistory {
    fn last_run<'a>(&'a self, job: &'a str) -> StoreFuture<'a, Option<DateTime<Utc>>> {
        let last = lock(&self.0).get(job).copied();
        Box::pin(std::future::ready(Ok(last)))
    }

    fn record<'a>(&'a self, job: &'a str, at: DateTime<Utc>) -> StoreFuture<'a, ()> {
        lock(&self.0).insert(job.to_owned(), at);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// How long a tick's key is kept: far longer than any clock skew between instances.
pub(super) const TICK_LOCK_TTL: Duration = Duration::from_secs(600);
