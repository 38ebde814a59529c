//! What a scheduled job is: its function, schedule and policies, and the snapshot of one.

use super::{RunHistory, Schedule, TickLock};
use crate::BoxError;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

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

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = std::result::Result<(), BoxError>> + Send>>;
pub(super) type JobFn = Arc<dyn Fn() -> BoxFuture + Send + Sync>;

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

/// A job to add: a name, a [`Schedule`], a function, and policies.
pub struct Job {
    pub(super) name: String,
    pub(super) schedule: Schedule,
    pub(super) run: JobFn,
    pub(super) overlap: Overlap,
    pub(super) misfire: Misfire,
    pub(super) timeout: Option<Duration>,
    pub(super) tick_lock: Option<Arc<dyn TickLock>>,
    pub(super) history: Option<Arc<dyn RunHistory>>,
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
    /// [`RedisTickLock`](super::RedisTickLock) on one Redis): the instance that takes the key
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

/// A job's handle, from [`Scheduler::add`](super::Scheduler::add).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub(super) u64);

/// A snapshot of one job, from [`Scheduler::job`](super::Scheduler::job) and [`Scheduler::list`](super::Scheduler::list).
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
