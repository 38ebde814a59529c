//! `get_or_refresh`: refresh-ahead, stale-while-revalidate, soft timeout and fail-safe.
//!
//! Loaders wait on a gate the check opens itself, so "readers keep the current value while
//! the refresh runs" does not depend on how fast the machine is.

use super::unique_prefix;
use crate::ErrorKind;
use crate::cache::{Cache, CacheBuilder, CacheStore, Json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

fn builder<S: CacheStore>(store: S, name: &str) -> CacheBuilder<S, Json> {
    Cache::builder(store).prefix(unique_prefix(name))
}

/// A loader that counts its runs and returns `value` once the gate opens.
fn gated(
    runs: &Arc<AtomicUsize>,
    gate: &Arc<Semaphore>,
    value: u32,
) -> impl FnOnce() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<u32, std::io::Error>> + Send>,
> + Send
+ 'static {
    let (runs, gate) = (runs.clone(), gate.clone());
    move || {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let _open = gate.acquire().await;
            Ok(value)
        })
    }
}

async fn ok(value: u32) -> Result<u32, std::io::Error> {
    Ok(value)
}

/// Loads 1 at `k` with `ttl` (300 ms in these checks) and waits until that TTL has passed.
async fn past_ttl<S: CacheStore>(cache: &Cache<S, Json>, ttl: Option<Duration>) {
    let first: u32 = cache
        .get_or_refresh("k", ttl, || ok(1))
        .await
        .expect("first load");
    assert_eq!(first, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// Polls `key` with `get` until it reads `want`, for at most 10 s.
async fn settles<S: CacheStore>(cache: &Cache<S, Json>, key: &str, want: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now: Option<u32> = cache.get(key).await.expect("get");
        if now == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {now:?} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Past the refresh point, 100 concurrent readers all get the current value at once and one
/// loader refreshes it in the background; then every read has the new value.
pub async fn refresh_ahead_runs_one_loader_for_many_readers<S: CacheStore + Clone>(store: S) {
    let cache = builder(store, "ck-ahead")
        .refresh_ahead(0.25)
        .build()
        .expect("cache");
    // Due for a refresh after 1 s; fresh for 3 s more, far longer than 100 reads take.
    let ttl = Some(Duration::from_secs(4));
    let first: u32 = cache
        .get_or_refresh("hot", ttl, || ok(1))
        .await
        .expect("first load");
    assert_eq!(first, 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let readers: Vec<_> = (0..100)
        .map(|_| {
            let (cache, loader) = (cache.clone(), gated(&runs, &gate, 2));
            tokio::spawn(async move { cache.get_or_refresh("hot", ttl, loader).await })
        })
        .collect();
    for reader in readers {
        let value = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("a reader waited on the refresh instead of getting the current value")
            .expect("reader task")
            .expect("get_or_refresh");
        assert_eq!(
            value, 1,
            "readers keep the current value while it refreshes"
        );
    }
    gate.add_permits(1_000);
    settles(&cache, "hot", 2, "the refreshed value").await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "one loader for 100 readers");
    assert_eq!(cache.stats().loads, 2, "the first load and one refresh");
}

/// Past its TTL but within `max_stale`, a value is still returned at once (soft timeout 0)
/// while one refresh runs; a plain `get` misses it.
pub async fn stale_is_served_while_one_refresh_runs<S: CacheStore + Clone>(store: S) {
    let cache = builder(store, "ck-swr")
        .max_stale(Duration::from_secs(30))
        .build()
        .expect("cache");
    let ttl = Some(Duration::from_millis(300));
    past_ttl(&cache, ttl).await;
    assert_eq!(
        cache.get::<u32>("k").await.expect("get"),
        None,
        "past its TTL, get misses"
    );
    assert!(
        cache.exists("k").await.expect("exists"),
        "kept for the stale window"
    );
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    for _ in 0..20 {
        let value = tokio::time::timeout(
            Duration::from_secs(10),
            cache.get_or_refresh("k", ttl, gated(&runs, &gate, 2)),
        )
        .await
        .expect("a stale read waited on the refresh")
        .expect("get_or_refresh");
        assert_eq!(value, 1, "the stale value while the refresh runs");
    }
    assert!(cache.stats().stale_hits >= 20, "{:?}", cache.stats());
    gate.add_permits(1_000);
    settles(&cache, "k", 2, "the refreshed value").await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one refresh for 20 stale reads"
    );
}

/// With a soft timeout, a stale read waits for a refresh that finishes within it and gets
/// the new value; one that hangs gets the stale value when the soft timeout passes. (Two
/// handles on the same keys: a generous soft timeout for the first case, so a slow machine
/// cannot turn it into the second.)
pub async fn a_soft_timeout_waits_for_the_refresh_then_serves_stale<S: CacheStore + Clone>(
    store: S,
) {
    let prefix = unique_prefix("ck-soft");
    let handle = |soft: Duration| {
        Cache::builder(store.clone())
            .prefix(prefix.clone())
            .max_stale(Duration::from_secs(60))
            .soft_timeout(soft)
            .build()
            .expect("cache")
    };
    let (patient, hasty) = (
        handle(Duration::from_secs(30)),
        handle(Duration::from_millis(300)),
    );
    let ttl = Some(Duration::from_millis(300));
    past_ttl(&patient, ttl).await;
    let quick: u32 = patient
        .get_or_refresh("k", ttl, || ok(2))
        .await
        .expect("refresh");
    assert_eq!(quick, 2, "a refresh within the soft timeout is waited for");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (runs, gate) = (Arc::new(AtomicUsize::new(0)), Arc::new(Semaphore::new(0)));
    let late: u32 = hasty
        .get_or_refresh("k", ttl, gated(&runs, &gate, 3))
        .await
        .expect("stale read");
    assert_eq!(late, 2, "past the soft timeout, the stale value");
    assert!(hasty.stats().stale_hits >= 1, "{:?}", hasty.stats());
    gate.add_permits(1);
    settles(&hasty, "k", 3, "the hung refresh's value, once it ends").await;
}

/// When the loader fails or passes the loader timeout, a stale value is returned instead of
/// the error, and the failure is counted; with nothing to fall back on, the error is returned.
pub async fn fail_safe_returns_stale_when_the_loader_fails<S: CacheStore + Clone>(store: S) {
    let cache = builder(store.clone(), "ck-failsafe")
        .max_stale(Duration::from_secs(30))
        .soft_timeout(Duration::from_secs(5))
        .loader_timeout(Some(Duration::from_millis(200)))
        .build()
        .expect("cache");
    let ttl = Some(Duration::from_millis(300));
    past_ttl(&cache, ttl).await;
    let failing = || async { Err::<u32, _>(std::io::Error::other("database down")) };
    let value = cache
        .get_or_refresh("k", ttl, failing)
        .await
        .expect("fail-safe");
    assert_eq!(value, 1, "the stale value when the loader fails");
    let hung = || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<u32, std::io::Error>(9)
    };
    let value = cache
        .get_or_refresh("k", ttl, hung)
        .await
        .expect("fail-safe");
    assert_eq!(value, 1, "the stale value when the loader times out");
    let stats = cache.stats();
    assert_eq!(stats.load_failures, 2, "{stats:?}");
    assert!(stats.stale_hits >= 2, "{stats:?}");

    let e = cache
        .get_or_refresh("never-loaded", ttl, failing)
        .await
        .expect_err("nothing to fall back on");
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(e.to_string().contains("database down"), "{e}");

    // Without a stale window, a value past its TTL is gone.
    let strict = builder(store, "ck-strict").build().expect("cache");
    past_ttl(&strict, ttl).await;
    let e = strict
        .get_or_refresh("k", ttl, failing)
        .await
        .expect_err("no max_stale, no stale value");
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
}

/// A loader that panics fails its callers (not the whole task) and leaves the key loadable;
/// a value written by `set` is returned without loading.
pub async fn a_panicking_refresh_does_not_poison_the_key<S: CacheStore + Clone>(store: S) {
    let cache = builder(store, "ck-refresh-panic").build().expect("cache");
    let e = cache
        .get_or_refresh("k", None, || async {
            if true {
                panic!("the loader panics (on purpose)");
            }
            Ok::<u32, std::io::Error>(0)
        })
        .await
        .expect_err("a panicking loader");
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(e.to_string().contains("panicked"), "{e}");
    let value: u32 = cache
        .get_or_refresh("k", None, || ok(5))
        .await
        .expect("the next load");
    assert_eq!(value, 5, "the key is not poisoned");
    cache.set("plain", &7u32).await.expect("set");
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = {
        let runs = runs.clone();
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<u32, std::io::Error>(8)
        }
    };
    let value: u32 = cache
        .get_or_refresh("plain", None, counted)
        .await
        .expect("read a set value");
    assert_eq!(
        (value, runs.load(Ordering::SeqCst)),
        (7, 0),
        "set's value, no load"
    );
}
