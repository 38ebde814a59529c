//! Settings of a [`JobQueue`](super::JobQueue): workers, retries, leases and which store.

use crate::config::{ConfigIssue, redact_url};
use serde::Deserialize;
use std::time::Duration;

/// Which [`JobStore`](super::JobStore) [`JobQueue::from_config`](super::JobQueue::from_config)
/// builds (`SCHEDULER_JOBS_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum JobBackend {
    /// [`MemoryJobStore`](super::MemoryJobStore): jobs live in this process.
    Memory,
    /// `RedisJobStore` (feature `scheduler-redis`): durable, shared by instances.
    Redis,
}

impl JobBackend {
    /// The backend's name, as [`JobQueue::backend_name`](super::JobQueue::backend_name) says it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobBackend::Memory => "memory",
            JobBackend::Redis => "redis",
        }
    }
}

/// What to do with a job after a failed attempt, as [`JobStore::fail`](super::JobStore::fail) is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after this delay (measured on the store's clock).
    Retry(Duration),
    /// Out of attempts: keep it in the queue's dead list.
    Dead,
}

/// Settings for a [`JobQueue`](super::JobQueue).
///
/// [`SchedulerConfig::job_queue`](crate::scheduler::SchedulerConfig::job_queue) fills it from
/// `SCHEDULER_*` variables; the `Debug` output redacts the password of [`url`](Self::url).
#[derive(Clone)]
#[non_exhaustive]
pub struct JobQueueConfig {
    /// Jobs running at once on this instance, across queues. Default 16.
    pub concurrency: usize,
    /// Attempts per job, the first included, before it is dead. Default 5.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt. Default 1 s.
    pub backoff_base: Duration,
    /// Longest delay between attempts. Default 5 min.
    pub backoff_max: Duration,
    /// Cancels an attempt that runs longer (counted as a failure). Default none.
    pub timeout: Option<Duration>,
    /// How long a worker holds a job before another worker may take it (a worker that died
    /// mid-job). Default: the timeout plus 30 s, or 5 min without one. An attempt that runs
    /// longer than its lease may run twice.
    pub lease: Option<Duration>,
    /// Where jobs are stored: `memory://` (default), `redis://host:port/db` or `rediss://`
    /// (`SCHEDULER_JOBS_URL`). The scheme picks the backend.
    pub url: String,
    /// Overrides the backend the URL's scheme picks (`SCHEDULER_JOBS_BACKEND`).
    pub backend: Option<JobBackend>,
    /// Redis key prefix (`SCHEDULER_JOBS_PREFIX`). Default `corekit:jobs`.
    pub prefix: String,
    /// How long [`JobQueue::close`](super::JobQueue::close) waits for jobs to finish. Default
    /// 30 s (`SCHEDULER_SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
    /// Dead jobs kept per queue; past it the oldest are dropped (`SCHEDULER_DEAD_MAX`).
    /// Default 10,000.
    pub dead_max: usize,
}

impl std::fmt::Debug for JobQueueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueueConfig")
            .field("concurrency", &self.concurrency)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("timeout", &self.timeout)
            .field("lease", &self.lease)
            .field("url", &redact_url(&self.url))
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("dead_max", &self.dead_max)
            .finish()
    }
}

/// The default `SCHEDULER_JOBS_URL`.
pub(crate) const DEFAULT_URL: &str = "memory://";
/// The default `SCHEDULER_JOBS_PREFIX`.
pub(crate) const DEFAULT_PREFIX: &str = "corekit:jobs";
/// The default `SCHEDULER_DEAD_MAX`.
pub(crate) const DEFAULT_DEAD_MAX: usize = 10_000;

impl Default for JobQueueConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            timeout: None,
            lease: None,
            url: DEFAULT_URL.to_owned(),
            backend: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            shutdown_timeout: Duration::from_secs(30),
            dead_max: DEFAULT_DEAD_MAX,
        }
    }
}

