//! The [`JobQueue`] handle: handlers, workers, counters and shutdown over any [`JobStore`].

use super::builder::{InProcess, JobQueueBuilder};
use super::worker::work;
use super::{DeadJob, JobQueueConfig, JobStore, MemoryJobStore};
use crate::config::EnvConfig;
use crate::scheduler::SchedulerConfig;
use crate::scheduler::guard::{InFlight, lock};
use crate::{BoxError, Error, ErrorKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// One job-store call through the core instrumentation: a span, the duration and outcome for
/// an installed metrics recorder (`corekit.scheduler.operation.duration`), and the store and
/// operation on its error.
pub(super) async fn traced<T>(
    store: &dyn JobStore,
    op: &'static str,
    queue: &str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    use crate::instrument::{Call, Module};
    let system = store.name();
    let span = || {
        tracing::debug_span!(
            "scheduler",
            otel.name = op,
            scheduler.store = system,
            scheduler.queue = queue
        )
    };
    crate::instrument::call(
        Call::new(Module::Scheduler, system, op),
        tracing::Level::DEBUG,
        span,
        call,
    )
    .await
}

/// How often shutdown looks whether an in-process store has run everything: short, since it
/// is all that stands between the last job and shutdown returning.
const DRAIN_POLL: Duration = Duration::from_millis(2);

/// Counters of a [`JobQueue`] handle (and its clones), on this instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStats {
    /// Jobs enqueued through this handle.
    pub enqueued: u64,
    /// Jobs that succeeded (on any attempt) on this instance's workers.
    pub succeeded: u64,
    /// Failed attempts that were retried.
    pub retried: u64,
    /// Jobs that used up their attempts.
    pub dead: u64,
    /// Attempts running now on this instance's workers.
    pub running: u64,
}

#[derive(Default)]
pub(super) struct JobCounters {
    pub(super) enqueued: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) dead: AtomicU64,
    /// Attempts running now.
    pub(super) in_flight: InFlight,
}

pub(super) struct Shared {
    pub(super) store: Arc<dyn JobStore>,
    pub(super) config: JobQueueConfig,
    pub(super) handlers: super::handlers::Handlers,
    /// False once shutdown began: enqueue refuses.
    accepting: AtomicBool,
    /// True once workers must stop taking jobs.
    pub(super) stopping: AtomicBool,
    pub(super) counters: JobCounters,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Background jobs: typed payloads on named queues, run by a bounded pool of workers with
/// retries, backoff with jitter, leases and dead lists, over any [`JobStore`].
///
/// The store is picked at run time: [`MemoryJobStore`] (in-process, the default) or
/// `RedisJobStore` (durable and shared by instances; feature `scheduler-redis`), from
/// `SCHEDULER_JOBS_URL` with [`from_env`](Self::from_env). Cloning shares the queue.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use corekit::scheduler::{JobQueue, JobQueueConfig};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Welcome { email: String }
///
/// let jobs = JobQueue::new(JobQueueConfig::default().concurrency(8));
/// jobs.register("welcome", |job: Welcome| async move {
///     println!("sending to {}", job.email);
///     Ok::<(), std::io::Error>(())
/// });
/// jobs.enqueue("welcome", &Welcome { email: "ada@example.com".into() }).await?;
/// jobs.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok::<(), corekit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct JobQueue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("backend", &self.backend_name())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl JobQueue {
    /// A builder: options, then a store ([`MemoryJobStore`] unless told otherwise).
    pub fn builder() -> JobQueueBuilder<InProcess> {
        JobQueueBuilder::new()
    }

    /// An in-process queue ([`MemoryJobStore`]) with `config`'s worker and retry settings
    /// (its `url` and `backend` are ignored; a concurrency or attempt count of 0 counts as
    /// 1). Starts the workers, so it must be called inside a tokio runtime.
    pub fn new(config: JobQueueConfig) -> Self {
        let config = JobQueueConfig {
            concurrency: config.concurrency.max(1),
            max_attempts: config.max_attempts.max(1),
            ..config
        };
        Self::start(
            Arc::new(MemoryJobStore::new().with_dead_max(config.dead_max)),
            config,
        )
    }

