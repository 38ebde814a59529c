//! The brief's `scheduler.every(1).hour().do(|| cache.delete_expired())`, with the memory cache,
//! plus a cron job in a time zone. Runs for three seconds with a one-second interval so there
//! is something to see, then shuts down cleanly.
//!
//! ```sh
//! cargo run --example scheduler --features scheduler
//! ```

use corekit::cache::{Cache, MemoryStore};
use corekit::scheduler::{Job, Schedule, Scheduler, every};
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

    tokio::time::sleep(Duration::from_secs(3)).await;
    for job in scheduler.list() {
        println!(
            "{}: {} ok, {} failed, next {:?}",
            job.name, job.succeeded, job.failed, job.next_run
        );
    }
    scheduler.shutdown_default().await
}