impl JobQueueConfig {
    /// Sets [`concurrency`](Self::concurrency).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets [`backoff_base`](Self::backoff_base) and [`backoff_max`](Self::backoff_max).
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets [`lease`](Self::lease).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Sets [`url`](Self::url).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets [`backend`](Self::backend).
    pub fn backend(mut self, backend: JobBackend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Sets [`prefix`](Self::prefix).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`shutdown_timeout`](Self::shutdown_timeout).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The lease workers take on a job: [`lease`](Self::lease) or its default.
    pub(crate) fn effective_lease(&self) -> Duration {
        self.lease.unwrap_or_else(|| {
            self.timeout
                .map_or(Duration::from_secs(300), |t| t + Duration::from_secs(30))
        })
    }

    /// Retry or bury after failed attempt number `attempt` (the first is 1).
    pub(crate) fn after_failure(&self, attempt: u32) -> AfterFailure {
        if attempt < self.max_attempts {
            AfterFailure::Retry(self.backoff_for(attempt))
        } else {
            AfterFailure::Dead
        }
    }

    /// The delay before attempt `attempt + 1`, with full jitter: a random point in
    /// `[0, min(max, base * 2^(attempt-1))]`, so retries of many jobs do not line up.
    pub fn backoff_for(&self, attempt: u32) -> Duration {
        // Full jitter: many jobs failing together do not retry together.
        crate::retry::Backoff::new(self.backoff_base, self.backoff_max)
            .jitter(1.0)
            .delay(attempt)
    }

    /// The backend the URL and the override pick, without checking cargo features.
    pub(crate) fn resolve_backend(&self) -> std::result::Result<JobBackend, ConfigIssue> {
        if self.backend == Some(JobBackend::Memory) {
            // The override wins: a service can switch Redis off without editing its URL.
            return Ok(JobBackend::Memory);
        }
        let scheme = self
            .url
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        let from_url = match scheme.as_deref() {
            Some("memory") => JobBackend::Memory,
            Some("redis" | "rediss") => JobBackend::Redis,
            _ => {
                return Err(ConfigIssue::new(
                    "jobs_url",
                    redact_url(&self.url),
                    "a URL starting with memory://, redis:// or rediss://",
                ));
            }
        };
        if self.backend == Some(JobBackend::Redis) && from_url != JobBackend::Redis {
            return Err(ConfigIssue::new(
                "jobs_url",
                redact_url(&self.url),
                "a redis:// or rediss:// URL when SCHEDULER_JOBS_BACKEND is redis",
            ));
        }
        Ok(from_url)
    }

    /// Checks every setting; field names are `SchedulerConfig`'s, so the issue names the
    /// `SCHEDULER_*` variable.
    pub(crate) fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        if self.concurrency == 0 {
            return Err(ConfigIssue::new("worker_concurrency", "0", "at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(ConfigIssue::new("max_attempts", "0", "at least 1"));
        }
        if self.dead_max == 0 {
            return Err(ConfigIssue::new("dead_max", "0", "at least 1"));
        }
        if self.backoff_base > self.backoff_max {
            return Err(ConfigIssue::new(
                "retry_backoff",
                humantime::format_duration(self.backoff_base).to_string(),
                format!(
                    "at most SCHEDULER_RETRY_BACKOFF_MAX ({})",
                    humantime::format_duration(self.backoff_max)
                ),
            ));
        }
        if self.lease.is_some_and(|l| l.is_zero()) {
            return Err(ConfigIssue::new("job_lease", "0s", "a duration above zero"));
        }
        let backend = self.resolve_backend()?;
        if backend == JobBackend::Redis && !cfg!(feature = "scheduler-redis") {
            return Err(ConfigIssue::new(
                "jobs_url",
                redact_url(&self.url),
                "memory:// (redis:// needs the cargo feature scheduler-redis)",
            ));
        }
        if backend == JobBackend::Redis
            && let Some(issue) = prefix_issue(&self.prefix)
        {
            return Err(ConfigIssue::new("jobs_prefix", self.prefix.clone(), issue));
        }
        Ok(())
    }
}

/// What is wrong with a Redis key prefix, if anything: empty, or holding a brace (the store
/// wraps the queue name in braces as the cluster hash tag; a `{}` in the prefix would hash
/// each key on its own and split a queue's keys over the cluster).
pub(crate) fn prefix_issue(prefix: &str) -> Option<&'static str> {
    if prefix.trim().is_empty() {
        Some("a non-empty key prefix")
    } else if prefix.contains(['{', '}']) {
        Some("a key prefix without { or } (the queue name is the keys' hash tag)")
    } else {
        None
    }
}
