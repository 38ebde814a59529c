//! A Redis that goes away: bounded, retryable errors, then recovery without a new client.
//! Runs its own redis-server on a free port so it can kill and restart it.

use crate::support::{self, RedisProcess};
use corekit::cache::{Cache, RedisStore};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_gives_bounded_retryable_errors_then_recovers() {
    let port = support::free_port();
    let server = RedisProcess::start(port);
    let timeout = Duration::from_millis(500);
    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(timeout)
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(store).prefix("faults").build().unwrap();
    cache.set("k", &1).await.unwrap();

    server.kill();
    for i in 0..5 {
        let started = Instant::now();
        let result = cache.get::<i32>("k").await;
        let took = started.elapsed();
        let err = result.expect_err("a dead server cannot answer");
        assert!(err.is_retryable(), "call {i}: {err} ({:?})", err.kind());
        assert!(
            took < timeout + Duration::from_millis(1500),
            "call {i} took {took:?}: not bounded"
        );
    }
    assert!(cache.stats().errors >= 5);

    let _server = RedisProcess::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match cache.set("k", &2).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                assert!(e.is_retryable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery within 15 s: {e}"),
        }
    }
    assert_eq!(
        cache.get::<i32>("k").await.unwrap(),
        Some(2),
        "same handle works again"
    );
}

/// A server that accepts connections but never answers (SIGSTOP): calls still end within the
/// bound, and the store recovers once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_gives_bounded_errors_then_recovers() {
    let port = support::free_port();
    let server = RedisProcess::start(port);
    let timeout = Duration::from_millis(500);
    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .command_timeout(timeout)
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(store).prefix("hung").build().unwrap();
    cache.set("k", &1).await.unwrap();

    server.signal("-STOP");
    for i in 0..3 {
        let started = Instant::now();
        let result = cache.get::<i32>("k").await;
        let took = started.elapsed();
        let err = result.expect_err("a stopped server cannot answer");
        assert!(err.is_retryable(), "call {i}: {err} ({:?})", err.kind());
        assert!(
            took < timeout * 2 + Duration::from_millis(1000),
            "call {i} took {took:?}"
        );
    }
    server.signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match cache.get::<i32>("k").await {
            Ok(v) => {
                assert_eq!(v, Some(1));
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert!(e.is_retryable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery within 15 s: {e}"),
        }
    }
}

/// Issue 14 #12: a tiered `set` that times out on a paused Redis (the write lands when it
/// resumes) leaves no stale near copy, here or on another instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiered_set_that_times_out_leaves_no_stale_near_copy() {
    use corekit::cache::{MemoryStore, TieredStore};
    let port = support::free_port();
    let server = RedisProcess::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let channel = support::unique("inval");
    let mut caches = Vec::new();
    for _ in 0..2 {
        let far = RedisStore::builder(&url)
            .command_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap();
        let store = TieredStore::builder(MemoryStore::new(100), far)
            .near_ttl(Duration::from_secs(60))
            .channel(channel.clone())
            .build()
            .await
            .unwrap();
        caches.push(Cache::builder(store).prefix("t12").build().unwrap());
    }
    caches[0].set("k", "v1").await.unwrap();
    for c in &caches {
        assert_eq!(c.get::<String>("k").await.unwrap().as_deref(), Some("v1"));
    }
    server.signal("-STOP");
    let e = caches[0]
        .set("k", "v2")
        .await
        .expect_err("a paused server cannot answer");
    assert!(e.is_retryable(), "{e}");
    server.signal("-CONT");
    // Redis now holds v2 (the write landed on resume); no instance may serve v1 from near.
    let deadline = Instant::now() + Duration::from_secs(5);
    for (i, c) in caches.iter().enumerate() {
        loop {
            match c.get::<String>("k").await {
                Ok(v) if v.as_deref() == Some("v2") => break,
                Ok(v) if Instant::now() > deadline => panic!("instance {i} serves {v:?}"),
                Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// Issue 15: connecting to a server that accepts but never answers fails at the connect
/// timeout, naming it, not at a shorter internal timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_hung_redis_fails_at_the_connect_timeout() {
    let port = support::free_port();
    let server = RedisProcess::start(port);
    server.signal("-STOP");
    let e = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(3))
        .command_timeout(Duration::from_millis(200))
        .build()
        .await
        .expect_err("a stopped server cannot answer");
    server.signal("-CONT");
    assert!(e.is_retryable(), "{e}");
    assert!(
        e.to_string().contains("within 3s"),
        "the connect timeout bounded it: {e}"
    );
}

/// Fail-safe through a Redis that is down, then back empty: `get_or_refresh` returns this
/// process's last good copy (fresh, then stale) while the store fails and the loader fails,
/// a key never loaded gets the store's retryable error, and once Redis is back (empty) with
/// the loader still failing the copy is still served; a working loader then refills Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_serves_the_last_good_copy_while_redis_is_down() {
    let port = support::free_port();
    let server = RedisProcess::start(port);
    let store = RedisStore::builder(format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(store)
        .prefix("failsafe")
        .max_stale(Duration::from_secs(60))
        .build()
        .unwrap();
    let ttl = Some(Duration::from_millis(500));
    let loaded: u32 = cache
        .get_or_refresh("k", ttl, || async { Ok::<_, std::io::Error>(1) })
        .await
        .unwrap();
    assert_eq!(loaded, 1);
    let failing = || async { Err::<u32, _>(std::io::Error::other("database down too")) };

    server.kill();
    let value = cache.get_or_refresh("k", ttl, failing).await;
    assert_eq!(value.unwrap(), 1, "the last good copy while Redis is down");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stale_before = cache.stats().stale_hits;
    let value = cache.get_or_refresh("k", ttl, failing).await;
    assert_eq!(value.unwrap(), 1, "the copy, stale, while Redis is down");
    assert_eq!(
        cache.stats().stale_hits,
        stale_before + 1,
        "flagged stale: {:?}",
        cache.stats()
    );
    let e = cache
        .get_or_refresh("other", ttl, failing)
        .await
        .expect_err("no copy of a key never loaded");
    assert!(e.is_retryable(), "the store's error: {e}");

    let _server = RedisProcess::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while cache.ping().await.is_err() {
        assert!(Instant::now() < deadline, "no reconnect within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failures = cache.stats().load_failures;
    let value = cache.get_or_refresh("k", ttl, failing).await;
    assert_eq!(
        value.unwrap(),
        1,
        "Redis back empty, loader failing: the copy"
    );
    assert_eq!(
        cache.stats().load_failures,
        failures + 1,
        "the loader ran against the empty store"
    );
    let long = Some(Duration::from_secs(60));
    let value: u32 = cache
        .get_or_refresh("k", long, || async { Ok::<_, std::io::Error>(2) })
        .await
        .unwrap();
    assert_eq!(value, 2, "a working loader refills Redis");
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(2));
    cache.delete("k").await.unwrap();
    let e = cache
        .get_or_refresh("k", long, failing)
        .await
        .expect_err("a deleted key is not brought back by its copy");
    assert!(e.to_string().contains("database down too"), "{e}");
}
