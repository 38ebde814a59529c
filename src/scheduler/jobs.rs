//! Background jobs: typed payloads on named queues, a bounded worker pool, retries with
//! backoff, and dead jobs kept with their last error.

use crate::{BoxError, Error, ErrorKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

type Handler = Arc<dyn Fn(Arc<[u8]>) -> super::BoxFuture + Send + Sync>;

/// The typed handlers of a job queue, by queue name (shared by every job-queue backend).
#[derive(Default)]
pub(crate) struct Handlers(Mutex<HashMap<String, Handler>>);

impl Handlers {
    pub(crate) fn register<T, F, Fut, E>(&self, queue: &str, handler: F)
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |payload: Arc<[u8]>| {
            let handler = handler.clone();
            Box::pin(async move {
                let job: T = serde_json::from_slice(&payload)
                    .map_err(|e| -> BoxError { format!("payload does not decode: {e}").into() })?;
                handler(job).await.map_err(Into::into)
            })
        });
        lock(&self.0).insert(queue.to_owned(), erased);
    }

    pub(crate) fn contains(&self, queue: &str) -> bool {
        lock(&self.0).contains_key(queue)
    }

    #[cfg_attr(not(feature = "scheduler-redis"), allow(dead_code))]
    pub(crate) fn names(&self) -> Vec<String> {
        lock(&self.0).keys().cloned().collect()
    }

    /// Runs one attempt of a job on `queue`: the handler's error, panic or timeout as text.
    pub(crate) async fn attempt(
        &self,
        queue: &str,
        payload: Arc<[u8]>,
        timeout: Option<Duration>,
    ) -> std::result::Result<(), String> {
        let handler = lock(&self.0).get(queue).cloned();
        match handler {
            None => Err(format!("no handler is registered for queue {queue:?}")),
            Some(handler) => super::run_guarded(handler(payload), timeout)
                .await
                .map_err(|f| f.message),
        }
    }
}

/// What to do after a failed attempt.
pub(crate) enum AfterFailure {
    /// Try again after this delay.
    Retry(Duration),
    /// Out of attempts.
    Dead,
}

/// Settings for a [`JobQueue`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobQueueConfig {
    /// Jobs running at once, across queues. Default 16.
    pub concurrency: usize,
    /// Attempts per job, the first included, before it is dead. Default 5.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt. Default 1 s.
    pub backoff_base: Duration,
    /// Longest delay between attempts. Default 5 min.
    pub backoff_max: Duration,
    /// Cancels an attempt that runs longer (counted as a failure). Default none.
    pub timeout: Option<Duration>,
    /// Durable queues: how long a worker holds a job before another instance may take it
    /// (a worker that died mid-job). Default: the timeout plus 30 s, or 5 min without one.
    pub lease: Option<Duration>,
}

impl Default for JobQueueConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            timeout: None,
            lease: None,
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

    #[cfg_attr(not(feature = "scheduler-redis"), allow(dead_code))]
    pub(crate) fn effective_lease(&self) -> Duration {
        self.lease.unwrap_or_else(|| {
            self.timeout
                .map_or(Duration::from_secs(300), |t| t + Duration::from_secs(30))
        })
    }

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
        let exp = self.backoff_base.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exp.min(self.backoff_max);
        cap.mul_f64(jitter())
    }
}

fn jitter() -> f64 {
    // xorshift on a per-thread seed: cheap, and good enough to spread retries.
    use std::cell::Cell;
    thread_local!(static SEED: Cell<u64> = Cell::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 | 1)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
    ));
    SEED.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// A job that used up its attempts, from [`JobQueue::dead`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadJob {
    /// The id [`JobQueue::enqueue`] returned.
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

/// Counters of a [`JobQueue`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStats {
    /// Jobs enqueued.
    pub enqueued: u64,
    /// Jobs that succeeded (on any attempt).
    pub succeeded: u64,
    /// Failed attempts that were retried.
    pub retried: u64,
    /// Jobs that used up their attempts.
    pub dead: u64,
    /// Attempts running now.
    pub running: u64,
}

/// The counters every job-queue backend keeps, and its shutdown wait.
#[derive(Default)]
pub(crate) struct JobCounters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead: AtomicU64,
    pub(crate) in_flight: super::InFlight,
}

impl JobCounters {
    pub(crate) fn snapshot(&self) -> JobStats {
        JobStats {
            enqueued: self.enqueued.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            running: self.in_flight.get() as u64,
        }
    }

    /// Waits for in-flight work, or says how much is left (`what` names it).
    pub(crate) async fn drain(&self, deadline: Duration, what: &str) -> Result<()> {
        if self.in_flight.wait_idle(deadline).await {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Timeout,
            format!("{} {what} after {deadline:?}", self.in_flight.get()),
        )
        .with_operation("shutdown"))
    }
}

struct Envelope {
    id: u64,
    queue: Arc<str>,
    payload: Arc<[u8]>,
    attempt: u32,
}

struct Shared {
    config: JobQueueConfig,
    handlers: Handlers,
    tx: mpsc::UnboundedSender<Envelope>,
    next_id: AtomicU64,
    // in_flight counts attempts running plus retries waiting for their delay.
    counters: JobCounters,
    dead: Mutex<Vec<DeadJob>>,
    stopping: AtomicBool,
}

