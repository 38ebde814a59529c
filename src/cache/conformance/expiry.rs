//! The checks that wait on time: TTLs, expiry, purging, TTL jitter and rate-limit windows.

use super::{cache, unique_prefix};
use crate::cache::{Cache, CacheStore, Purge, RateLimiter, Ttl};
use std::time::Duration;

/// An entry expires after its TTL and is never returned afterwards; `ttl` reports the remaining
/// lifetime, `Persistent` or `None` (missing).
pub async fn ttl_expiry<S: CacheStore>(store: S) {
    let cache = cache(store);
    cache
        .set_with_ttl("short", &"x", Some(Duration::from_millis(300)))
        .await
        .expect("set with a TTL");
    cache
        .set_with_ttl("forever", &"y", None)
        .await
        .expect("set without a TTL");
    match cache.ttl("short").await.expect("ttl") {
        Some(Ttl::Expires(t)) => assert!(
            t <= Duration::from_millis(300) && t > Duration::ZERO,
            "remaining TTL within what was set: {t:?}"
        ),
        other => panic!("expected a TTL, got {other:?}"),
    }
    assert_eq!(
        cache.ttl("forever").await.expect("ttl"),
        Some(Ttl::Persistent)
    );
    assert_eq!(cache.ttl("missing").await.expect("ttl"), None);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        cache.get::<String>("short").await.expect("get"),
        None,
        "expired entry is never returned"
    );
    assert!(
        !cache.exists("short").await.expect("exists"),
        "expired entry does not exist"
    );
    assert_eq!(
        cache.ttl("short").await.expect("ttl"),
        None,
        "expired entry has no TTL"
    );
    assert_eq!(
        cache
            .get::<String>("forever")
            .await
            .expect("get")
            .as_deref(),
        Some("y")
    );
}

/// `set` without a TTL uses the cache's default TTL (one hour here).
pub async fn default_ttl_applies<S: CacheStore>(store: S) {
    let cache = Cache::builder(store)
        .prefix(unique_prefix("ck"))
        .default_ttl(Some(Duration::from_secs(3600)))
        .build()
        .expect("a cache with a default TTL");
    cache.set("k", &1).await.expect("set");
    match cache.ttl("k").await.expect("ttl") {
        Some(Ttl::Expires(t)) => assert!(
            t > Duration::from_secs(3500) && t <= Duration::from_secs(3600),
            "the default TTL: {t:?}"
        ),
        other => panic!("default TTL not applied: {other:?}"),
    }
}

/// `expire` shortens, removes (`None`) and sets the lifetime of an existing key, and reports
/// false for a missing one.
pub async fn expire_changes_lifetime<S: CacheStore>(store: S) {
    let cache = cache(store);
    assert!(
        !cache
            .expire("missing", Some(Duration::from_secs(5)))
            .await
            .expect("expire"),
        "expire on a missing key reports false"
    );
    cache.set_with_ttl("k", &1, None).await.expect("set");
    assert!(
        cache
            .expire("k", Some(Duration::from_millis(200)))
            .await
            .expect("expire"),
        "expire on an existing key reports true"
    );
    assert!(
        matches!(cache.ttl("k").await.expect("ttl"), Some(Ttl::Expires(_))),
        "the key now expires"
    );
    assert!(
        cache.expire("k", None).await.expect("expire"),
        "persisting an existing key"
    );
    assert_eq!(cache.ttl("k").await.expect("ttl"), Some(Ttl::Persistent));
    assert!(
        cache
            .expire("k", Some(Duration::from_millis(100)))
            .await
            .expect("expire")
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        !cache.exists("k").await.expect("exists"),
        "the key expired at its new TTL"
    );
}

