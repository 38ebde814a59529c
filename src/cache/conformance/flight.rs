//! `get_or_set` when its leader fails hard: a loader that panics, a leader that is cancelled.
//! Neither may leave the key stuck.

use super::cache;
use crate::cache::CacheStore;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Ten concurrent misses whose first loader run panics: that caller's task panics, the nine
/// others get the value from one more run (the loader runs twice in all), and the key is
/// cached afterwards.
pub async fn a_panicking_loader_does_not_poison_the_key<S: CacheStore + Clone>(store: S) {
    let cache = cache(store);
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_set("k", None, || async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                            panic!("the first loader run panics (on purpose)");
                        }
                        Ok::<_, std::io::Error>(7)
                    })
                    .await
            })
        })
        .collect();
    let (mut panicked, mut loaded) = (0, 0);
    for t in tasks {
        match t.await {
            Err(e) if e.is_panic() => panicked += 1,
            Err(e) => panic!("a task failed otherwise: {e}"),
            Ok(r) => {
                assert_eq!(r.expect("get_or_set after the panic"), 7);
                loaded += 1;
            }
        }
    }
    assert_eq!(
        (panicked, loaded),
        (1, 9),
        "one caller panicked, the rest loaded"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one panicking run, one good one"
    );
    assert_eq!(cache.get::<i32>("k").await.expect("get"), Some(7), "cached");
}

/// A leader cancelled mid-load (its caller's timeout): a waiter takes over with its own loader
/// and the key is cached afterwards.
pub async fn a_cancelled_leader_hands_over<S: CacheStore + Clone>(store: S) {
    let cache = cache(store);
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_millis(100),
                cache.get_or_set("k", None, || async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    Ok::<_, std::io::Error>(1)
                }),
            )
            .await
        })
    };
    // The waiter arrives while the leader loads.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let waiter = cache.get_or_set("k", None, || async { Ok::<_, std::io::Error>(2) });
    let value = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter is not stuck behind the cancelled leader")
        .expect("get_or_set");
    assert_eq!(value, 2, "the waiter's own loader ran");
    assert!(
        leader.await.expect("leader task").is_err(),
        "the leader was cancelled by its timeout"
    );
    assert_eq!(cache.get::<i32>("k").await.expect("get"), Some(2), "cached");
}

/// A loader that hangs under a 200 ms loader timeout: the leader and the four callers waiting
/// on it get a retryable `Timeout` within about a second, nothing is stored, and the next call
/// loads afresh.
pub async fn a_hung_loader_is_cut_at_the_loader_timeout<S: CacheStore + Clone>(store: S) {
    let cache = crate::cache::Cache::builder(store)
        .prefix(super::unique_prefix("ck"))
        .loader_timeout(Some(Duration::from_millis(200)))
        .build()
        .expect("cache");
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_set("k", None, || async {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok::<_, std::io::Error>(1)
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        let e = t
            .await
            .expect("no panic")
            .expect_err("a hung loader cannot answer");
        assert_eq!(e.kind(), crate::ErrorKind::Timeout, "{e}");
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("200ms"), "names the bound: {e}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut at the timeout, not after the loader's 30 s"
    );
    assert_eq!(
        cache.get::<i32>("k").await.expect("get"),
        None,
        "nothing stored"
    );
    let v = cache
        .get_or_set("k", None, || async { Ok::<_, std::io::Error>(2) })
        .await
        .expect("a later load");
    assert_eq!(v, 2);
}
