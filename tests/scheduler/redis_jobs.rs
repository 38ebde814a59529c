//! The durable job queue against the real redis-server.

use crate::single_instance::support;
use corekit::scheduler::{JobQueueConfig, RedisJobQueue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize, Deserialize)]
struct Work {
    n: u32,
}

fn config() -> JobQueueConfig {
    JobQueueConfig::default()
        .concurrency(4)
        .max_attempts(3)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
}

async fn queue(prefix: &str, config: JobQueueConfig) -> RedisJobQueue {
    RedisJobQueue::connect_with_prefix(&support::REDIS.require(), prefix, config)
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
    let producer = queue(&prefix, config()).await;
    for n in 0..50 {
        producer.enqueue("work", &Work { n }).await.unwrap();
    }
    producer.shutdown(Duration::from_secs(1)).await.unwrap();
    drop(producer);
    // A new "process" picks them all up.
    let seen: Seen = Arc::default();
    let consumer = queue(&prefix, config()).await;
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
    let a = queue(&prefix, config()).await;
    let b = queue(&prefix, config()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_held_by_a_dead_worker_runs_elsewhere_after_its_lease() {
    let prefix = support::unique("jobs");
    let short_lease = config().lease(Duration::from_millis(500));
    let doomed = queue(&prefix, short_lease.clone()).await;
    let taken = Arc::new(tokio::sync::Notify::new());
    let t = taken.clone();
    doomed.register("work", move |_: Work| {
        t.notify_one();
        // Never finishes: the worker dies holding the job.
        std::future::pending::<Result<(), std::io::Error>>()
    });
    doomed.enqueue("work", &Work { n: 7 }).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), taken.notified())
        .await
        .unwrap();
    doomed.abort();

    let seen: Seen = Arc::default();
    let survivor = queue(&prefix, short_lease).await;
    survivor.register("work", recorder(&seen, "survivor"));
    until("the abandoned job runs again", 10, || {
        seen.lock().unwrap().contains_key(&7)
    })
    .await;
    survivor.shutdown(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_jobs_retry_then_land_in_the_dead_list() {
    let prefix = support::unique("jobs");
    let q = queue(&prefix, config()).await;
    let attempts = Arc::new(Mutex::new(0u32));
    let a = attempts.clone();
    q.register("work", move |_: Work| {
        *a.lock().unwrap() += 1;
        std::future::ready(Err::<(), _>(std::io::Error::other("mail server says 550")))
    });
    let id = q.enqueue("work", &Work { n: 1 }).await.unwrap();
    until("the job dies", 10, || q.stats().dead == 1).await;
    q.shutdown(Duration::from_secs(2)).await.unwrap();
    assert_eq!(*attempts.lock().unwrap(), 3, "max_attempts");
    let dead = q.dead("work").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (id, 3));
    assert_eq!(dead[0].last_error, "mail server says 550");
    assert_eq!(dead[0].payload, r#"{"n":1}"#);
    assert_eq!(q.stats().retried, 2);
}

#[tokio::test]
async fn bad_queue_names_are_rejected() {
    let q = queue(&support::unique("jobs"), config()).await;
    let err = q.enqueue("has space", &Work { n: 0 }).await.unwrap_err();
    assert_eq!(err.kind(), corekit::ErrorKind::InvalidInput);
    q.shutdown(Duration::from_secs(1)).await.unwrap();
}