/// `set_if_absent` writes only when nothing (or only an expired entry) is there.
pub async fn set_if_absent_is_create_only<S: CacheStore>(store: S) {
    let cache = cache(store);
    assert!(
        cache
            .set_if_absent("lock", &"a", Some(Duration::from_millis(300)))
            .await
            .expect("set_if_absent"),
        "the first writer wins"
    );
    assert!(
        !cache
            .set_if_absent("lock", &"b", None)
            .await
            .expect("set_if_absent"),
        "the second writer loses"
    );
    assert_eq!(
        cache.get::<String>("lock").await.expect("get").as_deref(),
        Some("a"),
        "loser did not overwrite"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        cache
            .set_if_absent("lock", &"c", None)
            .await
            .expect("set_if_absent"),
        "an expired key counts as absent"
    );
}

/// `ping` answers; `delete_expired` removes expired entries on a store that keeps them
/// (`keeps_expired`) and answers `NotNeeded` on one that expires them itself.
pub async fn ping_and_purge<S: CacheStore>(store: S, keeps_expired: bool) {
    let cache = cache(store);
    cache.ping().await.expect("ping");
    cache
        .set_with_ttl("gone", &1, Some(Duration::from_millis(300)))
        .await
        .expect("set");
    // Read it while it lives: a two-tier store holds near what reads bring (under Redis
    // tracking the first copy may be dropped by the write's own invalidation).
    let written = std::time::Instant::now();
    while written.elapsed() < Duration::from_millis(150) {
        cache.get::<i32>("gone").await.expect("get");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    match cache.delete_expired().await.expect("delete_expired") {
        // Not `n >= 1`: a two-tier store's near copy may already be gone (an invalidation, a
        // cleared tier); the memory store's own tests count it.
        Purge::Removed(n) => assert!(
            keeps_expired,
            "purged {n}; this store keeps expired entries: {keeps_expired}"
        ),
        Purge::NotNeeded => assert!(
            !keeps_expired,
            "a store that keeps expired entries must purge them"
        ),
    }
}

/// A fixed-window [`RateLimiter`] over the cache: the limit holds per key, and a new window
/// starts after the old one ends.
pub async fn rate_limiter<S: CacheStore>(store: S) {
    let limiter = RateLimiter::new(cache(store), 3, Duration::from_millis(500))
        .expect("a rate limiter of 3 per 500 ms");
    for i in 0..3 {
        let r = limiter.check("ip-1").await.expect("check");
        assert!(r.allowed, "request {i} within the limit");
        assert_eq!(r.remaining, 2 - i, "remaining after request {i}");
    }
    let r = limiter.check("ip-1").await.expect("check");
    assert!(
        !r.allowed && r.remaining == 0,
        "the fourth request is refused: {r:?}"
    );
    assert!(
        r.reset_after <= Duration::from_millis(500),
        "reset within the window: {:?}",
        r.reset_after
    );
    assert!(
        limiter.check("ip-2").await.expect("check").allowed,
        "keys are limited separately"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        limiter.check("ip-1").await.expect("check").allowed,
        "a new window starts"
    );
}

/// With a TTL jitter of 50%, TTLs spread between half and all of what was asked.
pub async fn ttl_jitter_spreads_expiry<S: CacheStore>(store: S) {
    let cache = Cache::builder(store)
        .prefix(unique_prefix("ck"))
        .ttl_jitter(0.5)
        .build()
        .expect("a cache with TTL jitter");
    let mut ttls = Vec::new();
    for i in 0..40 {
        let key = format!("j{i}");
        cache
            .set_with_ttl(&key, &i, Some(Duration::from_secs(1000)))
            .await
            .expect("set");
        match cache.ttl(&key).await.expect("ttl") {
            Some(Ttl::Expires(t)) => ttls.push(t),
            other => panic!("{key}: expected a TTL, got {other:?}"),
        }
    }
    let (Some(min), Some(max)) = (ttls.iter().min(), ttls.iter().max()) else {
        panic!("no TTLs read back");
    };
    assert!(
        *min >= Duration::from_secs(499),
        "never more than the jitter off: {min:?}"
    );
    assert!(
        *max <= Duration::from_secs(1000),
        "never above the asked TTL: {max:?}"
    );
    assert!(
        *max - *min > Duration::from_secs(50),
        "TTLs are spread: {min:?}..{max:?}"
    );
}
