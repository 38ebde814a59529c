//! The in-process job queue on tokio's paused clock (what the conformance suite, on real time,
//! cannot pin down: concurrency peaks, backoff bounds, shutdown deadlines), and how a queue is
//! configured.

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
        .await
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
        .await
        .unwrap();
    q.enqueue(
        "flaky",
        &Email {
            to: "b".into(),
            n: 1,
        },
    )
    .await
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
    let dead = q.dead("flaky").await.unwrap();
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
async fn enqueue_rejects_unknown_queues_and_late_jobs() {
    let q = JobQueue::new(config());
    let err = q.enqueue("nobody", &1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("\"nobody\""), "{err}");
    q.register("ok", |_: u32| async { Ok::<(), std::io::Error>(()) });
    q.shutdown(Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        q.enqueue("ok", &1).await.unwrap_err().kind(),
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
    q.enqueue("slow", &1).await.unwrap();
    q.enqueue("slow", &2).await.unwrap();
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

#[tokio::test]
async fn from_config_picks_the_store_from_the_url() {
    use corekit::config::EnvConfig;
    use corekit::scheduler::{MemoryJobStore, RedisJobStore, SchedulerConfig};
    let load = |vars: &[(&str, &str)]| {
        SchedulerConfig::from_vars(
            "SCHEDULER_",
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    };
    let memory = JobQueue::from_config(&load(&[]).unwrap().job_queue())
        .await
        .unwrap();
    assert_eq!(memory.backend_name(), "memory");
    assert!(memory.downcast_ref::<MemoryJobStore>().is_some());
    assert!(memory.downcast_ref::<RedisJobStore>().is_none());
    memory.ping().await.unwrap();
    memory.close().await.unwrap();

    let url = crate::single_instance::support::REDIS.require();
    let prefix = crate::single_instance::support::unique("jobs-config");
    let config = load(&[
        ("SCHEDULER_JOBS_URL", url.as_str()),
        ("SCHEDULER_JOBS_PREFIX", prefix.as_str()),
    ])
    .unwrap()
    .job_queue();
    let redis = JobQueue::from_config(&config).await.unwrap();
    assert_eq!(redis.backend_name(), "redis");
    assert_eq!(
        redis.downcast_ref::<RedisJobStore>().unwrap().prefix(),
        prefix
    );
    redis.ping().await.unwrap();
    redis.close().await.unwrap();

    // The override wins over the URL's scheme.
    let config = load(&[
        ("SCHEDULER_JOBS_URL", url.as_str()),
        ("SCHEDULER_JOBS_BACKEND", "memory"),
    ])
    .unwrap()
    .job_queue();
    let overridden = JobQueue::from_config(&config).await.unwrap();
    assert_eq!(overridden.backend_name(), "memory");
    overridden.close().await.unwrap();
}

#[test]
fn job_store_settings_name_their_variable() {
    use corekit::config::EnvConfig;
    use corekit::scheduler::SchedulerConfig;
    let load = |vars: &[(&str, &str)]| {
        SchedulerConfig::from_vars(
            "SCHEDULER_",
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    };
    let e = load(&[("SCHEDULER_JOBS_URL", "amqp://u:secret@h/")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(r#"SCHEDULER_JOBS_URL="amqp://u:***@h/": expected a URL starting with memory://, redis:// or rediss://"#),
        "{e}"
    );
    let e = load(&[("SCHEDULER_JOBS_BACKEND", "redis")])
        .unwrap_err()
        .to_string();
    assert!(e.contains(r#"SCHEDULER_JOBS_URL="memory://""#), "{e}");
    let e = load(&[("SCHEDULER_JOBS_BACKEND", "kafka")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCHEDULER_JOBS_BACKEND"), "{e}");
    let c = load(&[
        ("SCHEDULER_JOBS_URL", "redis://:pw@127.0.0.1:6379/3"),
        ("SCHEDULER_JOB_LEASE", "90s"),
    ])
    .unwrap();
    assert!(!format!("{c:?}").contains("pw"), "{c:?}");
    let q = c.job_queue();
    assert!(!format!("{q:?}").contains("pw"), "{q:?}");
    assert_eq!(q.lease, Some(Duration::from_secs(90)));
}

#[tokio::test]
async fn builder_validates_and_takes_a_store() {
    use corekit::scheduler::{JobStore, MemoryJobStore};
    let err = JobQueue::builder()
        .backoff(Duration::from_secs(10), Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("SCHEDULER_RETRY_BACKOFF"), "{err}");
    assert_eq!(
        JobQueue::builder()
            .concurrency(0)
            .build()
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    // Two queues over one store see each other's dead jobs.
    let store: Arc<dyn JobStore> = Arc::new(MemoryJobStore::new());
    let a = JobQueue::builder()
        .store(store.clone())
        .max_attempts(1)
        .build()
        .unwrap();
    let b = JobQueue::builder().store(store).build().unwrap();
    a.register("fails", |_: u32| async {
        Err::<(), _>(std::io::Error::other("no"))
    });
    a.enqueue("fails", &1).await.unwrap();
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(b.dead("fails").await.unwrap().len(), 1);
}
