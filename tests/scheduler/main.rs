//! The scheduler on tokio's paused clock: fire counts, policies, pause/remove, shutdown.

use chrono::{DateTime, Utc};
use corekit::ErrorKind;
use corekit::scheduler::{Job, Misfire, Overlap, Schedule, Scheduler, every};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn counter() -> (
    Arc<AtomicUsize>,
    impl Fn() -> std::future::Ready<()> + Send + Sync + 'static,
) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    (n, move || {
        m.fetch_add(1, Ordering::SeqCst);
        std::future::ready(())
    })
}

async fn advance(d: Duration) {
    // Small steps so every timer in between fires in order.
    let step = Duration::from_millis(100);
    let mut left = d;
    while left > Duration::ZERO {
        let s = step.min(left);
        tokio::time::advance(s).await;
        tokio::task::yield_now().await;
        left -= s;
    }
}

#[tokio::test(start_paused = true)]
async fn interval_cron_and_one_shot_fire_counts() {
    let s = Scheduler::with_virtual_clock(start());
    let (interval, f) = counter();
    s.add(Job::new("interval", every(10).seconds(), f)).unwrap();
    let (cron, f) = counter();
    s.add(Job::new(
        "cron",
        Schedule::cron("*/15 * * * * *").unwrap(),
        f,
    ))
    .unwrap();
    let (once, f) = counter();
    let once_id = s
        .add(Job::new("once", Schedule::after(Duration::from_secs(5)), f))
        .unwrap();
    advance(Duration::from_secs(61)).await;
    assert_eq!(interval.load(Ordering::SeqCst), 6, "every 10 s over 61 s");
    assert_eq!(cron.load(Ordering::SeqCst), 4, "at :15 :30 :45 :00");
    assert_eq!(once.load(Ordering::SeqCst), 1, "a one-shot fires once");
    assert_eq!(s.next_run(once_id), None);
    s.shutdown(Duration::from_secs(1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn five_field_cron_fires_each_minute() {
    let s = Scheduler::with_virtual_clock(start());
    let (n, f) = counter();
    let id = s
        .add(Job::new(
            "minutely",
            Schedule::cron("* * * * *").unwrap(),
            f,
        ))
        .unwrap();
    assert_eq!(s.next_run(id), Some(start() + chrono::Duration::minutes(1)));
    advance(Duration::from_secs(20 * 60 + 1)).await;
    assert_eq!(n.load(Ordering::SeqCst), 20, "20 ticks in 20 minutes");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_job_keeps_its_schedule() {
    let s = Scheduler::with_virtual_clock(start());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let id = s
        .add(Job::new("flaky", every(1).seconds(), move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                if n.is_multiple_of(2) {
                    panic!("boom {n}");
                }
            }
        }))
        .unwrap();
    advance(Duration::from_millis(10_500)).await;
    let info = s.job(id).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    assert_eq!(
        (info.succeeded, info.failed, info.panicked),
        (5, 5, 5),
        "{info:?}"
    );
    assert!(
        info.last_error.as_deref().unwrap_or("").contains("boom"),
        "{info:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_and_timeouts_are_counted() {
    let s = Scheduler::with_virtual_clock(start());
    let id = s
        .add(Job::new("failing", every(1).seconds(), || async {
            Err::<(), _>(std::io::Error::other("db down"))
        }))
        .unwrap();
    let slow = s
        .add(
            Job::new("slow", every(10).seconds(), || {
                tokio::time::sleep(Duration::from_secs(5))
            })
            .timeout(Duration::from_secs(1)),
        )
        .unwrap();
    advance(Duration::from_millis(12_500)).await;
    let info = s.job(id).unwrap();
    assert_eq!((info.succeeded, info.failed), (0, 12));
    assert_eq!(info.last_error.as_deref(), Some("db down"));
    let slow = s.job(slow).unwrap();
    assert_eq!((slow.succeeded, slow.failed), (0, 1));
    assert!(slow.last_error.unwrap().contains("timed out after 1s"));
}

fn long_job(
    started: Arc<AtomicUsize>,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync + 'static
{
    move || {
        started.fetch_add(1, Ordering::SeqCst);
        Box::pin(tokio::time::sleep(Duration::from_secs(25)))
    }
}

#[tokio::test(start_paused = true)]
async fn overlap_policies() {
    let s = Scheduler::with_virtual_clock(start());
    let skip = Arc::new(AtomicUsize::new(0));
    let allow = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(AtomicUsize::new(0));
    let skip_id = s
        .add(Job::new(
            "skip",
            every(10).seconds(),
            long_job(skip.clone()),
        ))
        .unwrap();
    s.add(Job::new("allow", every(10).seconds(), long_job(allow.clone())).overlap(Overlap::Allow))
        .unwrap();
    s.add(
        Job::new("queue", every(10).seconds(), long_job(queue.clone())).overlap(Overlap::QueueOne),
    )
    .unwrap();
    advance(Duration::from_millis(60_500)).await;
    // Ticks at 10..60 s; each run takes 25 s.
    assert_eq!(
        skip.load(Ordering::SeqCst),
        2,
        "runs at 10 s and 40 s; the rest skipped"
    );
    assert_eq!(s.job(skip_id).unwrap().skipped, 4);
    assert_eq!(allow.load(Ordering::SeqCst), 6, "every tick starts a run");
    assert_eq!(
        queue.load(Ordering::SeqCst),
        3,
        "10 s, then one queued at 35 s, then 60 s"
    );
}

#[tokio::test(start_paused = true)]
async fn pause_resume_remove_and_list() {
    let s = Scheduler::with_virtual_clock(start());
    let (n, f) = counter();
    let id = s.add(Job::new("ticker", every(1).seconds(), f)).unwrap();
    advance(Duration::from_millis(3_500)).await;
    assert_eq!(n.load(Ordering::SeqCst), 3);
    assert!(s.pause(id));
    assert_eq!(s.next_run(id), None);
    advance(Duration::from_secs(5)).await;
    assert_eq!(n.load(Ordering::SeqCst), 3, "paused jobs do not fire");
    assert!(s.resume(id));
    advance(Duration::from_secs(2)).await;
    assert_eq!(n.load(Ordering::SeqCst), 5);
    let list = s.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "ticker");
    assert_eq!(list[0].schedule, "every 1s");
    assert!(s.remove(id));
    assert!(!s.remove(id));
    advance(Duration::from_secs(3)).await;
    assert_eq!(n.load(Ordering::SeqCst), 5, "removed jobs do not fire");
    assert!(s.list().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_running_jobs() {
    let s = Scheduler::with_virtual_clock(start());
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    s.add(Job::new(
        "slow",
        Schedule::after(Duration::from_secs(1)),
        move || {
            let d = d.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                d.fetch_add(1, Ordering::SeqCst);
            }
        },
    ))
    .unwrap();
    advance(Duration::from_secs(2)).await;
    assert_eq!(s.running(), 1);
    let err = s.shutdown(Duration::from_secs(3)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        err.to_string().contains("1 job run(s) still going"),
        "{err}"
    );
    s.shutdown(Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        done.load(Ordering::SeqCst),
        1,
        "shutdown returned after the run finished"
    );
    let (_, f) = counter();
    assert_eq!(
        s.add(Job::new("late", every(1).seconds(), f))
            .unwrap_err()
            .kind(),
        ErrorKind::Unavailable
    );
}

#[tokio::test(start_paused = true)]
async fn misfire_policy_when_the_runtime_was_blocked() {
    let s = Scheduler::with_virtual_clock(start());
    let (skipped, f) = counter();
    let skip_id = s.add(Job::new("skip", every(10).seconds(), f)).unwrap();
    let (run_once, f) = counter();
    s.add(Job::new("run-once", every(10).seconds(), f).misfire(Misfire::RunOnce))
        .unwrap();
    // Jump 35 s at once: the 10 s tick is handled 25 s late.
    tokio::time::advance(Duration::from_secs(35)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(skipped.load(Ordering::SeqCst), 0, "a late tick is skipped");
    assert_eq!(s.job(skip_id).unwrap().skipped, 1);
    assert_eq!(run_once.load(Ordering::SeqCst), 1, "a late tick runs once");
    advance(Duration::from_secs(6)).await;
    assert_eq!(
        skipped.load(Ordering::SeqCst),
        1,
        "back on schedule at 40 s"
    );
}

#[tokio::test(start_paused = true)]
async fn misfire_run_once_catches_up_after_a_restart() {
    use corekit::scheduler::{MemoryRunHistory, RunHistory};
    let history: Arc<dyn RunHistory> = Arc::new(MemoryRunHistory::default());
    let hourly = || Schedule::cron("0 * * * *").unwrap();

    // First process: runs at 13:00, then stops.
    let first = Scheduler::with_virtual_clock(start());
    let (n, f) = counter();
    first
        .add(
            Job::new("report", hourly(), f)
                .misfire(Misfire::RunOnce)
                .history(history.clone()),
        )
        .unwrap();
    advance(Duration::from_secs(3600 + 1)).await;
    assert_eq!(n.load(Ordering::SeqCst), 1);
    first.shutdown(Duration::from_secs(1)).await.unwrap();

    // Restarted three hours later (16:30): the 14:00, 15:00 and 16:00 ticks were missed.
    let later = start() + chrono::Duration::minutes(4 * 60 + 30);
    let second = Scheduler::with_virtual_clock(later);
    let (caught_up, f) = counter();
    second
        .add(
            Job::new("report", hourly(), f)
                .misfire(Misfire::RunOnce)
                .history(history.clone()),
        )
        .unwrap();
    let skipper = Scheduler::with_virtual_clock(later);
    let (skipped, f) = counter();
    skipper
        .add(Job::new("report", hourly(), f).history(history.clone()))
        .unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        caught_up.load(Ordering::SeqCst),
        1,
        "RunOnce runs once for the missed ticks"
    );
    assert_eq!(
        skipped.load(Ordering::SeqCst),
        0,
        "Skip waits for the next tick"
    );
    advance(Duration::from_secs(30 * 60)).await;
    assert_eq!(
        caught_up.load(Ordering::SeqCst),
        2,
        "then back on schedule at 17:00"
    );
    assert_eq!(skipped.load(Ordering::SeqCst), 1);
}

#[test]
fn builder_validates_like_the_environment() {
    let err = Scheduler::builder()
        .timezone("Mars/Base")
        .build()
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string()
            .contains(r#"SCHEDULER_TIMEZONE="Mars/Base""#),
        "{err}"
    );
    assert!(
        Scheduler::builder()
            .timezone("America/New_York")
            .build()
            .is_ok()
    );
}

#[test]
fn config_from_env_names_bad_values() {
    use corekit::config::EnvConfig;
    use corekit::scheduler::SchedulerConfig;
    let load = |vars: &[(&str, &str)]| {
        SchedulerConfig::from_vars(
            "SCHEDULER_",
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    };
    let c = load(&[
        ("SCHEDULER_TIMEZONE", "Europe/Berlin"),
        ("SCHEDULER_SHUTDOWN_TIMEOUT", "5s"),
    ])
    .unwrap();
    assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
    let e = load(&[("SCHEDULER_TIMEZONE", "Mars/Base")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        r#"invalid configuration: SCHEDULER_TIMEZONE="Mars/Base": expected an IANA time zone like UTC or Europe/Berlin"#
    );
    let c = load(&[
        ("SCHEDULER_WORKER_CONCURRENCY", "4"),
        ("SCHEDULER_MAX_ATTEMPTS", "2"),
        ("SCHEDULER_RETRY_BACKOFF", "250ms"),
        ("SCHEDULER_JOB_TIMEOUT", "30s"),
    ])
    .unwrap();
    let q = c.job_queue();
    assert_eq!((q.concurrency, q.max_attempts), (4, 2));
    assert_eq!(q.backoff_base, Duration::from_millis(250));
    assert_eq!(q.timeout, Some(Duration::from_secs(30)));
    let e = load(&[("SCHEDULER_RETRY_BACKOFF", "10m")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            r#"SCHEDULER_RETRY_BACKOFF="10m": expected at most SCHEDULER_RETRY_BACKOFF_MAX (5m)"#
        ),
        "{e}"
    );
    let e = load(&[("SCHEDULER_WORKER_CONCURRENCY", "0")])
        .unwrap_err()
        .to_string();
    assert!(e.contains(r#"SCHEDULER_WORKER_CONCURRENCY="0""#), "{e}");
    let e = load(&[("SCHEDULER_SHUTDOWN_TIMEOUT", "soon")])
        .unwrap_err()
        .to_string();
    assert!(e.contains(r#"SCHEDULER_SHUTDOWN_TIMEOUT="soon""#), "{e}");
}
mod conformance;
mod jobs;
mod redis_jobs;
mod single_instance;

/// Issue 14 #3: an explicit `in_timezone("UTC")` is kept on a scheduler whose zone is another.
#[tokio::test]
async fn an_explicit_utc_zone_beats_the_scheduler_default() {
    use chrono::Timelike;
    let s = Scheduler::builder()
        .timezone("Europe/Berlin")
        .build()
        .unwrap();
    let (_, run) = counter();
    let utc = s
        .add(Job::new(
            "nine-utc",
            Schedule::cron("0 9 * * *")
                .unwrap()
                .in_timezone("UTC")
                .unwrap(),
            run,
        ))
        .unwrap();
    let (_, run) = counter();
    let berlin = s
        .add(Job::new(
            "nine-berlin",
            Schedule::cron("0 9 * * *").unwrap(),
            run,
        ))
        .unwrap();
    let mut next = (None, None);
    for _ in 0..100 {
        next = (s.next_run(utc), s.next_run(berlin));
        if next.0.is_some() && next.1.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (utc_next, berlin_next) = (next.0.unwrap(), next.1.unwrap());
    assert_eq!(utc_next.hour(), 9, "09:00 UTC, got {utc_next}");
    assert!(
        [7, 8].contains(&berlin_next.hour()),
        "09:00 Berlin, got {berlin_next}"
    );
    let listed = s.job(utc).unwrap();
    assert!(!format!("{listed:?}").contains("Berlin"), "{listed:?}");
    s.shutdown(Duration::from_secs(1)).await.unwrap();
}
