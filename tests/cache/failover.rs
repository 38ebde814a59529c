//! A Redis primary killed under load, on the deployments that replace it (Cluster, Sentinel):
//! one shared check, so both are held to the same bound.

use crate::support;
use corekit::cache::{Cache, RedisStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// (when it ended, how long it took, the error if any).
type Call = (Instant, Duration, Option<corekit::Error>);

/// Runs 8 tasks of sets and gets on `url` for a second, then `fault` (blocking: it kills the
/// primary and returns once a replica was promoted), then 6 s more. Asserts that every failure
/// was retryable and bounded by the command timeout, that none came 5 s or more after the
/// promotion, and that the same handle then serves every key. Returns how many calls failed.
pub async fn load_through(url: &str, fault: impl FnOnce()) -> usize {
    let timeout = Duration::from_millis(500);
    let store = RedisStore::builder(url)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(timeout)
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(store)
        .prefix(support::unique("failover"))
        .build()
        .unwrap();
    let keys: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();

    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let (cache, keys, calls, stop) = (cache.clone(), keys.clone(), calls.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let key = &keys[i % keys.len()];
                let started = Instant::now();
                let result = if i % 2 == 0 {
                    cache.set(key, &i).await
                } else {
                    cache.get::<usize>(key).await.map(drop)
                };
                let took = started.elapsed();
                calls
                    .lock()
                    .unwrap()
                    .push((Instant::now(), took, result.err()));
                i += 8;
                if took < Duration::from_millis(2) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = Instant::now();
    // Blocking polls of redis-cli: off the workers the tasks run on.
    tokio::task::block_in_place(fault);
    let promoted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("no task panicked");
    }

    let calls = std::mem::take(&mut *calls.lock().unwrap());
    let before = calls
        .iter()
        .filter(|(at, _, e)| *at < killed_at && e.is_none())
        .count();
    assert!(before > 0, "calls succeeded before the kill");
    let failed: Vec<&Call> = calls.iter().filter(|(_, _, e)| e.is_some()).collect();
    for (_, took, error) in &failed {
        let error = error.as_ref().unwrap();
        assert!(
            error.is_retryable(),
            "{error} ({:?}) is not retryable",
            error.kind()
        );
        assert!(
            *took < timeout + Duration::from_millis(1500),
            "a call took {took:?}: {error}"
        );
    }
    let last_failure = failed.iter().map(|(at, _, _)| *at).max();
    if let Some(last) = last_failure {
        assert!(
            last < promoted_at + Duration::from_secs(5),
            "calls still failed {:?} after the promotion",
            last - promoted_at
        );
    }
    let after = calls
        .iter()
        .filter(|(at, _, _)| *at > promoted_at + Duration::from_secs(5))
        .count();
    assert!(after > 0, "calls ran after the recovery window");
    eprintln!(
        "under load: {} calls, {} failed (all retryable), fault over {:?} after it began, \
         last failure {:?} after it began",
        calls.len(),
        failed.len(),
        promoted_at - killed_at,
        last_failure.map(|l| l - killed_at)
    );

    // Every key is served by the same handle.
    for key in &keys {
        cache.set(key, &1u8).await.unwrap();
        assert_eq!(cache.get::<u8>(key).await.unwrap(), Some(1), "{key}");
    }
    failed.len()
}