    /// A queue configured from `SCHEDULER_*` variables (see the [module docs](crate::scheduler)):
    /// `SCHEDULER_JOBS_URL` (`memory://` by default, `redis://`, `rediss://`) picks the store,
    /// `SCHEDULER_JOBS_BACKEND` overrides it.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the variable; as [`from_config`](Self::from_config).
    pub async fn from_env() -> Result<Self> {
        let config = SchedulerConfig::from_env()?.job_queue();
        if config.resolve_backend() == Ok(super::JobBackend::Memory) {
            crate::config::warn_if_defaulted(
                SchedulerConfig::PREFIX,
                "background jobs stay in this process and are lost when it exits",
                "SCHEDULER_JOBS_URL=redis://host:6379 (or SCHEDULER_JOBS_URL=memory:// to \
                 choose this)",
            );
        }
        Self::from_config(&config).await
    }

    /// A queue from an explicit config, validated like the environment; connects when the
    /// store is Redis.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the `SCHEDULER_*` variable of a bad setting (or the cargo
    /// feature a backend needs); [`ErrorKind::Unavailable`] when Redis does not answer.
    pub async fn from_config(config: &JobQueueConfig) -> Result<Self> {
        config
            .validate()
            .map_err(|i| i.into_error(SchedulerConfig::PREFIX, &[]))?;
        let store: Arc<dyn JobStore> = match config.resolve_backend() {
            #[cfg(feature = "scheduler-redis")]
            Ok(super::JobBackend::Redis) => Arc::new(
                super::RedisJobStore::connect(&config.url, &config.prefix)
                    .await?
                    .with_dead_max(config.dead_max),
            ),
            _ => Arc::new(MemoryJobStore::new().with_dead_max(config.dead_max)),
        };
        Ok(Self::start(store, config.clone()))
    }

    /// Starts `config.concurrency` workers over `store`.
    pub(super) fn start(store: Arc<dyn JobStore>, config: JobQueueConfig) -> Self {
        let concurrency = config.concurrency.max(1);
        let shared = Arc::new(Shared {
            store,
            config,
            handlers: super::handlers::Handlers::default(),
            accepting: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            counters: JobCounters::default(),
            workers: Mutex::new(Vec::new()),
        });
        let workers = (0..concurrency)
            .map(|i| tokio::spawn(work(Arc::downgrade(&shared), i)))
            .collect();
        *lock(&shared.workers) = workers;
        Self { shared }
    }

