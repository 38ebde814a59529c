//! The [`JobStore`] trait: where background jobs wait, are leased, retried and buried.

use super::AfterFailure;
use crate::scheduler::StoreFuture;
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

/// The persistence side of background jobs, behind a [`JobQueue`](super::JobQueue).
///
/// The queue owns handlers, workers, retry policy and counters; a store only keeps jobs. Each
/// queue name has its own jobs and its own dead list. A job moves through three states:
/// ready (or waiting for a retry delay), leased by a worker ([`claim`](Self::claim)), and
/// finished ([`complete`](Self::complete)) or dead ([`fail`](Self::fail) with
/// [`AfterFailure::Dead`]). A lease that expires before it is settled makes the job ready
/// again, so a worker that dies mid-job loses it to another worker: delivery is at least once.
///
/// Implementations: [`MemoryJobStore`](super::MemoryJobStore) and `RedisJobStore` (feature
/// `scheduler-redis`). A third-party store proves itself with
/// `corekit::scheduler::conformance::run_all` (feature `testing`).
pub trait JobStore: Send + Sync + 'static {
    /// A short name for errors and logs, e.g. `"memory"` or `"redis"`.
    fn name(&self) -> &'static str;

    /// Stores a job (`payload` is its JSON) on `queue`, ready at once; returns its id, unique
    /// within the queue.
    ///
    /// # Errors
    /// When the store cannot be reached; the job was then not stored.
    fn enqueue<'a>(&'a self, queue: &'a str, payload: &'a [u8]) -> StoreFuture<'a, u64>;

    /// Takes the oldest ready job of `queue` and leases it for `lease`; `None` when no job is
    /// ready. Jobs whose retry delay has passed, and jobs whose lease expired, are ready.
    ///
    /// # Errors
    /// When the store cannot be reached; nothing was leased.
    fn claim<'a>(&'a self, queue: &'a str, lease: Duration) -> StoreFuture<'a, Option<ClaimedJob>>;

    /// Removes a job that succeeded. False when its lease had expired and it is no longer this
    /// caller's (another worker may be running it); nothing changes then.
    ///
    /// # Errors
    /// When the store cannot be reached; the lease will expire and the job run again.
    fn complete<'a>(&'a self, job: &'a ClaimedJob) -> StoreFuture<'a, bool>;

    /// Settles a failed attempt: ready again after the delay with its attempt count raised
    /// and `error` kept, or moved to its queue's dead list. False, as for
    /// [`complete`](Self::complete), when the lease was lost.
    ///
    /// # Errors
    /// When the store cannot be reached; the lease will expire and the job run again.
    fn fail<'a>(
        &'a self,
        job: &'a ClaimedJob,
        error: &'a str,
        then: AfterFailure,
    ) -> StoreFuture<'a, bool>;

    /// The dead jobs of `queue`, oldest first.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn dead<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, Vec<DeadJob>>;

    /// Moves dead job `id` of `queue` back to ready, as a first attempt with no error (after
    /// the cause is fixed). False when there is no such dead job.
    ///
    /// # Errors
    /// When the store cannot be reached; [`Unsupported`](crate::ErrorKind::Unsupported) from
    /// a store that does not implement it (the default).
    fn retry_dead<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, bool> {
        let _ = (queue, id);
        Box::pin(std::future::ready(Err(crate::Error::unsupported(
            self.name(),
            "retry_dead",
            "this job store cannot retry dead jobs",
        ))))
    }

    /// Deletes dead job `id` of `queue`. False when there is no such dead job.
    ///
    /// # Errors
    /// As [`retry_dead`](Self::retry_dead).
    fn delete_dead<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, bool> {
        let _ = (queue, id);
        Box::pin(std::future::ready(Err(crate::Error::unsupported(
            self.name(),
            "delete_dead",
            "this job store cannot delete dead jobs",
        ))))
    }

    /// Jobs that are neither finished nor dead, when they live only as long as this process;
    /// `None` for a durable store, whose jobs wait for the next instance. A queue's
    /// `shutdown` runs these before it returns, and `enqueue` refuses a queue with no handler.
    fn unfinished(&self) -> Option<u64>;

    /// Waits up to `max` for a job of one of `queues` to become ready. Stores that can tell
    /// (the memory store) return as soon as one is; the default sleeps for `max` (polling).
    fn wait_for_work<'a>(&'a self, queues: &'a [String], max: Duration) -> StoreFuture<'a, ()> {
        let _ = queues;
        Box::pin(async move {
            tokio::time::sleep(max).await;
            Ok(())
        })
    }

    /// Checks that the store answers.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) or
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when it does not.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Releases connections. Stores without any keep the default, which does nothing.
    ///
    /// # Errors
    /// When the store fails to close cleanly.
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// The store as [`Any`], for [`JobQueue::downcast_ref`](super::JobQueue::downcast_ref).
    fn as_any(&self) -> &dyn Any;
}

/// A job leased by [`JobStore::claim`]: what a worker runs, and what the store needs to
/// settle it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClaimedJob {
    /// The id [`JobStore::enqueue`] returned.
    pub id: u64,
    /// The queue it is on.
    pub queue: String,
    /// The payload as JSON.
    pub payload: Arc<[u8]>,
    /// This attempt's number; the first is 1.
    pub attempt: u32,
    /// The store's own reference to this lease (opaque to the queue).
    pub receipt: String,
}

impl ClaimedJob {
    /// A claimed job, for store implementations.
    pub fn new(
        id: u64,
        queue: impl Into<String>,
        payload: impl Into<Arc<[u8]>>,
        attempt: u32,
        receipt: impl Into<String>,
    ) -> Self {
        Self {
            id,
            queue: queue.into(),
            payload: payload.into(),
            attempt,
            receipt: receipt.into(),
        }
    }
}

/// A job that used up its attempts, from [`JobQueue::dead`](super::JobQueue::dead).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadJob {
    /// The id [`JobQueue::enqueue`](super::JobQueue::enqueue) returned.
    pub id: u64,
    /// The queue it was on.
    pub queue: String,
    /// The payload as JSON.
    pub payload: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: String,
}

impl DeadJob {
    /// A dead job, for store implementations.
    pub fn new(
        id: u64,
        queue: impl Into<String>,
        payload: impl Into<String>,
        attempts: u32,
        last_error: impl Into<String>,
    ) -> Self {
        Self {
            id,
            queue: queue.into(),
            payload: payload.into(),
            attempts,
            last_error: last_error.into(),
        }
    }
}
