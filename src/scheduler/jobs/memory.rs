//! [`MemoryJobStore`]: jobs in process memory, with the same leases and dead lists as Redis.

use super::{AfterFailure, ClaimedJob, DeadJob, JobStore};
use crate::scheduler::StoreFuture;
use crate::scheduler::guard::lock;
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A [`JobStore`] in process memory: fast, and gone with the process.
///
/// Leases, retry delays and dead lists behave as in Redis, measured on tokio's clock (so a
/// test with paused time runs retries at once). Several [`JobQueue`](super::JobQueue)s may
/// share one store (the same `Arc` to [`JobQueueBuilder::store`](super::JobQueueBuilder::store)).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use corekit::scheduler::{JobQueue, MemoryJobStore};
/// use std::sync::Arc;
///
/// let jobs = JobQueue::builder().store(Arc::new(MemoryJobStore::new())).build()?;
/// assert_eq!(jobs.backend_name(), "memory");
/// assert!(jobs.downcast_ref::<MemoryJobStore>().is_some());
/// # Ok::<(), corekit::Error>(())
/// # }).unwrap();
/// ```
pub struct MemoryJobStore {
    state: Mutex<State>,
    // Wakes idle workers when a job becomes ready (enqueue, an immediate retry).
    changed: Notify,
    /// Dead jobs kept per queue; the oldest go first.
    dead_max: usize,
}

impl Default for MemoryJobStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            changed: Notify::new(),
            dead_max: super::DEFAULT_DEAD_MAX,
        }
    }
}

impl std::fmt::Debug for MemoryJobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryJobStore")
            .field("unfinished", &lock(&self.state).unfinished)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    next_lease: u64,
    unfinished: u64,
}

#[derive(Default)]
struct Queue {
    next_id: u64,
    ready: VecDeque<Stored>,
    /// Waiting for a retry delay, with the instant it is due.
    delayed: Vec<(Instant, Stored)>,
    /// Leased jobs by lease number, with the instant the lease expires.
    leased: HashMap<u64, (Instant, Stored)>,
    /// The earliest instant at which a delayed job or a lease is due (a lower bound).
    next_due: Option<Instant>,
    dead: VecDeque<DeadJob>,
}

#[derive(Clone)]
struct Stored {
    id: u64,
    payload: Arc<[u8]>,
    attempt: u32,
}

impl Queue {
    fn due_at(&mut self, at: Instant) {
        self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
    }

    /// Moves due retries, then expired leases, to the back of `ready`, oldest first (as the
    /// Redis store's PROMOTE script does).
    fn promote(&mut self, now: Instant) {
        if self.next_due.is_none_or(|d| d > now) {
            return;
        }
        let mut due: Vec<(Instant, Stored)> = Vec::new();
        self.delayed.retain(|(at, job)| {
            let keep = *at > now;
            if !keep {
                due.push((*at, job.clone()));
            }
            keep
        });
        due.sort_by_key(|(at, job)| (*at, job.id));
        let mut expired: Vec<(Instant, u64)> = self
            .leased
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(lease, (at, _))| (*at, *lease))
            .collect();
        expired.sort();
        self.ready.extend(due.into_iter().map(|(_, job)| job));
        for (_, lease) in expired {
            if let Some((_, job)) = self.leased.remove(&lease) {
                self.ready.push_back(job);
            }
        }
        self.next_due = self
            .delayed
            .iter()
            .map(|(at, _)| *at)
            .chain(self.leased.values().map(|(at, _)| *at))
            .min();
    }
}

impl MemoryJobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `n` dead jobs per queue, dropping the oldest (default 10,000).
    pub fn with_dead_max(mut self, n: usize) -> Self {
        self.dead_max = n.max(1);
        self
    }

    /// Takes dead job `id` out of `queue`'s dead list and, with `retry`, puts it back in
    /// `ready` as a first attempt, under one lock (as the Redis store does in one script).
    fn unbury(&self, queue: &str, id: u64, retry: bool) -> bool {
        let mut state = lock(&self.state);
        let Some(q) = state.queues.get_mut(queue) else {
            return false;
        };
        let Some(dead) = q
            .dead
            .iter()
            .position(|d| d.id == id)
            .and_then(|at| q.dead.remove(at))
        else {
            return false;
        };
        if retry {
            q.ready.push_back(Stored {
                id: dead.id,
                payload: Arc::from(dead.payload.as_bytes()),
                attempt: 1,
            });
            state.unfinished += 1;
        }
        true
    }

    fn settle(&self, job: &ClaimedJob, then: impl FnOnce(&mut Queue, Stored)) -> bool {
        let Ok(lease) = job.receipt.parse::<u64>() else {
            return false;
        };
        let mut state = lock(&self.state);
        let Some(queue) = state.queues.get_mut(&job.queue) else {
            return false;
        };
        // A lease that expired was moved back to `ready` or taken by another worker.
        let Some((_, stored)) = queue.leased.remove(&lease) else {
            return false;
        };
        then(queue, stored);
        true
    }
}

