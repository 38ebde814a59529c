//! The brief's `scheduler.every(1).hour().do(|| cache.delete_expired())`, with the memory cache,
//! plus a cron job in a time zone and a background job queue whose store comes from
//! `SCHEDULER_JOBS_URL` (`memory://` by default; `redis://127.0.0.1:6379` with the
//! `scheduler-redis` feature). Runs for three seconds with a one-second interval so there is
//! something to see, then shuts down cleanly.
//!
//! ```sh
//! cargo run --example scheduler --features scheduler
//! ```

use corekit::cache::{Cache, MemoryStore};
use corekit::scheduler::{Job, JobQueue, Schedule, Scheduler, every};
use std::time::Duration;

#[tokio::main]
async fn main() -> corekit::Result<()> {
    let cache = Cache::new(MemoryStore::new(10_000));
    cache
        .set_with_ttl(
            "session:1",
            &"short-lived",
            Some(Duration::from_millis(500)),
        )
        .await?;

    // SCHEDULER_TIMEZONE, SCHEDULER_SHUTDOWN_TIMEOUT.
    let scheduler = Scheduler::from_env()?;

    // In production: every(1).hour().
    let purge_cache = cache.clone();
    scheduler.add(Job::new("purge-expired", every(1).second(), move || {
        let cache = purge_cache.clone();
        async move {
            let purged = cache.delete_expired().await?;
            println!("purge-expired: {purged:?}");
            Ok::<(), corekit::Error>(())
        }
    }))?;

    let report = scheduler.add(Job::new(
        "nightly-report",
        Schedule::cron("30 2 * * *")?.in_timezone("Europe/Berlin")?,
        || async { println!("building the report") },
    ))?;
    println!(
        "nightly-report next runs at {:?}",
        scheduler.next_run(report)
    );

    // SCHEDULER_JOBS_URL, SCHEDULER_WORKER_CONCURRENCY, SCHEDULER_MAX_ATTEMPTS, ...
    let jobs = JobQueue::from_env().await?;
    jobs.register("welcome-email", |to: String| async move {
        println!("welcome-email: sending to {to}");
        Ok::<(), std::io::Error>(())
    });
    jobs.enqueue("welcome-email", "ada@example.com").await?;
    println!("background jobs on the {} store", jobs.backend_name());

    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("background jobs: {:?}", jobs.stats());
    jobs.close().await?;
    for job in scheduler.list() {
        println!(
            "{}: {} ok, {} failed, next {:?}",
            job.name, job.succeeded, job.failed, job.next_run
        );
    }
    scheduler.shutdown_default().await
}
