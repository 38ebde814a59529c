//! `SCHEDULER_*` settings and the [`Scheduler`](super::Scheduler) builder.

use super::JobBackend;
use super::JobQueueConfig;
use super::{Scheduler, schedule};
use crate::Result;
use crate::config::{self as cfg, ConfigIssue, EnvConfig};
use serde::Deserialize;
use std::time::Duration;

/// `SCHEDULER_*` settings; every field has the default listed in the [module docs](super).
/// `Debug` redacts the password of `jobs_url`.
#[derive(Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SchedulerConfig {
    /// `SCHEDULER_TIMEZONE`.
    pub timezone: String,
    /// `SCHEDULER_SHUTDOWN_TIMEOUT`.
    #[serde(with = "cfg::duration")]
    pub shutdown_timeout: Duration,
    /// `SCHEDULER_WORKER_CONCURRENCY`: background jobs running at once.
    pub worker_concurrency: usize,
    /// `SCHEDULER_MAX_ATTEMPTS`: attempts per background job before it is dead.
    pub max_attempts: u32,
    /// `SCHEDULER_RETRY_BACKOFF`: delay before the first retry (doubles per attempt).
    #[serde(with = "cfg::duration")]
    pub retry_backoff: Duration,
    /// `SCHEDULER_RETRY_BACKOFF_MAX`: longest delay between attempts.
    #[serde(with = "cfg::duration")]
    pub retry_backoff_max: Duration,
    /// `SCHEDULER_JOB_TIMEOUT`: cancels a background job attempt that runs longer (unset: none).
    #[serde(with = "cfg::option_duration")]
    pub job_timeout: Option<Duration>,
    /// `SCHEDULER_JOB_LEASE`: how long a worker holds a background job before another may
    /// take it (unset: the job timeout plus 30 s, or 5 min).
    #[serde(with = "cfg::option_duration")]
    pub job_lease: Option<Duration>,
    /// `SCHEDULER_JOBS_URL`: where background jobs are stored; the scheme (`memory://`,
    /// `redis://`, `rediss://`) picks the store.
    pub jobs_url: String,
    /// `SCHEDULER_JOBS_BACKEND`: `memory` or `redis`, overriding the URL's scheme.
    pub jobs_backend: Option<JobBackend>,
    /// `SCHEDULER_JOBS_PREFIX`: Redis key prefix of the job store.
    pub jobs_prefix: String,
    /// `SCHEDULER_DEAD_MAX`: dead background jobs kept per queue (the oldest go first).
    pub dead_max: usize,
}

impl std::fmt::Debug for SchedulerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerConfig")
            .field("timezone", &self.timezone)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("worker_concurrency", &self.worker_concurrency)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .field("retry_backoff_max", &self.retry_backoff_max)
            .field("job_timeout", &self.job_timeout)
            .field("job_lease", &self.job_lease)
            .field("jobs_url", &cfg::redact_url(&self.jobs_url))
            .field("jobs_backend", &self.jobs_backend)
            .field("jobs_prefix", &self.jobs_prefix)
            .field("dead_max", &self.dead_max)
            .finish()
    }
}

impl SchedulerConfig {
    /// The background-job part of this config.
    pub fn job_queue(&self) -> JobQueueConfig {
        let mut config = JobQueueConfig::default()
            .concurrency(self.worker_concurrency)
            .max_attempts(self.max_attempts)
            .backoff(self.retry_backoff, self.retry_backoff_max)
            .url(self.jobs_url.clone())
            .prefix(self.jobs_prefix.clone())
            .shutdown_timeout(self.shutdown_timeout);
        config.timeout = self.job_timeout.filter(|t| !t.is_zero());
        config.lease = self.job_lease.filter(|t| !t.is_zero());
        config.backend = self.jobs_backend;
        config.dead_max = self.dead_max;
        config
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            shutdown_timeout: Duration::from_secs(30),
            worker_concurrency: 16,
            max_attempts: 5,
            retry_backoff: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(300),
            job_timeout: None,
            job_lease: None,
            jobs_url: super::jobs::DEFAULT_URL.to_owned(),
            jobs_backend: None,
            jobs_prefix: super::jobs::DEFAULT_PREFIX.to_owned(),
            dead_max: super::jobs::DEFAULT_DEAD_MAX,
        }
    }
}

/// Builds a [`Scheduler`]; from [`Scheduler::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SchedulerBuilder {
    pub(super) config: SchedulerConfig,
}

impl SchedulerBuilder {
    /// Zone for schedules that name none (an IANA name; checked by [`build`](Self::build)).
    pub fn timezone(mut self, name: impl Into<String>) -> Self {
        self.config.timezone = name.into();
        self
    }

    /// How long [`Scheduler::shutdown_default`] waits for running jobs.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// The scheduler. Must be called inside a tokio runtime before jobs are added.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the setting, as from the environment.
    pub fn build(self) -> Result<Scheduler> {
        Scheduler::from_config(&self.config)
    }
}

impl EnvConfig for SchedulerConfig {
    const PREFIX: &'static str = "SCHEDULER_";

    fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        // The background-job settings are checked where a JobQueueConfig is checked.
        self.job_queue().validate()?;
        if schedule::parse_tz(&self.timezone).is_err() {
            return Err(ConfigIssue::new(
                "timezone",
                self.timezone.clone(),
                "an IANA time zone like UTC or Europe/Berlin",
            ));
        }
        Ok(())
    }
}
