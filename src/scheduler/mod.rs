//! Cron and interval jobs that fire on time, survive panics and shut down cleanly.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use corekit::scheduler::{Job, Schedule, Scheduler, every};
//! use std::time::Duration;
//!
//! let scheduler = Scheduler::new();
//! let id = scheduler.add(Job::new("cleanup", every(1).hour(), || async {
//!     // cache.delete_expired().await ...
//! }))?;
//! scheduler.add(Job::new(
//!     "nightly-report",
//!     Schedule::cron("30 2 * * *")?.in_timezone("Europe/Berlin")?,
//!     || async { Ok::<(), std::io::Error>(()) },
//! ))?;
//! assert!(scheduler.next_run(id).is_some());
//! scheduler.shutdown(Duration::from_secs(5)).await?;
//! # Ok::<(), corekit::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Timing
//!
//! Each job has its own task that sleeps on a tokio timer until the exact instant of its next
//! run, so jobs fire within a few milliseconds (p99 2.45 ms over 1000 ticks in BENCHMARKS.md)
//! instead of on a polling tick (`tokio-cron-scheduler` checks every 500 ms). Cron expressions are parsed and
//! evaluated with `croner`, the parser `tokio-cron-scheduler` uses, here with 5-field
//! expressions accepted (tokio-cron-scheduler 0.15 requires 6) and errors that quote the
//! expression. Time zones come from `chrono-tz`; see [`Schedule::in_timezone`] for
//! daylight-saving behaviour.
//!
//! # Configuration
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SCHEDULER_TIMEZONE` | `UTC` | zone for schedules that name none |
//! | `SCHEDULER_SHUTDOWN_TIMEOUT` | `30s` | how long [`Scheduler::shutdown_default`] waits for running jobs |
//! | `SCHEDULER_WORKER_CONCURRENCY` | `16` | background jobs running at once ([`JobQueue::from_env`]) |
//! | `SCHEDULER_MAX_ATTEMPTS` | `5` | attempts per background job before it is dead |
//! | `SCHEDULER_RETRY_BACKOFF` | `1s` | delay before the first retry; doubles per attempt, with full jitter |
//! | `SCHEDULER_RETRY_BACKOFF_MAX` | `5m` | longest delay between attempts |
//! | `SCHEDULER_JOB_TIMEOUT` | *(none)* | cancels a background job attempt that runs longer |
//!
//! Background jobs: [`JobQueue`] (in-process) and `RedisJobQueue` (durable, shared by
//! instances; feature `scheduler-redis`). Fleet-wide single runs: [`Job::single_instance`]
//! with a [`TickLock`] such as `RedisTickLock` (feature `scheduler-redis`).

mod jobs;
#[cfg(feature = "scheduler-redis")]
mod redis;
#[cfg(feature = "scheduler-redis")]
mod redis_jobs;
mod schedule;

#[cfg(feature = "scheduler-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "scheduler-redis")))]
pub use redis::RedisTickLock;
#[cfg(feature = "scheduler-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "scheduler-redis")))]
pub use redis_jobs::RedisJobQueue;

pub use jobs::{DeadJob, JobQueue, JobQueueConfig, JobStats};
pub use schedule::{Every, Schedule, every};

use crate::config::{self as cfg, ConfigIssue, EnvConfig};
use crate::{BoxError, Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::FutureExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

/// What a job's function returns: `()` or a `Result` whose error is logged and counted.
pub trait JobOutput: Send + 'static {
    /// The failure, if any.
    fn into_result(self) -> std::result::Result<(), BoxError>;
}

impl JobOutput for () {
    fn into_result(self) -> std::result::Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError> + Send + 'static> JobOutput for std::result::Result<(), E> {
    fn into_result(self) -> std::result::Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = std::result::Result<(), BoxError>> + Send>>;
type JobFn = Arc<dyn Fn() -> BoxFuture + Send + Sync>;

/// What happens when a run is due while the previous run of the same job is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Skip the tick (counted in [`JobInfo::skipped`]). The default.
    #[default]
    Skip,
    /// Start another run alongside.
    Allow,
    /// Remember one tick and run it as soon as the current run ends.
    QueueOne,
}

/// What happens to ticks that were missed because the scheduler's task ran late (a blocked
/// runtime, a suspended process) or, with a [`RunHistory`] ([`Job::history`]), because the
/// process was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Misfire {
    /// Forget them and wait for the next tick. The default.
    #[default]
    Skip,
    /// Run once now for all of them, then carry on.
    RunOnce,
}

/// The boxed future returned by [`TickLock`] and [`RunHistory`] methods (object-safe async).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Decides which of several scheduler instances runs a tick of a
/// [`single_instance`](Job::single_instance) job: the first to take the tick's key wins.
pub trait TickLock: Send + Sync + 'static {
    /// Takes `key` for `ttl` if nobody holds it; true when this caller got it.
    fn acquire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, bool>;
}

/// Remembers when each job last ran, across restarts, so [`Misfire::RunOnce`] can catch up
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
const TICK_LOCK_TTL: Duration = Duration::from_secs(600);

/// A job to add: a name, a [`Schedule`], a function, and policies.
pub struct Job {
    name: String,
    schedule: Schedule,
    run: JobFn,
    overlap: Overlap,
    misfire: Misfire,
    timeout: Option<Duration>,
    tick_lock: Option<Arc<dyn TickLock>>,
    history: Option<Arc<dyn RunHistory>>,
}

impl Job {
    /// A job running `f` on `schedule`. `f` returns a future of `()` or `Result<(), E>`.
    pub fn new<F, Fut>(name: impl Into<String>, schedule: Schedule, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: JobOutput,
    {
        let run: JobFn = Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.into_result() })
        });
        Self {
            name: name.into(),
            schedule,
            run,
            overlap: Overlap::default(),
            misfire: Misfire::default(),
            timeout: None,
            tick_lock: None,
            history: None,
        }
    }

    /// Records each tick in `history` and, with [`Misfire::RunOnce`], runs once at start-up
    /// when ticks were missed while the process was stopped (the job's name is the key).
    pub fn history(mut self, history: Arc<dyn RunHistory>) -> Self {
        self.history = Some(history);
        self
    }

    /// Runs each tick on one instance only, across every scheduler sharing `lock` (e.g. a
    /// [`RedisTickLock`] on one Redis): the instance that takes the key
    /// `corekit:scheduler:<name>:<tick>` first runs it, the others count it as skipped. The
    /// job's name must be the same on every instance. If the lock cannot be reached the tick is
    /// not run (counted as a failure): a missed run is safer than a double one. With a lock,
    /// [`Overlap::QueueOne`] behaves as [`Overlap::Skip`].
    pub fn single_instance(mut self, lock: Arc<dyn TickLock>) -> Self {
        self.tick_lock = Some(lock);
        if self.overlap == Overlap::QueueOne {
            self.overlap = Overlap::Skip;
        }
        self
    }

    /// Sets the [`Overlap`] policy.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = if self.tick_lock.is_some() && overlap == Overlap::QueueOne {
            Overlap::Skip
        } else {
            overlap
        };
        self
    }

    /// Sets the [`Misfire`] policy.
    pub fn misfire(mut self, misfire: Misfire) -> Self {
        self.misfire = misfire;
        self
    }

    /// Cancels a run that takes longer than `timeout` (counted as a failure).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A job's handle, from [`Scheduler::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(u64);

