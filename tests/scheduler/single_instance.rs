//! `single_instance` across three schedulers on one real Redis: each tick runs exactly once.

use chrono::{Timelike, Utc};
use corekit::scheduler::{Job, RedisTickLock, Schedule, Scheduler, TickLock};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "../support/mod.rs"]
pub(crate) mod support;

/// One instance of a fleet: a scheduler running `run` on `schedule` as single-instance job
/// `name`, locked through its own connection to the Redis at `url`.
async fn fleet_member<F>(url: &str, name: &str, schedule: Schedule, run: F) -> Scheduler
where
    F: Fn() -> std::future::Ready<()> + Send + Sync + 'static,
{
    let lock: Arc<dyn TickLock> = Arc::new(
        RedisTickLock::connect(url, Duration::from_secs(3))
            .await
            .unwrap(),
    );
    let scheduler = Scheduler::new();
    scheduler
        .add(Job::new(name, schedule, run).single_instance(lock))
        .unwrap();
    scheduler
}

/// Which instances ran each second's tick.
type Runs = Arc<Mutex<HashMap<i64, Vec<usize>>>>;

/// Three instances running job `name` every second as single-instance, recording their runs.
async fn every_second_fleet(url: &str, name: &str) -> (Vec<Scheduler>, Runs) {
    let runs: Runs = Arc::default();
    let mut schedulers = Vec::new();
    for instance in 0..3 {
        let runs = runs.clone();
        let run = move || {
            // Runs start within a few ms after the second they belong to.
            let now = Utc::now();
            let second = now.timestamp() - i64::from(now.nanosecond() > 900_000_000);
            runs.lock()
                .unwrap()
                .entry(second)
                .or_default()
                .push(instance);
            std::future::ready(())
        };
        let schedule = Schedule::cron("* * * * * *").unwrap();
        schedulers.push(fleet_member(url, name, schedule, run).await);
    }
    (schedulers, runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_run_each_tick_once_over_20_ticks() {
    let url = support::REDIS.require();
    let name = support::unique("fleet-job");
    let (schedulers, runs) = every_second_fleet(&url, &name).await;
    tokio::time::sleep(Duration::from_millis(20_500)).await;
    for s in &schedulers {
        s.shutdown(Duration::from_secs(2)).await.unwrap();
    }
    let runs = runs.lock().unwrap().clone();
    assert!(
        runs.len() >= 20,
        "20 ticks observed, got {}: {runs:?}",
        runs.len()
    );
    for (second, instances) in &runs {
        assert_eq!(instances.len(), 1, "tick {second} ran on {instances:?}");
    }
    let skipped: u64 = schedulers.iter().map(|s| s.list()[0].skipped).sum();
    assert_eq!(
        skipped,
        2 * runs.len() as u64,
        "the two losers of each tick count it as skipped"
    );
    let winners: std::collections::HashSet<usize> = runs.values().map(|v| v[0]).collect();
    println!("ticks won per instance: {winners:?}");
}

#[tokio::test]
async fn an_unreachable_redis_is_a_retryable_connect_error() {
    let url = format!("redis://127.0.0.1:{}", support::free_port());
    let err = RedisTickLock::connect(&url, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn run_history_round_trips_through_redis() {
    use corekit::scheduler::RunHistory;
    let lock = RedisTickLock::connect(&support::REDIS.require(), Duration::from_secs(1))
        .await
        .unwrap();
    let job = support::unique("history-job");
    assert_eq!(lock.last_run(&job).await.unwrap(), None);
    let at = chrono::DateTime::from_timestamp_millis(1_790_000_000_123).unwrap();
    lock.record(&job, at).await.unwrap();
    assert_eq!(lock.last_run(&job).await.unwrap(), Some(at));
}

/// A lock that cannot be reached: the tick is not run (a missed run beats a double one).
struct BrokenLock;

impl TickLock for BrokenLock {
    fn acquire<'a>(
        &'a self,
        _key: &'a str,
        _ttl: Duration,
    ) -> corekit::scheduler::StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Err(corekit::Error::new(
            corekit::ErrorKind::Unavailable,
            "lock server down",
        ))))
    }
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_lock_skips_the_tick_instead_of_running_it() {
    let start = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let s = Scheduler::with_virtual_clock(start);
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    let id = s
        .add(
            Job::new(
                "guarded",
                corekit::scheduler::every(1).seconds(),
                move || {
                    r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    std::future::ready(())
                },
            )
            .single_instance(Arc::new(BrokenLock)),
        )
        .unwrap();
    for _ in 0..35 {
        tokio::time::advance(Duration::from_millis(100)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no tick ran without the lock"
    );
    let info = s.job(id).unwrap();
    assert_eq!(info.failed, 3, "{info:?}");
    assert!(info.last_error.unwrap().contains("lock server down"));
}

/// Issue 14 #10: interval schedules of schedulers started apart tick together, so the lock
/// lets one instance run each tick (before, each instance anchored on its own start and
/// all of them ran every tick).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_ticks_of_instances_started_apart_run_once() {
    let url = support::REDIS.require();
    let name = support::unique("fleet-interval");
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut schedulers = Vec::new();
    for _ in 0..3 {
        let runs = runs.clone();
        let run = move || {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(())
        };
        let schedule = corekit::scheduler::every(1).second();
        schedulers.push(fleet_member(&url, &name, schedule, run).await);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    for s in &schedulers {
        s.shutdown(Duration::from_secs(2)).await.unwrap();
    }
    let runs = runs.load(std::sync::atomic::Ordering::SeqCst);
    let skipped: u64 = schedulers.iter().map(|s| s.list()[0].skipped).sum();
    // About 5 ticks in 5 s; before the fix every instance ran each (about 15).
    assert!((4..=6).contains(&runs), "{runs} runs for ~5 ticks");
    assert!(
        skipped >= 2 * (runs as u64 - 1),
        "{skipped} skipped for {runs} runs"
    );
}

/// Issue 16: three instances locking each tick on a Redis Cluster with replicas; a primary is
/// SIGKILLed after 5 s and its replica takes over. No tick runs twice; ticks whose lock key
/// lives on the dead primary are skipped until the promotion (a missed run beats a double
/// one), and from 2 s after it every tick runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_run_once_through_a_cluster_failover() {
    use std::time::Instant;
    let mut cluster = support::RedisCluster::start(1);
    let url = cluster.url();
    let name = support::unique("failover-job");
    let (schedulers, runs) = every_second_fleet(&url, &name).await;
    let started = Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let killed = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.fail_over(0);
        cluster
    })
    .await
    .unwrap();
    let promoted = Utc::now().timestamp();
    let took = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(12)).await;
    for s in &schedulers {
        s.shutdown(Duration::from_secs(2)).await.unwrap();
    }
    drop(cluster);
    let ended = Utc::now().timestamp();
    let runs = runs.lock().unwrap().clone();
    for (second, instances) in &runs {
        assert_eq!(instances.len(), 1, "tick {second} ran on {instances:?}");
    }
    let missed: Vec<i64> = (started + 1..ended - 1)
        .filter(|s| !runs.contains_key(s))
        .collect();
    println!(
        "failover: promoted after {took:?}; {} ticks ran, missed {missed:?}",
        runs.len()
    );
    assert!(
        missed.iter().all(|s| *s <= promoted + 2),
        "ticks missed more than 2 s after the promotion (at {promoted}): {missed:?}"
    );
}