impl JobStore for MemoryJobStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn enqueue<'a>(&'a self, queue: &'a str, payload: &'a [u8]) -> StoreFuture<'a, u64> {
        let id = {
            let mut state = lock(&self.state);
            state.unfinished += 1;
            let q = state.queues.entry(queue.to_owned()).or_default();
            q.next_id += 1;
            let id = q.next_id;
            q.ready.push_back(Stored {
                id,
                payload: Arc::from(payload),
                attempt: 1,
            });
            id
        };
        self.changed.notify_waiters();
        Box::pin(std::future::ready(Ok(id)))
    }

    fn claim<'a>(&'a self, queue: &'a str, lease: Duration) -> StoreFuture<'a, Option<ClaimedJob>> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        state.next_lease += 1;
        let number = state.next_lease;
        let claimed = state.queues.get_mut(queue).and_then(|q| {
            q.promote(now);
            let job = q.ready.pop_front()?;
            let until = now + lease;
            q.leased.insert(number, (until, job.clone()));
            q.due_at(until);
            Some(ClaimedJob::new(
                job.id,
                queue,
                job.payload,
                job.attempt,
                number.to_string(),
            ))
        });
        Box::pin(std::future::ready(Ok(claimed)))
    }

    fn complete<'a>(&'a self, job: &'a ClaimedJob) -> StoreFuture<'a, bool> {
        let mine = self.settle(job, |_, _| {});
        if mine {
            lock(&self.state).unfinished -= 1;
        }
        Box::pin(std::future::ready(Ok(mine)))
    }

    fn fail<'a>(
        &'a self,
        job: &'a ClaimedJob,
        error: &'a str,
        then: AfterFailure,
    ) -> StoreFuture<'a, bool> {
        let mut died = false;
        let mine = self.settle(job, |queue, stored| match then {
            AfterFailure::Retry(delay) => {
                let at = Instant::now() + delay;
                queue.delayed.push((
                    at,
                    Stored {
                        attempt: stored.attempt + 1,
                        ..stored
                    },
                ));
                queue.due_at(at);
            }
            AfterFailure::Dead => {
                died = true;
                queue.dead.push_back(DeadJob::new(
                    stored.id,
                    job.queue.clone(),
                    String::from_utf8_lossy(&stored.payload),
                    stored.attempt,
                    error,
                ));
                while queue.dead.len() > self.dead_max {
                    queue.dead.pop_front();
                }
            }
        });
        if died {
            lock(&self.state).unfinished -= 1;
        }
        // A retry is due at an instant the idle workers have not planned for.
        self.changed.notify_waiters();
        Box::pin(std::future::ready(Ok(mine)))
    }

    fn dead<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, Vec<DeadJob>> {
        let dead = lock(&self.state)
            .queues
            .get(queue)
            .map(|q| q.dead.iter().cloned().collect())
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(dead)))
    }

    fn retry_dead<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, bool> {
        let found = self.unbury(queue, id, true);
        self.changed.notify_waiters();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn delete_dead<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(self.unbury(queue, id, false))))
    }

    fn unfinished(&self) -> Option<u64> {
        Some(lock(&self.state).unfinished)
    }

    fn wait_for_work<'a>(&'a self, queues: &'a [String], max: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a job enqueued in between still wakes us.
            changed.as_mut().enable();
            let now = Instant::now();
            let wait = {
                let state = lock(&self.state);
                let mut wait = max;
                for q in queues.iter().filter_map(|name| state.queues.get(name)) {
                    if !q.ready.is_empty() {
                        return Ok(());
                    }
                    if let Some(due) = q.next_due {
                        wait = wait.min(due.saturating_duration_since(now));
                    }
                }
                wait
            };
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(wait) => {}
            }
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        // Nothing to reach: the store answers as long as the process runs.
        Box::pin(std::future::ready(Ok(())))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
