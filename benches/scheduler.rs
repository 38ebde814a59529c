//! Scheduler figures, corekit next to tokio-cron-scheduler in the same run.
//!
//! ```sh
//! cargo bench --bench scheduler --features scheduler-redis
//! ```
//!
//! 1. Firing lateness (how long after the scheduled instant a job starts, by the wall clock):
//!    a `* * * * * *` cron job on corekit and on tokio-cron-scheduler 0.15 side by side for
//!    `BENCH_CRON_TICKS` ticks (default 60, one a second), and a corekit 10 ms interval for
//!    1000 ticks. Prints p50/p99/max.
//! 2. Background-job throughput: no-op jobs through `JobQueue` on the memory store and on the
//!    Redis store (the local redis-server), jobs per second.

use chrono::{Timelike, Utc};
use corekit::scheduler::{Job, JobQueue, JobQueueConfig, Schedule, Scheduler, every};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn percentiles(name: &str, mut us: Vec<i64>) {
    us.sort_unstable();
    if us.is_empty() {
        println!("{name:<40} no samples");
        return;
    }
    let p = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<40} n={:<5} p50={:>7} µs  p99={:>7} µs  max={:>7} µs",
        us.len(),
        p(0.5),
        p(0.99),
        us[us.len() - 1]
    );
}

/// Microseconds past the last whole second.
fn past_second() -> i64 {
    let now = Utc::now();
    i64::from(now.nanosecond() % 1_000_000_000) / 1000
}

async fn cron_lateness(ticks: usize) {
    let corekit = Arc::new(Mutex::new(Vec::new()));
    let raw = Arc::new(Mutex::new(Vec::new()));

    let scheduler = Scheduler::new();
    let c = corekit.clone();
    scheduler
        .add(Job::new(
            "lateness",
            Schedule::cron("* * * * * *").unwrap(),
            move || {
                c.lock().unwrap().push(past_second());
                std::future::ready(())
            },
        ))
        .unwrap();

    let tcs = tokio_cron_scheduler::JobScheduler::new().await.unwrap();
    let r = raw.clone();
    tcs.add(
        tokio_cron_scheduler::Job::new("* * * * * *", move |_, _| {
            r.lock().unwrap().push(past_second());
        })
        .unwrap(),
    )
    .await
    .unwrap();
    tcs.start().await.unwrap();

    tokio::time::sleep(Duration::from_millis(ticks as u64 * 1000 + 500)).await;
    scheduler.shutdown(Duration::from_secs(1)).await.unwrap();
    let mut tcs = tcs;
    tcs.shutdown().await.unwrap();
    percentiles("cron */1s corekit", corekit.lock().unwrap().clone());
    percentiles(
        "cron */1s tokio-cron-scheduler 0.15",
        raw.lock().unwrap().clone(),
    );
}

async fn interval_lateness() {
    let started = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let s = samples.clone();
    let scheduler = Scheduler::new();
    let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
    scheduler
        .add(Job::new("interval", every(10).millis(), move || {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            // Tick k is due k * 10 ms after the job was added (~ `started`).
            let due = Duration::from_millis(10 * k);
            s.lock()
                .unwrap()
                .push(started.elapsed().as_micros() as i64 - due.as_micros() as i64);
            std::future::ready(())
        }))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10_050)).await;
    scheduler.shutdown(Duration::from_secs(1)).await.unwrap();
    percentiles(
        "interval 10ms corekit (1000 ticks)",
        samples.lock().unwrap().clone(),
    );
}

async fn job_throughput(n: u64) {
    let q = JobQueue::new(JobQueueConfig::default().concurrency(64));
    q.register("noop", |_: u64| async { Ok::<(), std::io::Error>(()) });
    let start = Instant::now();
    for i in 0..n {
        q.enqueue("noop", &i).await.unwrap();
    }
    q.shutdown(Duration::from_secs(120)).await.unwrap();
    let took = start.elapsed();
    assert_eq!(q.stats().succeeded, n);
    println!(
        "{:<40} {n} jobs in {:.2?} = {:.0} jobs/s",
        "JobQueue memory no-op jobs (concurrency 64)",
        took,
        n as f64 / took.as_secs_f64()
    );
}

async fn redis_job_throughput(n: u64) {
    let url =
        std::env::var("COREKIT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("bench-jobs-{}", std::process::id());
    let q = JobQueue::builder()
        .redis(url)
        .prefix(prefix)
        .concurrency(64)
        .build()
        .await
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d = done.clone();
    q.register("noop", move |_: u64| {
        d.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async { Ok::<(), std::io::Error>(()) }
    });
    let start = Instant::now();
    for i in 0..n {
        q.enqueue("noop", &i).await.unwrap();
    }
    let enqueued = start.elapsed();
    while done.load(std::sync::atomic::Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = start.elapsed();
    q.shutdown(Duration::from_secs(10)).await.unwrap();
    println!(
        "{:<40} {n} jobs enqueued in {:.2?}, all run in {:.2?} = {:.0} jobs/s",
        "JobQueue redis no-op jobs (concurrency 64)",
        enqueued,
        took,
        n as f64 / took.as_secs_f64()
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with --bench absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ticks = if quick {
            2
        } else {
            std::env::var("BENCH_CRON_TICKS")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(60)
        };
        job_throughput(if quick { 1_000 } else { 200_000 }).await;
        redis_job_throughput(if quick { 100 } else { 20_000 }).await;
        if !quick {
            interval_lateness().await;
        }
        cron_lateness(ticks).await;
    });
}
