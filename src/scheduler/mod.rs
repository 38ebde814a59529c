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
//! | `SCHEDULER_JOB_LEASE` | timeout + 30s, or `5m` | how long a worker holds a job before another may take it |
//! | `SCHEDULER_JOBS_URL` | `memory://` | where background jobs are stored: `memory://`, `redis://[user:pass@]host:port/db` or `rediss://` (feature `scheduler-redis`) |
//! | `SCHEDULER_JOBS_BACKEND` | *(from the URL)* | `memory` or `redis`, overriding the URL's scheme |
//! | `SCHEDULER_JOBS_PREFIX` | `corekit:jobs` | Redis key prefix of the job store |
//! | `SCHEDULER_DEAD_MAX` | `10000` | dead jobs kept per queue; the oldest go first ([`JobQueue::retry_dead`] and [`JobQueue::delete_dead`] act on them) |
//!
//! # Background jobs
//!
//! One handle, [`JobQueue`], runs typed jobs over a [`JobStore`]: [`MemoryJobStore`]
//! (in-process, the default) or `RedisJobStore` (durable, shared by instances; feature
//! `scheduler-redis`), picked at run time by [`JobQueue::from_env`] or chosen with
//! [`JobQueue::builder`]. Every store passes the same behaviour suite,
//! `scheduler::conformance` (feature `testing`), and a third-party store proves itself by
//! calling its `run_all` from a test.
//!
//! Fleet-wide single runs: [`Job::single_instance`] with a [`TickLock`] such as
//! `RedisTickLock` (feature `scheduler-redis`).
//!
//! The Redis store and tick lock work on one server and on a Redis Cluster
//! (`redis-cluster://`): a queue's keys share the hash tag `{queue}`, so each of the store's
//! scripts touches one slot, and different queues spread over the cluster. The job-store
//! conformance suite runs on one server, a Cluster and Sentinel. With a Cluster primary
//! SIGKILLed under three single-instance schedulers, no tick ran twice; ticks were skipped
//! (the lock unreachable: a missed run beats a double one) only until the replica took over,
//! about 2 s after the kill.

mod config;
mod driver;
mod guard;
mod handle;
mod job;
mod jobs;
mod lock;
#[cfg(feature = "scheduler-redis")]
mod redis;
mod schedule;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;

pub use config::{SchedulerBuilder, SchedulerConfig};
pub use handle::Scheduler;
pub use job::{Job, JobId, JobInfo, JobOutput, Misfire, Overlap};
pub use jobs::{
    AfterFailure, ClaimedJob, ConnectRedis, DeadJob, InProcess, JobBackend, JobQueue,
    JobQueueBuilder, JobQueueConfig, JobStats, JobStore, MemoryJobStore,
};
pub use lock::{MemoryRunHistory, RunHistory, StoreFuture, TickLock};
pub use schedule::{Every, Schedule, every};

#[cfg(feature = "scheduler-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "scheduler-redis")))]
pub use jobs::RedisJobStore;
#[cfg(feature = "scheduler-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "scheduler-redis")))]
pub use redis::RedisTickLock;
