//! Background jobs on tokio's paused clock.

use corekit::ErrorKind;
use corekit::scheduler::{JobQueue, JobQueueConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    n: u32,
}

fn config() -> JobQueueConfig {
    JobQueueConfig::default()
        .concurrency(4)
        .max_attempts(3)
        .backoff(Duration::from_secs(1), Duration::from_secs(10))
}

#[tokio::test(start_paused = true)]
async fn jobs_run_with_bounded_concurrency() {
    let q = JobQueue::new(config());
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (r, p, d) = (running.clone(), peak.clone(), done.clone());
    q.register("email", move |job: Email| {
        let (r, p, d) = (r.clone(), p.clone(), d.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(job.to.starts_with("user"));
            r.fetch_sub(1, Ordering::SeqCst);
            d.fetch_add(1, Ordering::SeqCst);
            Ok::<(), std::io::Error>(())
        }
    });
    for n in 0..40 {
        q.enqueue(
            "email",
            &Email {
                to: format!("user{n}@example.com"),
                n,
            },
        )
        .unwrap();
    }
    q.shutdown(Duration::from_secs(60)).await.unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 40);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "never more than the concurrency limit"
    );
    let stats = q.stats();
    assert_eq!(
        (stats.enqueued, stats.succeeded, stats.dead, stats.running),
        (40, 40, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn failures_retry_with_backoff_then_die() {
    let q = JobQueue::new(config());
    let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = attempts.clone();
    let started = tokio::time::Instant::now();
    q.register("flaky", move |job: Email| {
        let a = a.clone();
        async move {
            a.lock().unwrap().push((job.n, started.elapsed()));
            if job.n == 0 {
                Err(std::io::Error::other("smtp 421"))
            } else if a.lock().unwrap().iter().filter(|(n, _)| *n == 1).count() < 2 {
                Err(std::io::Error::other("first try fails"))
            } else {
                Ok(())
            }
        }
    });
    let dead_id = q
        .enqueue(
            "flaky",
            &Email {
                to: "a".into(),
                n: 0,
            },
        )
        .unwrap();
    q.enqueue(
        "flaky",
        &Email {
            to: "b".into(),
            n: 1,
        },
    )
    .unwrap();
    q.shutdown(Duration::from_secs(60)).await.unwrap();

    let attempts = attempts.lock().unwrap().clone();
    let always: Vec<Duration> = attempts
        .iter()
        .filter(|(n, _)| *n == 0)
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(always.len(), 3, "max_attempts is 3: {attempts:?}");
    // Full jitter: retry k waits somewhere in [0, base * 2^(k-1)].
    assert!(
        always[1] - always[0] <= Duration::from_secs(1),
        "{always:?}"
    );
    assert!(
        always[2] - always[1] <= Duration::from_secs(2),
        "{always:?}"
    );
    let dead = q.dead();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (dead_id, 3));
    assert_eq!(dead[0].last_error, "smtp 421");
    assert!(
        dead[0].payload.contains("\"to\":\"a\""),
        "{}",
        dead[0].payload
    );
    let stats = q.stats();
    assert_eq!(
        (stats.succeeded, stats.retried, stats.dead),
        (1, 3, 1),
        "{stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn panics_timeouts_and_bad_payloads_are_failures() {
    let q = JobQueue::new(config().max_attempts(1).timeout(Duration::from_secs(2)));
    q.register("panics", |_: Email| async {
        panic!("handler bug") as Result<(), std::io::Error>
    });
    q.register("slow", |_: Email| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<(), std::io::Error>(())
    });
    q.register("numbers", |_: u64| async { Ok::<(), std::io::Error>(()) });
    q.enqueue(
        "panics",
        &Email {
            to: "x".into(),
            n: 0,
        },
    )
    .unwrap();
    q.enqueue(
        "slow",
        &Email {
            to: "x".into(),
            n: 0,
        },
    )
    .unwrap();
    q.enqueue("numbers", &"not a number").unwrap();
    q.shutdown(Duration::from_secs(60)).await.unwrap();
    let mut errors: Vec<String> = q.dead().into_iter().map(|d| d.last_error).collect();
    errors.sort();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].starts_with("panicked: handler bug"), "{errors:?}");
    assert!(
        errors[1].starts_with("payload does not decode"),
        "{errors:?}"
    );
    assert_eq!(errors[2], "timed out after 2s");
}

#[tokio::test(start_paused = true)]
async fn enqueue_rejects_unknown_queues_and_late_jobs() {
    let q = JobQueue::new(config());
    let err = q.enqueue("nobody", &1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("\"nobody\""), "{err}");
    q.register("ok", |_: u32| async { Ok::<(), std::io::Error>(()) });
    q.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        q.enqueue("ok", &1).unwrap_err().kind(),
        ErrorKind::Unavailable
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_deadline_reports_what_is_left() {
    let q = JobQueue::new(config());
    q.register("slow", |_: u32| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<(), std::io::Error>(())
    });
    q.enqueue("slow", &1).unwrap();
    q.enqueue("slow", &2).unwrap();
    tokio::task::yield_now().await;
    let err = q.shutdown(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("2 job(s)"), "{err}");
}

#[test]
fn backoff_is_capped_exponential_with_jitter() {
    let c = JobQueueConfig::default().backoff(Duration::from_millis(100), Duration::from_secs(1));
    for attempt in 1..10 {
        let cap = (Duration::from_millis(100) * 2u32.pow(attempt - 1)).min(Duration::from_secs(1));
        let samples: Vec<Duration> = (0..200).map(|_| c.backoff_for(attempt)).collect();
        assert!(samples.iter().all(|d| *d <= cap), "attempt {attempt}");
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 100, "jittered, not constant");
    }
}