/// A snapshot of one job, from [`Scheduler::job`] and [`Scheduler::list`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobInfo {
    /// The job's handle.
    pub id: JobId,
    /// The job's name.
    pub name: String,
    /// Its schedule, as text.
    pub schedule: String,
    /// When it runs next (`None` when paused or finished).
    pub next_run: Option<DateTime<Utc>>,
    /// Whether it is paused.
    pub paused: bool,
    /// Runs that returned normally.
    pub succeeded: u64,
    /// Runs that returned an error, panicked or timed out.
    pub failed: u64,
    /// Of the failures, how many panicked.
    pub panicked: u64,
    /// Ticks skipped because a run was still going ([`Overlap::Skip`]) or missed ([`Misfire::Skip`]).
    pub skipped: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    skipped: AtomicU64,
}

struct JobState {
    name: String,
    schedule: Schedule,
    paused: AtomicBool,
    removed: AtomicBool,
    resume: Notify,
    next_run: Mutex<Option<DateTime<Utc>>>,
    last_error: Mutex<Option<String>>,
    counters: Counters,
    running: AtomicUsize,
    queued: AtomicBool,
}

/// Counts work in progress and wakes whoever waits for it to reach zero (shutdowns).
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    pub(crate) fn start(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn finish(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until the count is zero; false if `deadline` passed first.
    pub(crate) async fn wait_idle(&self, deadline: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.get() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }
}

/// Where the scheduler reads the time.
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    /// Starts at a given instant and advances with tokio's clock (pausable in tests).
    Virtual {
        start: DateTime<Utc>,
        at: tokio::time::Instant,
    },
}

