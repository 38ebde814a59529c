//! [`JobQueueBuilder`]: the options, then the store; `build` is async only when it connects.

use super::{JobQueue, JobQueueConfig, JobStore, MemoryJobStore};
use crate::Result;
use crate::config::EnvConfig;
use crate::scheduler::SchedulerConfig;
use std::sync::Arc;
use std::time::Duration;

/// Builder state: the store is in this process or given ready-made, so
/// [`build`](JobQueueBuilder::build) needs no `await`.
#[derive(Clone, Default)]
pub struct InProcess {
    store: Option<Arc<dyn JobStore>>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.store.as_ref().map_or("memory", |s| s.name());
        f.debug_struct("InProcess").field("store", &name).finish()
    }
}

/// Builder state: a Redis store, so [`build`](JobQueueBuilder::build) connects and is async
/// (feature `scheduler-redis`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectRedis;

/// Builds a [`JobQueue`]; from [`JobQueue::builder`]. Validated like the environment.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use corekit::scheduler::JobQueue;
/// use std::time::Duration;
///
/// let jobs = JobQueue::builder()
///     .concurrency(4)
///     .max_attempts(3)
///     .backoff(Duration::from_millis(200), Duration::from_secs(30))
///     .timeout(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(jobs.backend_name(), "memory");
/// # Ok::<(), corekit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct JobQueueBuilder<S = InProcess> {
    config: JobQueueConfig,
    state: S,
}

impl JobQueueBuilder<InProcess> {
    pub(super) fn new() -> Self {
        Self {
            config: JobQueueConfig::default(),
            state: InProcess::default(),
        }
    }

    /// Uses `store` instead of a new [`MemoryJobStore`]: a third-party store, or one store
    /// shared by several queues (pass an `Arc`).
    pub fn store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.state.store = Some(store);
        self
    }

    /// Keeps jobs in Redis at `url` (`redis://` or `rediss://`): durable and shared by
    /// instances. [`build`](JobQueueBuilder::build) then connects.
    #[cfg(feature = "scheduler-redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "scheduler-redis")))]
    pub fn redis(self, url: impl Into<String>) -> JobQueueBuilder<ConnectRedis> {
        JobQueueBuilder {
            config: self.config.url(url).backend(super::JobBackend::Redis),
            state: ConnectRedis,
        }
    }

    /// Starts the queue's workers. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the setting, as from the
    /// environment.
    pub fn build(self) -> Result<JobQueue> {
        let mut config = self.config;
        // This state never connects: whatever the URL says, the store is in hand.
        config.url = super::config::DEFAULT_URL.to_owned();
        config.backend = None;
        config
            .validate()
            .map_err(|i| i.into_error(SchedulerConfig::PREFIX, &[]))?;
        let store = self
            .state
            .store
            .unwrap_or_else(|| Arc::new(MemoryJobStore::new().with_dead_max(config.dead_max)));
        Ok(JobQueue::start(store, config))
    }
}

#[cfg(feature = "scheduler-redis")]
impl JobQueueBuilder<ConnectRedis> {
    /// Redis key prefix (default `corekit:jobs`): queues under different prefixes are apart.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }

    /// Connects to Redis and starts the queue's workers.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a bad setting or URL;
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when Redis does not answer
    /// within 5 s.
    pub async fn build(self) -> Result<JobQueue> {
        JobQueue::from_config(&self.config).await
    }
}

impl<S> JobQueueBuilder<S> {
    /// Dead jobs kept per queue, the oldest dropped first (default 10,000), for the store this
    /// builder makes (a store passed in keeps its own).
    pub fn dead_max(mut self, n: usize) -> Self {
        self.config.dead_max = n;
        self
    }

    /// Jobs running at once on this instance, across queues (default 16).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }

    /// Attempts per job, the first included, before it is dead (default 5).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// Delay before the first retry, doubling per attempt up to `max` (default 1 s, 5 min).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.backoff_base = base;
        self.config.backoff_max = max;
        self
    }

    /// Cancels an attempt that runs longer (counted as a failure).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// How long a worker holds a job before another may take it (see
    /// [`JobQueueConfig::lease`]).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = Some(lease);
        self
    }

    /// How long [`JobQueue::close`] waits for jobs (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }
}
