//! The behaviour every [`JobStore`] must have, as public async functions (feature `testing`).
//!
//! Each function takes a store, builds the [`JobQueue`]s it needs over it, and panics with a
//! message when the store misbehaves. Queue names are unique per call, so the functions can
//! share one store and run in any order or at once. Time is real (a few hundred ms per
//! check), so run them on a multi-threaded runtime:
//!
//! ```no_run
//! use corekit::scheduler::{JobStore, MemoryJobStore, conformance};
//! use std::sync::Arc;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn memory_store_conforms() {
//!     conformance::run_all(Arc::new(MemoryJobStore::new())).await;
//! }
//! # fn main() {}
//! ```
//!
//! A third-party store is done when [`run_all`] passes on it.

use super::{AfterFailure, JobQueue, JobStore};
use crate::ErrorKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A job payload the checks enqueue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Work {
    n: u32,
}

/// A queue name no other call uses, so checks sharing a store do not meet.
pub fn unique_queue(name: &str) -> String {
    crate::testing::unique_name(name, '-')
}

/// A queue over `store` with short delays, so a check takes well under a second.
fn queue(store: &Arc<dyn JobStore>, max_attempts: u32) -> JobQueue {
    JobQueue::builder()
        .store(store.clone())
        .concurrency(4)
        .max_attempts(max_attempts)
        .backoff(Duration::from_millis(20), Duration::from_millis(80))
        .build()
        .expect("a valid job queue config")
}

/// Waits until `done` holds, up to `secs` seconds, polling.
async fn until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type Seen = Arc<Mutex<HashMap<u32, u32>>>;

fn count(seen: &Seen) -> usize {
    seen.lock().map_or(0, |s| s.len())
}

/// Every check, one after the other, on `store`.
pub async fn run_all(store: Arc<dyn JobStore>) {
    ping_answers(store.clone()).await;
    jobs_run_once(store.clone()).await;
    retries_count_attempts(store.clone()).await;
    dead_after_max_attempts(store.clone()).await;
    dead_lists_are_per_queue(store.clone()).await;
    dead_jobs_can_be_retried_and_deleted(store.clone()).await;
    handler_panics_and_timeouts_are_isolated(store.clone()).await;
    expired_lease_is_reclaimed(store.clone()).await;
    stale_lease_cannot_settle(store.clone()).await;
    enqueue_validates(store).await;
}

/// `ping` answers and the queue reports the store's name.
pub async fn ping_answers(store: Arc<dyn JobStore>) {
    let q = queue(&store, 1);
    q.ping().await.expect("ping");
    assert_eq!(q.backend_name(), store.name());
    q.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

/// Enqueued jobs each run exactly once, with their payload, and get distinct ids.
pub async fn jobs_run_once(store: Arc<dyn JobStore>) {
    let name = unique_queue("once");
    let q = queue(&store, 3);
    let seen: Seen = Arc::default();
    let s = seen.clone();
    q.register(&name, move |w: Work| {
        *s.lock().expect("seen").entry(w.n).or_default() += 1;
        std::future::ready(Ok::<(), std::io::Error>(()))
    });
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(q.enqueue(&name, &Work { n }).await.expect("enqueue"));
    }
    until("20 jobs run", 10, || count(&seen) == 20).await;
    q.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    let seen = seen.lock().expect("seen");
    assert!(
        seen.values().all(|runs| *runs == 1),
        "each job ran once: {seen:?}"
    );
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "ids are distinct");
    let stats = q.stats();
    assert_eq!(
        (stats.enqueued, stats.succeeded, stats.dead),
        (20, 20, 0),
        "{stats:?}"
    );
}

/// A job that fails twice then succeeds runs three times; the attempt number rises by one
/// per retry and the job never reaches the dead list.
pub async fn retries_count_attempts(store: Arc<dyn JobStore>) {
    let name = unique_queue("retry");
    let q = queue(&store, 5);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let a = attempts.clone();
    q.register(&name, move |_: Work| {
        let mut a = a.lock().expect("attempts");
        a.push(Instant::now());
        let fail = a.len() < 3;
        std::future::ready(if fail {
            Err(std::io::Error::other("not yet"))
        } else {
            Ok(())
        })
    });
    q.enqueue(&name, &Work { n: 1 }).await.expect("enqueue");
    until("the job succeeds", 10, || q.stats().succeeded == 1).await;
    q.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert_eq!(attempts.lock().expect("attempts").len(), 3);
    let stats = q.stats();
    assert_eq!((stats.retried, stats.dead), (2, 0), "{stats:?}");
    assert!(q.dead(&name).await.expect("dead").is_empty());
}