impl Clock {
    fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::Wall => Utc::now(),
            Clock::Virtual { start, at } => {
                *start + chrono::Duration::from_std(at.elapsed()).unwrap_or_default()
            }
        }
    }
}

struct Inner {
    clock: Clock,
    jobs: Mutex<HashMap<JobId, Arc<JobState>>>,
    next_id: AtomicU64,
    tz: Tz,
    shutdown_timeout: Duration,
    stop: watch::Sender<bool>,
    running: InFlight,
}

/// Runs [`Job`]s on their schedules. Cloning shares the scheduler.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

/// `SCHEDULER_*` settings.
#[derive(Debug, Clone, Deserialize)]
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
}

impl SchedulerConfig {
    /// The background-job part of this config.
    pub fn job_queue(&self) -> JobQueueConfig {
        let mut config = JobQueueConfig::default()
            .concurrency(self.worker_concurrency)
            .max_attempts(self.max_attempts)
            .backoff(self.retry_backoff, self.retry_backoff_max);
        config.timeout = self.job_timeout.filter(|t| !t.is_zero());
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
        }
    }
}

/// Builds a [`Scheduler`]; from [`Scheduler::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SchedulerBuilder {
    config: SchedulerConfig,
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
    /// [`ErrorKind::Config`] naming the setting, as from the environment.
    pub fn build(self) -> Result<Scheduler> {
        Scheduler::from_config(&self.config)
    }
}

impl EnvConfig for SchedulerConfig {
    const PREFIX: &'static str = "SCHEDULER_";

    fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        if self.worker_concurrency == 0 {
            return Err(ConfigIssue::new("worker_concurrency", "0", "at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(ConfigIssue::new("max_attempts", "0", "at least 1"));
        }
        if self.retry_backoff > self.retry_backoff_max {
            return Err(ConfigIssue::new(
                "retry_backoff",
                humantime::format_duration(self.retry_backoff).to_string(),
                format!(
                    "at most SCHEDULER_RETRY_BACKOFF_MAX ({})",
                    humantime::format_duration(self.retry_backoff_max)
                ),
            ));
        }
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

impl Scheduler {
    /// A scheduler in UTC with a 30 s shutdown timeout.
    pub fn new() -> Self {
        Self::build(Tz::UTC, Duration::from_secs(30))
    }

    /// A builder for code-driven configuration, validated like [`from_env`](Self::from_env).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use corekit::scheduler::Scheduler;
    /// use std::time::Duration;
    ///
    /// let scheduler = Scheduler::builder()
    ///     .timezone("Europe/Berlin")
    ///     .shutdown_timeout(Duration::from_secs(10))
    ///     .build()?;
    /// # Ok::<(), corekit::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder {
            config: SchedulerConfig::default(),
        }
    }

    /// A scheduler configured from `SCHEDULER_*` variables.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the variable.
    pub fn from_env() -> Result<Self> {
        Self::from_config(&SchedulerConfig::from_env()?)
    }

    /// A scheduler from an explicit config (validated like the environment).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the setting.
    pub fn from_config(config: &SchedulerConfig) -> Result<Self> {
        config
            .validate()
            .map_err(|i| i.into_error(SchedulerConfig::PREFIX, &[]))?;
        let tz = schedule::parse_tz(&config.timezone)?;
        Ok(Self::build(tz, config.shutdown_timeout))
    }

    /// A scheduler whose clock starts at `start` and advances with tokio's clock, for tests
    /// that pause time (`#[tokio::test(start_paused = true)]`) and for simulations: a month of
    /// cron ticks runs in milliseconds. Must be called inside a tokio runtime.
    pub fn with_virtual_clock(start: DateTime<Utc>) -> Self {
        Self::build_with(
            Tz::UTC,
            Duration::from_secs(30),
            Clock::Virtual {
                start,
                at: tokio::time::Instant::now(),
            },
        )
    }

    fn build(tz: Tz, shutdown_timeout: Duration) -> Self {
        Self::build_with(tz, shutdown_timeout, Clock::Wall)
    }

    fn build_with(tz: Tz, shutdown_timeout: Duration, clock: Clock) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                clock,
                jobs: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                tz,
                shutdown_timeout,
                stop,
                running: InFlight::default(),
            }),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Arc<JobState>>> {
        self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a job; it starts firing at once. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`] after [`shutdown`](Self::shutdown);
    /// [`ErrorKind::InvalidInput`] for an empty name.
    pub fn add(&self, job: Job) -> Result<JobId> {
        if *self.inner.stop.borrow() {
            return Err(
                Error::new(ErrorKind::Unavailable, "the scheduler has shut down")
                    .with_operation("add"),
            );
        }
        if job.name.trim().is_empty() {
            return Err(Error::invalid_input("job names cannot be empty").with_operation("add"));
        }
        let id = JobId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let state = Arc::new(JobState {
            name: job.name.clone(),
            schedule: job.schedule.clone().with_default_tz(self.inner.tz),
            paused: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            resume: Notify::new(),
            next_run: Mutex::new(None),
            last_error: Mutex::new(None),
            counters: Counters::default(),
            running: AtomicUsize::new(0),
            queued: AtomicBool::new(false),
        });
        let added = self.inner.clock.now();
        *lock(&state.next_run) = state.schedule.next_after(added, added);
        self.jobs().insert(id, state.clone());
        let driver = Driver {
            scheduler: self.inner.clone(),
            state,
            job,
            added,
        };
        tokio::spawn(driver.drive());
        Ok(id)
    }

    /// Removes a job: no further runs start (a running one finishes). False if unknown.
    pub fn remove(&self, id: JobId) -> bool {
        match self.jobs().remove(&id) {
            Some(state) => {
                state.removed.store(true, Ordering::SeqCst);
                state.resume.notify_one();
                true
            }
            None => false,
        }
    }

    /// Stops a job firing until [`resume`](Self::resume). False if unknown.
    pub fn pause(&self, id: JobId) -> bool {
        self.jobs()
            .get(&id)
            .map(|s| s.paused.store(true, Ordering::SeqCst))
            .is_some()
    }

    /// Lets a paused job fire again from its next tick. False if unknown.
    pub fn resume(&self, id: JobId) -> bool {
        self.jobs()
            .get(&id)
            .map(|s| {
                s.paused.store(false, Ordering::SeqCst);
                s.resume.notify_one();
            })
            .is_some()
    }

    /// When the job runs next; `None` if unknown, paused or finished.
    pub fn next_run(&self, id: JobId) -> Option<DateTime<Utc>> {
        let jobs = self.jobs();
        let state = jobs.get(&id)?;
        if state.paused.load(Ordering::SeqCst) {
            return None;
        }
        *lock(&state.next_run)
    }

    /// A snapshot of one job.
    pub fn job(&self, id: JobId) -> Option<JobInfo> {
        self.jobs().get(&id).map(|s| info(id, s))
    }

    /// Every job, by id.
    pub fn list(&self) -> Vec<JobInfo> {
        let mut all: Vec<JobInfo> = self.jobs().iter().map(|(id, s)| info(*id, s)).collect();
        all.sort_by_key(|j| j.id);
        all
    }

    /// Runs currently in progress, across jobs.
    pub fn running(&self) -> usize {
        self.inner.running.get()
    }

    /// Stops firing, then waits up to `deadline` for running jobs to finish.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] saying how many runs were still going at the deadline (they keep
    /// running; the scheduler no longer waits for them).
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        self.inner.stop.send_replace(true);
        for state in self.jobs().values() {
            state.resume.notify_one();
        }
        if self.inner.running.wait_idle(deadline).await {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "{} job run(s) still going after {deadline:?}",
                self.inner.running.get()
            ),
        )
        .with_operation("shutdown"))
    }

    /// [`shutdown`](Self::shutdown) with the configured `SCHEDULER_SHUTDOWN_TIMEOUT`.
    ///
    /// # Errors
    /// As [`shutdown`](Self::shutdown).
    pub async fn shutdown_default(&self) -> Result<()> {
        self.shutdown(self.inner.shutdown_timeout).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn info(id: JobId, s: &JobState) -> JobInfo {
    let paused = s.paused.load(Ordering::SeqCst);
    JobInfo {
        id,
        name: s.name.clone(),
        schedule: s.schedule.to_string(),
        next_run: if paused { None } else { *lock(&s.next_run) },
        paused,
        succeeded: s.counters.succeeded.load(Ordering::Relaxed),
        failed: s.counters.failed.load(Ordering::Relaxed),
        panicked: s.counters.panicked.load(Ordering::Relaxed),
        skipped: s.counters.skipped.load(Ordering::Relaxed),
        last_error: lock(&s.last_error).clone(),
    }
}

/// One job's timing loop.
struct Driver {
    scheduler: Arc<Inner>,
    state: Arc<JobState>,
    // The job's function and policies; its name and schedule live in `state`.
    job: Job,
    added: DateTime<Utc>,
}

/// Ticks later than this are misfires rather than timer jitter.
const MISFIRE_GRACE: Duration = Duration::from_secs(1);

impl Driver {
    /// At start-up: a tick due since the last recorded run was missed while stopped.
    async fn catch_up(&self) {
        let Some(history) = &self.job.history else {
            return;
        };
        if self.job.misfire != Misfire::RunOnce {
            return;
        }
        match history.last_run(&self.state.name).await {
            Ok(Some(last)) => {
                let now = self.scheduler.clock.now();
                if self
                    .state
                    .schedule
                    .next_after(last, last)
                    .is_some_and(|missed| missed < now)
                {
                    self.fire(now);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(job = %self.state.name, error = %e, "cannot read the run history; no catch-up");
            }
        }
    }

    async fn drive(self) {
        self.catch_up().await;
        let mut stop = self.scheduler.stop.subscribe();
        let mut planned = *lock(&self.state.next_run);
        while let Some(tick) = planned {
            // Sleep until the tick on the monotonic clock: tokio's timer, no polling.
            let wait = (tick - self.scheduler.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
                _ = self.state.resume.notified() => {
                    if self.state.removed.load(Ordering::SeqCst) { return; }
                    continue;
                }
            }
            // The wall clock can lag the timer slightly: never fire before the tick.
            let now = self.scheduler.clock.now();
            if now < tick {
                continue;
            }
            if self.state.removed.load(Ordering::SeqCst) || *stop.borrow() {
                return;
            }
            let late = (now - tick).to_std().unwrap_or(Duration::ZERO);
            let next = self.state.schedule.next_after(now.max(tick), self.added);
            *lock(&self.state.next_run) = next;
            if self.state.paused.load(Ordering::SeqCst) {
                planned = next;
                continue;
            }
            if late > MISFIRE_GRACE && self.job.misfire == Misfire::Skip {
                self.state.counters.skipped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.fire(tick);
            }
            if let Some(history) = &self.job.history
                && let Err(e) = history.record(&self.state.name, tick).await
            {
                tracing::warn!(job = %self.state.name, error = %e, "cannot record the run");
            }
            planned = next;
        }
        // A finished one-shot leaves the table once its run is done.
        *lock(&self.state.next_run) = None;
    }

    fn fire(&self, tick: DateTime<Utc>) {
        let state = &self.state;
        if state.running.load(Ordering::SeqCst) > 0 {
            match self.job.overlap {
                Overlap::Skip => {
                    state.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Overlap::QueueOne => {
                    if state.queued.swap(true, Ordering::SeqCst) {
                        state.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                Overlap::Allow => {}
            }
        }
        state.running.fetch_add(1, Ordering::SeqCst);
        self.scheduler.running.start();
        let run = self.job.run.clone();
        let state = self.state.clone();
        let scheduler = self.scheduler.clone();
        let timeout = self.job.timeout;
        let tick_lock = self.job.tick_lock.clone();
        let span = tracing::info_span!("scheduler.job", job.name = %state.name);
        tokio::spawn(
            async move {
                let mine = match &tick_lock {
                    None => true,
                    Some(tick_lock) => {
                        let key = format!(
                            "corekit:scheduler:{}:{}",
                            state.name,
                            tick.timestamp_millis()
                        );
                        match tick_lock.acquire(&key, TICK_LOCK_TTL).await {
                            Ok(true) => true,
                            Ok(false) => {
                                state.counters.skipped.fetch_add(1, Ordering::Relaxed);
                                false
                            }
                            Err(e) => {
                                state.counters.failed.fetch_add(1, Ordering::Relaxed);
                                *lock(&state.last_error) =
                                    Some(format!("tick lock unavailable, tick not run: {e}"));
                                false
                            }
                        }
                    }
                };
                if mine {
                    loop {
                        run_once(&run, &state, timeout).await;
                        // QueueOne: a tick arrived meanwhile; run it now.
                        if !state.queued.swap(false, Ordering::SeqCst) {
                            break;
                        }
                    }
                }
                state.running.fetch_sub(1, Ordering::SeqCst);
                scheduler.running.finish();
            }
            .instrument(span),
        );
    }
}

/// Why a run failed.
pub(crate) struct Failure {
    message: String,
    panicked: bool,
}

/// Runs one attempt of a job: a panic is caught (so the caller's loop keeps going) and a
/// timeout cancels it; both become failures.
pub(crate) async fn run_guarded(
    fut: BoxFuture,
    timeout: Option<Duration>,
) -> std::result::Result<(), Failure> {
    let fut = AssertUnwindSafe(fut).catch_unwind();
    let outcome = match timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => Ok(Err(format!("timed out after {t:?}").into())),
        },
        None => fut.await,
    };
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure {
            message: e.to_string(),
            panicked: false,
        }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            Err(Failure {
                message: format!("panicked: {message}"),
                panicked: true,
            })
        }
    }
}

async fn run_once(run: &JobFn, state: &JobState, timeout: Option<Duration>) {
    match run_guarded(run(), timeout).await {
        Ok(()) => {
            state.counters.succeeded.fetch_add(1, Ordering::Relaxed);
        }
        Err(failure) => {
            if failure.panicked {
                state.counters.panicked.fetch_add(1, Ordering::Relaxed);
            }
            state.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job = %state.name, error = %failure.message, "scheduled job failed");
            *lock(&state.last_error) = Some(failure.message);
        }
    }
}
