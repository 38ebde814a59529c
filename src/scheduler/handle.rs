//! The [`Scheduler`] handle: adding, pausing and removing jobs, and shutting down.

use super::config::SchedulerBuilder;
use super::driver::Driver;
use super::guard::{InFlight, lock};
use super::{Job, JobId, JobInfo, Schedule, SchedulerConfig, schedule};
use crate::config::EnvConfig;
use crate::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

#[derive(Default)]
pub(super) struct Counters {
    pub(super) succeeded: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) panicked: AtomicU64,
    pub(super) skipped: AtomicU64,
}

pub(super) struct JobState {
    pub(super) name: String,
    pub(super) schedule: Schedule,
    pub(super) paused: AtomicBool,
    pub(super) removed: AtomicBool,
    pub(super) resume: Notify,
    pub(super) next_run: Mutex<Option<DateTime<Utc>>>,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) counters: Counters,
    pub(super) running: AtomicUsize,
    pub(super) queued: AtomicBool,
}

/// Where the scheduler reads the time.
#[derive(Clone, Copy)]
pub(super) enum Clock {
    Wall,
    /// Starts at a given instant and advances with tokio's clock (pausable in tests).
    Virtual {
        start: DateTime<Utc>,
        at: tokio::time::Instant,
    },
}

impl Clock {
    pub(super) fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::Wall => Utc::now(),
            Clock::Virtual { start, at } => {
                *start + chrono::Duration::from_std(at.elapsed()).unwrap_or_default()
            }
        }
    }
}

pub(super) struct Inner {
    pub(super) clock: Clock,
    jobs: Mutex<HashMap<JobId, Arc<JobState>>>,
    next_id: AtomicU64,
    tz: Tz,
    shutdown_timeout: Duration,
    pub(super) stop: watch::Sender<bool>,
    pub(super) running: InFlight,
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
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the variable.
    pub fn from_env() -> Result<Self> {
        Self::from_config(&SchedulerConfig::from_env()?)
    }

    /// A scheduler from an explicit config (validated like the environment).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the setting.
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
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) after [`shutdown`](Self::shutdown);
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty name.
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
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) saying how many runs were still going at the deadline (they keep
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

    /// The name every module's `close` has: [`shutdown_default`](Self::shutdown_default).
    ///
    /// # Errors
    /// As [`shutdown`](Self::shutdown).
    pub async fn close(&self) -> Result<()> {
        self.shutdown_default().await
    }

    /// A readiness probe: fails once the scheduler was shut down. The scheduler holds no
    /// connection of its own (a job's [`TickLock`](super::TickLock) is checked when it runs).
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) after
    /// [`shutdown`](Self::shutdown).
    pub async fn ping(&self) -> Result<()> {
        if *self.inner.stop.borrow() {
            return Err(
                Error::new(ErrorKind::Unavailable, "the scheduler was shut down")
                    .with_operation("ping"),
            );
        }
        Ok(())
    }
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
