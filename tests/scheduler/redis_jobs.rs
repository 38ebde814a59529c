//! The Redis job store against the real redis-server: what only a durable, shared store does
//! (the behaviour every store shares is in the conformance suite).

use crate::single_instance::support;
use corekit::scheduler::JobQueue;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize, Deserialize)]
struct Work {
    n: u32,
}

async fn queue(prefix: &str) -> JobQueue {
    JobQueue::builder()
        .redis(support::REDIS.require())
        .prefix(prefix)
        .concurrency(4)
        .max_attempts(3)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .await
        .unwrap()
}

type Seen = Arc<Mutex<HashMap<u32, Vec<&'static str>>>>;

fn recorder(
    seen: &Seen,
    who: &'static str,
) -> impl Fn(Work) -> std::future::Ready<Result<(), std::io::Error>> + Send + Sync + 'static {
    let seen = seen.clone();
    move |w: Work| {
        seen.lock().unwrap().entry(w.n).or_default().push(who);
        std::future::ready(Ok(()))
    }
}

/// As [`recorder`], but each job takes 5 ms, so one instance cannot drain the queue before the
/// other has polled (on a loaded machine an instant job let one instance take all 200).
fn slow_recorder(
    seen: &Seen,
    who: &'static str,
) -> impl Fn(
    Work,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), std::io::Error>> + Send>>
+ Send
+ Sync
+ 'static {
    let seen = seen.clone();
    move |w: Work| {
        seen.lock().unwrap().entry(w.n).or_default().push(who);
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(())
        })
    }
}

async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_restart() {
    let prefix = support::unique("jobs");
    // A producer with no handler: the jobs wait in Redis.
    let producer = queue(&prefix).await;
    for n in 0..50 {
        producer.enqueue("work", &Work { n }).await.unwrap();
    }
    producer.shutdown(Duration::from_secs(1)).await.unwrap();
    drop(producer);
    // A new "process" picks them all up.
    let seen: Seen = Arc::default();
    let consumer = queue(&prefix).await;
    consumer.register("work", recorder(&seen, "consumer"));
    until("all 50 jobs run", 10, || seen.lock().unwrap().len() == 50).await;
    consumer.shutdown(Duration::from_secs(2)).await.unwrap();
    assert!(
        seen.lock().unwrap().values().all(|v| v.len() == 1),
        "each ran once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_the_work_without_duplicates() {
    let prefix = support::unique("jobs");
    let seen: Seen = Arc::default();
    let a = queue(&prefix).await;
    let b = queue(&prefix).await;
    a.register("work", slow_recorder(&seen, "a"));
    b.register("work", slow_recorder(&seen, "b"));
    for n in 0..200 {
        a.enqueue("work", &Work { n }).await.unwrap();
    }
    until("all 200 jobs run", 15, || seen.lock().unwrap().len() == 200).await;
    a.shutdown(Duration::from_secs(2)).await.unwrap();
    b.shutdown(Duration::from_secs(2)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen.values().all(|v| v.len() == 1), "no job ran twice");
    let by_a = seen.values().filter(|v| v[0] == "a").count();
    assert!(
        by_a > 0 && by_a < 200,
        "both instances took jobs (a took {by_a})"
    );
}

/// Dead lists are bounded: past `dead_max` the oldest dead jobs go, on either store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lists_keep_only_the_newest() {
    let prefix = support::unique("dead-max");
    let redis = JobQueue::builder()
        .redis(support::REDIS.require())
        .prefix(&prefix)
        .concurrency(1)
        .max_attempts(1)
        .dead_max(3)
        .build()
        .await
        .unwrap();
    // One worker, so jobs die in the order they were enqueued.
    let memory = JobQueue::builder()
        .concurrency(1)
        .max_attempts(1)
        .dead_max(3)
        .build()
        .unwrap();
    for q in [redis, memory] {
        q.register("q", |_: Work| {
            std::future::ready(Err::<(), _>(std::io::Error::other("always")))
        });
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(q.enqueue("q", &Work { n }).await.unwrap());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while q.stats().dead < 5 {
            assert!(
                Instant::now() < deadline,
                "{}: {:?}",
                q.backend_name(),
                q.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut kept: Vec<u64> = q.dead("q").await.unwrap().iter().map(|d| d.id).collect();
        kept.sort_unstable();
        let mut newest = ids[2..].to_vec();
        newest.sort_unstable();
        assert_eq!(kept, newest, "{}", q.backend_name());
        q.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

/// With no `SCHEDULER_*` variable, `JobQueue::from_env` says that jobs stay in this process.
#[test]
fn from_env_with_no_variables_warns_that_jobs_stay_in_process() {
    support::assert_unset("SCHEDULER_");
    let (jobs, logs) = support::with_logs(JobQueue::from_env());
    assert_eq!(jobs.unwrap().backend_name(), "memory");
    assert!(
        logs.contains("WARN") && logs.contains("no SCHEDULER_* variable is set"),
        "{logs}"
    );
    assert!(logs.contains("SCHEDULER_JOBS_URL="), "{logs}");
}