/// A job that always fails is dead after `max_attempts`, with its id, payload, attempt count
/// and last error.
pub async fn dead_after_max_attempts(store: Arc<dyn JobStore>) {
    let name = unique_queue("dead");
    let q = queue(&store, 3);
    let runs = Arc::new(AtomicU64::new(0));
    let r = runs.clone();
    q.register(&name, move |_: Work| {
        r.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err::<(), _>(std::io::Error::other("mail server says 550")))
    });
    let id = q.enqueue(&name, &Work { n: 1 }).await.expect("enqueue");
    until("the job dies", 10, || q.stats().dead == 1).await;
    q.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert_eq!(runs.load(Ordering::SeqCst), 3, "max_attempts");
    let dead = q.dead(&name).await.expect("dead");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].id, dead[0].attempts), (id, 3));
    assert_eq!(dead[0].queue, name);
    assert_eq!(dead[0].last_error, "mail server says 550");
    assert_eq!(dead[0].payload, r#"{"n":1}"#);
    assert_eq!(q.stats().retried, 2);
}

/// Each queue has its own dead list, oldest first; an unknown queue's is empty.
pub async fn dead_lists_are_per_queue(store: Arc<dyn JobStore>) {
    let (a, b) = (unique_queue("dead-a"), unique_queue("dead-b"));
    let q = queue(&store, 1);
    for name in [&a, &b] {
        q.register(name, |w: Work| {
            std::future::ready(Err::<(), _>(std::io::Error::other(format!("job {}", w.n))))
        });
    }
    q.enqueue(&a, &Work { n: 1 }).await.expect("enqueue");
    until("the first job dies", 10, || q.stats().dead == 1).await;
    q.enqueue(&a, &Work { n: 2 }).await.expect("enqueue");
    q.enqueue(&b, &Work { n: 3 }).await.expect("enqueue");
    until("three jobs die", 10, || q.stats().dead == 3).await;
    q.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    let errors = |dead: Vec<super::DeadJob>| -> Vec<String> {
        dead.into_iter().map(|d| d.last_error).collect()
    };
    assert_eq!(errors(q.dead(&a).await.expect("dead")), ["job 1", "job 2"]);
    assert_eq!(errors(q.dead(&b).await.expect("dead")), ["job 3"]);
    let none = q.dead(&unique_queue("nobody")).await.expect("dead");
    assert!(none.is_empty(), "{none:?}");
}

/// A dead job can be sent back to its queue, as a first attempt, once its cause is fixed, or
/// deleted; either takes it off the dead list, and an unknown id is `false`.
pub async fn dead_jobs_can_be_retried_and_deleted(store: Arc<dyn JobStore>) {
    use std::sync::atomic::AtomicBool;
    let name = unique_queue("redeem");
    let q = queue(&store, 1);
    let broken = Arc::new(AtomicBool::new(true));
    let done: Seen = Arc::default();
    let (b, d) = (broken.clone(), done.clone());
    q.register(&name, move |w: Work| {
        let failed = b.load(Ordering::SeqCst);
        if !failed {
            d.lock().expect("lock").insert(w.n, 1);
        }
        std::future::ready(if failed {
            Err(std::io::Error::other("downstream broken"))
        } else {
            Ok(())
        })
    });
    let first = q.enqueue(&name, &Work { n: 1 }).await.expect("enqueue");
    let second = q.enqueue(&name, &Work { n: 2 }).await.expect("enqueue");
    until("both jobs die", 10, || q.stats().dead == 2).await;
    broken.store(false, Ordering::SeqCst);
    assert!(
        q.retry_dead(&name, first).await.expect("retry_dead"),
        "job {first} is dead"
    );
    until("the retried job runs", 10, || {
        done.lock().is_ok_and(|d| d.contains_key(&1))
    })
    .await;
    let dead = q.dead(&name).await.expect("dead");
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [second]);
    assert!(q.delete_dead(&name, second).await.expect("delete_dead"));
    assert!(q.dead(&name).await.expect("dead").is_empty());
    assert!(
        !q.retry_dead(&name, second).await.expect("retry_dead"),
        "already gone"
    );
    assert!(
        !q.delete_dead(&name, 987_654).await.expect("delete_dead"),
        "unknown id"
    );
    q.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    assert!(
        !done.lock().expect("lock").contains_key(&2),
        "a deleted job never runs"
    );
}