    /// Sets the handler for `queue`; this instance's workers start taking that queue's jobs.
    /// Payloads are JSON-decoded into `T`; a payload that does not decode fails its attempt
    /// like a handler error.
    pub fn register<T, F, Fut, E>(&self, queue: &str, handler: F)
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        self.shared.handlers.register(queue, handler);
    }

    /// Stores a job on `queue`; returns its id (unique within the queue). With a durable
    /// store any instance with a handler for `queue` may run it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an empty queue name or one with spaces, a payload
    /// that does not serialize, or (in-process stores only, where nobody else could run it) a
    /// queue with no handler; [`ErrorKind::Unavailable`] after shutdown; the store's errors.
    pub async fn enqueue<T: Serialize + ?Sized>(&self, queue: &str, job: &T) -> Result<u64> {
        let shared = &self.shared;
        if !shared.accepting.load(Ordering::SeqCst) {
            return Err(
                Error::new(ErrorKind::Unavailable, "the job queue has shut down")
                    .with_operation("enqueue"),
            );
        }
        if queue.is_empty() || queue.contains(char::is_whitespace) {
            return Err(Error::invalid_input(format!(
                "queue name {queue:?} must be non-empty without spaces"
            ))
            .with_operation("enqueue"));
        }
        if shared.store.unfinished().is_some() && !shared.handlers.contains(queue) {
            return Err(Error::invalid_input(format!(
                "no handler is registered for queue {queue:?}"
            ))
            .with_operation("enqueue"));
        }
        let payload = serde_json::to_vec(job).map_err(|e| {
            Error::invalid_input(format!("job for queue {queue:?} does not serialize"))
                .with_operation("enqueue")
                .with_source(e)
        })?;
        let id = traced(
            &*shared.store,
            "enqueue",
            queue,
            shared.store.enqueue(queue, &payload),
        )
        .await?;
        shared.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Jobs of `queue` that used up their attempts, oldest first (with a durable store, from
    /// every instance).
    ///
    /// # Errors
    /// The store's, e.g. [`ErrorKind::Unavailable`] when Redis does not answer.
    pub async fn dead(&self, queue: &str) -> Result<Vec<DeadJob>> {
        traced(
            &*self.shared.store,
            "dead",
            queue,
            self.shared.store.dead(queue),
        )
        .await
    }

    /// Moves dead job `id` of `queue` back to the queue, as a first attempt (once its cause is
    /// fixed). False when `queue` has no such dead job.
    ///
    /// # Errors
    /// The store's; [`ErrorKind::Unsupported`] from a third-party store without it.
    pub async fn retry_dead(&self, queue: &str, id: u64) -> Result<bool> {
        traced(
            &*self.shared.store,
            "retry_dead",
            queue,
            self.shared.store.retry_dead(queue, id),
        )
        .await
    }

    /// Deletes dead job `id` of `queue`. False when there is no such dead job.
    ///
    /// # Errors
    /// As [`retry_dead`](Self::retry_dead).
    pub async fn delete_dead(&self, queue: &str, id: u64) -> Result<bool> {
        traced(
            &*self.shared.store,
            "delete_dead",
            queue,
            self.shared.store.delete_dead(queue, id),
        )
        .await
    }

    /// This handle's counters (`running`: attempts on this instance now).
    pub fn stats(&self) -> JobStats {
        let c = &self.shared.counters;
        JobStats {
            enqueued: c.enqueued.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead: c.dead.load(Ordering::Relaxed),
            running: c.in_flight.get() as u64,
        }
    }

    /// Checks that the store answers.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`] or [`ErrorKind::Timeout`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        traced(&*self.shared.store, "ping", "", self.shared.store.ping()).await
    }

    /// The store's name: `"memory"`, `"redis"`, or a third-party store's.
    pub fn backend_name(&self) -> &'static str {
        self.shared.store.name()
    }

    /// The concrete store, when it is a `T` (Go CDK's `As`): e.g. the `RedisJobStore` to
    /// reach its client.
    pub fn downcast_ref<T: JobStore>(&self) -> Option<&T> {
        self.shared.store.as_any().downcast_ref::<T>()
    }

    /// Stops accepting jobs and waits up to `deadline`. An in-process store's jobs (queued,
    /// running or waiting to retry) are all run first, since they would be lost; a durable
    /// store's jobs stay for the next instance and only running attempts are awaited.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] with the number of jobs left. They keep going, and a later call
    /// waits again; with a durable store, attempts cut off by an exit run again elsewhere
    /// after their lease.
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        let shared = &self.shared;
        shared.accepting.store(false, Ordering::SeqCst);
        let start = tokio::time::Instant::now();
        while let Some(left) = shared.store.unfinished().filter(|n| *n > 0) {
            if start.elapsed() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{left} job(s) still queued, running or waiting to retry after {deadline:?}"
                    ),
                )
                .with_operation("shutdown"));
            }
            tokio::time::sleep(DRAIN_POLL.min(deadline.saturating_sub(start.elapsed()))).await;
        }
        shared.stopping.store(true, Ordering::SeqCst);
        let remaining = deadline.saturating_sub(start.elapsed());
        if shared.counters.in_flight.wait_idle(remaining).await {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "{} job(s) still running after {deadline:?}",
                shared.counters.in_flight.get()
            ),
        )
        .with_operation("shutdown"))
    }

    /// [`shutdown`](Self::shutdown) with [`JobQueueConfig::shutdown_timeout`], then closes the
    /// store's connections.
    ///
    /// # Errors
    /// As [`shutdown`](Self::shutdown) (the store then stays open, so running attempts can
    /// still settle); the store's error on closing.
    pub async fn close(&self) -> Result<()> {
        self.shutdown(self.shared.config.shutdown_timeout).await?;
        self.shared.store.close().await
    }

    /// Stops this instance's workers at once, mid-job, as if the process died: what they held
    /// goes back to other workers when its lease expires. For tests and emergency stops.
    pub fn abort(&self) {
        self.shared.accepting.store(false, Ordering::SeqCst);
        self.shared.stopping.store(true, Ordering::SeqCst);
        for worker in std::mem::take(&mut *lock(&self.shared.workers)) {
            worker.abort();
        }
    }
}