/// An in-process background job queue: `enqueue` typed jobs to named queues, a worker pool
/// runs them with at most `concurrency` at once, failed attempts are retried with exponential
/// backoff and jitter, and jobs that use up their attempts are kept as [`DeadJob`]s.
///
/// Jobs live in memory: they do not survive a restart (a durable Redis backend is planned).
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
/// jobs.enqueue("welcome", &Welcome { email: "ada@example.com".into() })?;
/// jobs.shutdown(std::time::Duration::from_secs(5)).await?;
/// # Ok::<(), corekit::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct JobQueue {
    shared: Arc<Shared>,
}

impl JobQueue {
    /// Starts the worker pool. Must be called inside a tokio runtime.
    pub fn new(config: JobQueueConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = JobQueueConfig {
            concurrency: config.concurrency.max(1),
            max_attempts: config.max_attempts.max(1),
            ..config
        };
        let shared = Arc::new(Shared {
            config,
            handlers: Handlers::default(),
            tx,
            next_id: AtomicU64::new(1),
            counters: JobCounters::default(),
            dead: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        tokio::spawn(dispatch(Arc::downgrade(&shared), rx));
        Self { shared }
    }

    /// A queue configured from `SCHEDULER_*` variables (see the [module docs](super)).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the variable.
    pub fn from_env() -> Result<Self> {
        use crate::config::EnvConfig;
        Ok(Self::new(super::SchedulerConfig::from_env()?.job_queue()))
    }

    /// Sets the handler for `queue`. Payloads are JSON-decoded into `T`; a payload that does
    /// not decode fails its attempt like a handler error.
    pub fn register<T, F, Fut, E>(&self, queue: &str, handler: F)
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        self.shared.handlers.register(queue, handler);
    }

    /// Queues a job; returns its id.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a queue with no handler or a payload that does not
    /// serialize; [`ErrorKind::Unavailable`] after shutdown.
    pub fn enqueue<T: Serialize + ?Sized>(&self, queue: &str, job: &T) -> Result<u64> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return Err(
                Error::new(ErrorKind::Unavailable, "the job queue has shut down")
                    .with_operation("enqueue"),
            );
        }
        if !self.shared.handlers.contains(queue) {
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
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.shared
            .counters
            .enqueued
            .fetch_add(1, Ordering::Relaxed);
        self.shared.counters.in_flight.start();
        let envelope = Envelope {
            id,
            queue: Arc::from(queue),
            payload: Arc::from(payload),
            attempt: 1,
        };
        if self.shared.tx.send(envelope).is_err() {
            finish(&self.shared);
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the job queue's dispatcher has stopped",
            )
            .with_operation("enqueue"));
        }
        Ok(id)
    }

    /// Jobs that used up their attempts, oldest first.
    pub fn dead(&self) -> Vec<DeadJob> {
        lock(&self.shared.dead).clone()
    }

    /// The queue's counters.
    pub fn stats(&self) -> JobStats {
        self.shared.counters.snapshot()
    }

    /// Stops accepting jobs and waits up to `deadline` for queued, running and retrying jobs.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] with the number still in flight.
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared
            .counters
            .drain(deadline, "job(s) still queued, running or waiting to retry")
            .await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn finish(shared: &Shared) {
    shared.counters.in_flight.finish();
}

/// Takes jobs off the channel and runs each under a concurrency permit.
async fn dispatch(shared: std::sync::Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Envelope>) {
    let permits = match shared.upgrade() {
        Some(s) => Arc::new(Semaphore::new(s.config.concurrency)),
        None => return,
    };
    while let Some(envelope) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            run_attempt(&shared, envelope).await;
            drop(permit);
        });
    }
}

async fn run_attempt(shared: &Arc<Shared>, envelope: Envelope) {
    let outcome = shared
        .handlers
        .attempt(
            &envelope.queue,
            envelope.payload.clone(),
            shared.config.timeout,
        )
        .await;
    match outcome {
        Ok(()) => {
            shared.counters.succeeded.fetch_add(1, Ordering::Relaxed);
            finish(shared);
        }
        Err(error) => match shared.config.after_failure(envelope.attempt) {
            AfterFailure::Retry(delay) => {
                shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(queue = %envelope.queue, job = envelope.id, attempt = envelope.attempt, ?delay, %error, "job failed; retrying");
                let tx = shared.tx.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let retry = Envelope {
                        attempt: envelope.attempt + 1,
                        ..envelope
                    };
                    // The dispatcher lives as long as the queue; if it is gone, count the job done.
                    if tx.send(retry).is_err() {
                        finish(&shared);
                    }
                });
            }
            AfterFailure::Dead => {
                tracing::warn!(queue = %envelope.queue, job = envelope.id, attempts = envelope.attempt, %error, "job is dead");
                shared.counters.dead.fetch_add(1, Ordering::Relaxed);
                lock(&shared.dead).push(DeadJob {
                    id: envelope.id,
                    queue: envelope.queue.to_string(),
                    payload: String::from_utf8_lossy(&envelope.payload).into_owned(),
                    attempts: envelope.attempt,
                    last_error: error,
                });
                finish(shared);
            }
        },
    }
}