/// A handler that panics, times out or cannot decode its payload fails only its own job;
/// the workers carry on.
pub async fn handler_panics_and_timeouts_are_isolated(store: Arc<dyn JobStore>) {
    let (panics, slow, numbers) = (
        unique_queue("panics"),
        unique_queue("slow"),
        unique_queue("numbers"),
    );
    let q = JobQueue::builder()
        .store(store.clone())
        .concurrency(2)
        .max_attempts(1)
        .timeout(Duration::from_millis(100))
        .build()
        .expect("a valid job queue config");
    let ok = Arc::new(AtomicU64::new(0));
    let o = ok.clone();
    q.register(&panics, move |w: Work| {
        let o = o.clone();
        async move {
            if w.n == 0 {
                panic!("handler bug");
            }
            o.fetch_add(1, Ordering::SeqCst);
            Ok::<(), std::io::Error>(())
        }
    });
    q.register(&slow, |_: Work| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<(), std::io::Error>(())
    });
    q.register(&numbers, |_: u64| async { Ok::<(), std::io::Error>(()) });
    for n in 0..5 {
        q.enqueue(&panics, &Work { n }).await.expect("enqueue");
    }
    q.enqueue(&slow, &Work { n: 0 }).await.expect("enqueue");
    q.enqueue(&numbers, &"not a number").await.expect("enqueue");
    until("every job settles", 10, || {
        let s = q.stats();
        s.succeeded + s.dead == 7
    })
    .await;
    // The workers that hit the panic still take jobs.
    q.enqueue(&panics, &Work { n: 9 }).await.expect("enqueue");
    until("a later job runs", 10, || ok.load(Ordering::SeqCst) == 5).await;
    q.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    let error =
        |dead: Vec<super::DeadJob>| dead.into_iter().map(|d| d.last_error).collect::<Vec<_>>();
    let p = error(q.dead(&panics).await.expect("dead"));
    assert!(
        p.len() == 1 && p[0].starts_with("panicked: handler bug"),
        "{p:?}"
    );
    assert_eq!(
        error(q.dead(&slow).await.expect("dead")),
        ["timed out after 100ms"]
    );
    let d = error(q.dead(&numbers).await.expect("dead"));
    assert!(
        d.len() == 1 && d[0].starts_with("payload does not decode"),
        "{d:?}"
    );
}

/// A job held by a worker that died (its queue aborted mid-job) runs on another worker of
/// the same store once its lease expires.
pub async fn expired_lease_is_reclaimed(store: Arc<dyn JobStore>) {
    let name = unique_queue("lease");
    let build = || {
        JobQueue::builder()
            .store(store.clone())
            .concurrency(1)
            .lease(Duration::from_millis(300))
            .build()
            .expect("a valid job queue config")
    };
    let doomed = build();
    let taken = Arc::new(tokio::sync::Notify::new());
    let t = taken.clone();
    doomed.register(&name, move |_: Work| {
        t.notify_one();
        // Never finishes: the worker dies holding the job.
        std::future::pending::<Result<(), std::io::Error>>()
    });
    doomed
        .enqueue(&name, &Work { n: 7 })
        .await
        .expect("enqueue");
    tokio::time::timeout(Duration::from_secs(5), taken.notified())
        .await
        .expect("the first worker takes the job");
    doomed.abort();

    let seen: Seen = Arc::default();
    let survivor = build();
    let s = seen.clone();
    survivor.register(&name, move |w: Work| {
        *s.lock().expect("seen").entry(w.n).or_default() += 1;
        std::future::ready(Ok::<(), std::io::Error>(()))
    });
    until("the abandoned job runs again", 10, || count(&seen) == 1).await;
    survivor
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    assert_eq!(seen.lock().expect("seen").get(&7), Some(&1));
}

/// Straight on the store: once a lease expired and the job was claimed again, the first
/// holder can no longer complete or fail it; the second can.
pub async fn stale_lease_cannot_settle(store: Arc<dyn JobStore>) {
    let name = unique_queue("stale");
    let id = store.enqueue(&name, br#"{"n":1}"#).await.expect("enqueue");
    let lease = Duration::from_millis(50);
    let first = store
        .claim(&name, lease)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!((first.id, first.attempt), (id, 1));
    assert_eq!(&*first.payload, br#"{"n":1}"#);
    assert!(
        store.claim(&name, lease).await.expect("claim").is_none(),
        "leased jobs are not ready"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let second = loop {
        tokio::time::sleep(Duration::from_millis(60)).await;
        if let Some(job) = store
            .claim(&name, Duration::from_secs(30))
            .await
            .expect("claim")
        {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "an expired lease makes the job ready again"
        );
    };
    assert_eq!(second.id, id);
    assert!(
        !store.complete(&first).await.expect("complete"),
        "a stale lease settles nothing"
    );
    assert!(
        !store
            .fail(&first, "late", AfterFailure::Dead)
            .await
            .expect("fail"),
        "a stale lease settles nothing"
    );
    assert!(store.complete(&second).await.expect("complete"));
    assert!(store.dead(&name).await.expect("dead").is_empty());
    assert!(
        store.claim(&name, lease).await.expect("claim").is_none(),
        "completed jobs are gone"
    );
}

/// Bad queue names are refused, and a queue that shut down takes no more jobs.
pub async fn enqueue_validates(store: Arc<dyn JobStore>) {
    let q = queue(&store, 1);
    for bad in ["", "has space"] {
        let err = q
            .enqueue(bad, &Work { n: 0 })
            .await
            .expect_err("a bad name");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}: {err}");
    }
    let name = unique_queue("closed");
    q.register(&name, |_: Work| async { Ok::<(), std::io::Error>(()) });
    q.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    let err = q
        .enqueue(&name, &Work { n: 0 })
        .await
        .expect_err("after shutdown");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}
