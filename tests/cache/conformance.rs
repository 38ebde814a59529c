//! The behaviour every cache backend must have, written once over `Cache<S>`.
//!
//! Each function takes a fresh cache (its own namespace on a shared server) and panics with a
//! message naming what broke. `suite!` turns them into one `#[tokio::test]` each per backend.

use corekit::ErrorKind;
use corekit::cache::{Cache, CacheStore, Json, Purge, RateLimiter, Ttl};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn ada() -> User {
    User {
        id: 1,
        name: "Ada".into(),
        tags: vec!["math".into(), "engines".into()],
    }
}

pub async fn typed_round_trip<S: CacheStore>(cache: Cache<S, Json>) {
    assert_eq!(
        cache.get::<User>("u:1").await.unwrap(),
        None,
        "fresh cache is empty"
    );
    cache.set("u:1", &ada()).await.unwrap();
    assert_eq!(cache.get::<User>("u:1").await.unwrap(), Some(ada()));
    let grace = User {
        id: 1,
        name: "Grace".into(),
        tags: vec![],
    };
    cache.set("u:1", &grace).await.unwrap();
    assert_eq!(
        cache.get::<User>("u:1").await.unwrap(),
        Some(grace),
        "set overwrites"
    );
}

/// Keys that are not UTF-8 (hashes, packed ids) are stored byte for byte, apart from text keys
/// with the same characters, and every operation takes them.
pub async fn binary_keys<S: CacheStore>(cache: Cache<S, Json>) {
    let raw: &[u8] = b"\xff\x00bin\xfe key*?";
    let other: Vec<u8> = vec![0xff, 0x00, b'b', b'i', b'n', 0xfd];
    cache.set(raw, &1).await.unwrap();
    cache.set(&other, &2).await.unwrap();
    cache.set("\u{ff}\0bin", &3).await.unwrap();
    assert_eq!(cache.get::<i32>(raw).await.unwrap(), Some(1));
    assert_eq!(cache.get::<i32>(&other).await.unwrap(), Some(2));
    assert_eq!(
        cache.get::<i32>("\u{ff}\0bin").await.unwrap(),
        Some(3),
        "text stays apart"
    );
    assert!(cache.exists(raw).await.unwrap());
    assert_eq!(cache.incr(&[0x80u8, 0x81][..], 5).await.unwrap(), 5);
    assert_eq!(
        cache
            .get_many::<i32>(&[raw, other.as_slice()])
            .await
            .unwrap(),
        vec![Some(1), Some(2)]
    );
    // A prefix that is itself not UTF-8 removes exactly the keys under it.
    assert_eq!(cache.delete_prefix(&[0xffu8, 0x00][..]).await.unwrap(), 2);
    assert_eq!(cache.get::<i32>(raw).await.unwrap(), None);
    assert_eq!(cache.get::<i32>("\u{ff}\0bin").await.unwrap(), Some(3));
    let got: i32 = cache
        .get_or_set(&[0xc0u8, 0xc1][..], None, || async {
            Ok::<_, std::io::Error>(9)
        })
        .await
        .unwrap();
    assert_eq!(got, 9);
    assert!(cache.delete(&[0xc0u8, 0xc1][..]).await.unwrap());
    // A value that does not decode names its binary key, in hex.
    cache
        .set_bytes(&[0xeeu8, 0x01][..], "not json".into(), None)
        .await
        .unwrap();
    let e = cache.get::<i32>(&[0xeeu8, 0x01][..]).await.unwrap_err();
    assert!(e.to_string().contains("0xee01"), "{e}");
}

pub async fn unicode_keys_and_binary_values<S: CacheStore>(cache: Cache<S, Json>) {
    let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let keys = [
        "ключ/🔑 with spaces",
        "tab\tand\nnewline",
        "percent%2e%2e",
        "*?[glob]\\",
    ];
    for key in keys {
        cache
            .set_bytes(key, all_bytes.clone().into(), None)
            .await
            .unwrap_or_else(|e| panic!("set {key:?}: {e}"));
        let got = cache.get_bytes(key).await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&all_bytes[..]),
            "binary value byte-exact under {key:?}"
        );
    }
    cache
        .set_bytes("empty", bytes::Bytes::new(), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get_bytes("empty").await.unwrap().as_deref(),
        Some(&b""[..]),
        "empty value is not a miss"
    );
}

pub async fn delete_and_exists<S: CacheStore>(cache: Cache<S, Json>) {
    assert!(!cache.exists("k").await.unwrap());
    assert!(
        !cache.delete("k").await.unwrap(),
        "deleting a missing key reports false"
    );
    cache.set("k", &1).await.unwrap();
    assert!(cache.exists("k").await.unwrap());
    assert!(cache.delete("k").await.unwrap());
    assert!(!cache.exists("k").await.unwrap());
    assert_eq!(cache.get::<i32>("k").await.unwrap(), None);
}

pub async fn ttl_expiry<S: CacheStore>(cache: Cache<S, Json>) {
    cache
        .set_with_ttl("short", &"x", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    cache.set_with_ttl("forever", &"y", None).await.unwrap();
    match cache.ttl("short").await.unwrap() {
        Some(Ttl::Expires(t)) => assert!(
            t <= Duration::from_millis(300) && t > Duration::ZERO,
            "{t:?}"
        ),
        other => panic!("expected a TTL, got {other:?}"),
    }
    assert_eq!(cache.ttl("forever").await.unwrap(), Some(Ttl::Persistent));
    assert_eq!(cache.ttl("missing").await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        cache.get::<String>("short").await.unwrap(),
        None,
        "expired entry is never returned"
    );
    assert!(!cache.exists("short").await.unwrap());
    assert_eq!(cache.ttl("short").await.unwrap(), None);
    assert_eq!(
        cache.get::<String>("forever").await.unwrap().as_deref(),
        Some("y")
    );
}

pub async fn default_ttl_applies<S: CacheStore>(cache: Cache<S, Json>) {
    // The caller built this cache with a 1-hour default TTL.
    cache.set("k", &1).await.unwrap();
    match cache.ttl("k").await.unwrap() {
        Some(Ttl::Expires(t)) => assert!(
            t > Duration::from_secs(3500) && t <= Duration::from_secs(3600),
            "{t:?}"
        ),
        other => panic!("default TTL not applied: {other:?}"),
    }
}

pub async fn expire_changes_lifetime<S: CacheStore>(cache: Cache<S, Json>) {
    assert!(
        !cache
            .expire("missing", Some(Duration::from_secs(5)))
            .await
            .unwrap()
    );
    cache.set_with_ttl("k", &1, None).await.unwrap();
    assert!(
        cache
            .expire("k", Some(Duration::from_millis(200)))
            .await
            .unwrap()
    );
    assert!(matches!(
        cache.ttl("k").await.unwrap(),
        Some(Ttl::Expires(_))
    ));
    assert!(
        cache.expire("k", None).await.unwrap(),
        "persisting an existing key"
    );
    assert_eq!(cache.ttl("k").await.unwrap(), Some(Ttl::Persistent));
    assert!(
        cache
            .expire("k", Some(Duration::from_millis(100)))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!cache.exists("k").await.unwrap());
}

pub async fn set_if_absent_is_create_only<S: CacheStore>(cache: Cache<S, Json>) {
    assert!(
        cache
            .set_if_absent("lock", &"a", Some(Duration::from_millis(300)))
            .await
            .unwrap()
    );
    assert!(!cache.set_if_absent("lock", &"b", None).await.unwrap());
    assert_eq!(
        cache.get::<String>("lock").await.unwrap().as_deref(),
        Some("a"),
        "loser did not overwrite"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        cache.set_if_absent("lock", &"c", None).await.unwrap(),
        "an expired key counts as absent"
    );
}

pub async fn set_if_absent_has_one_winner<S: CacheStore>(cache: Cache<S, Json>) {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            cache.set_if_absent("race", &i, None).await.unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(
        winners, 1,
        "exactly one of 50 concurrent create-only writers wins"
    );
}

pub async fn counters<S: CacheStore>(cache: Cache<S, Json>) {
    assert_eq!(
        cache.incr("n", 1).await.unwrap(),
        1,
        "a missing counter starts at 0"
    );
    assert_eq!(cache.incr("n", 5).await.unwrap(), 6);
    assert_eq!(cache.decr("n", 2).await.unwrap(), 4);
    assert_eq!(
        cache.get::<i64>("n").await.unwrap(),
        Some(4),
        "counters read back as integers"
    );
    cache.set("word", &"hello").await.unwrap();
    let err = cache.incr("word", 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            cache.incr("concurrent", 1).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        cache.get::<i64>("concurrent").await.unwrap(),
        Some(50),
        "no increment lost"
    );
}

pub async fn batch_operations<S: CacheStore>(cache: Cache<S, Json>) {
    cache
        .set_many(&[("a", 1), ("b", 2), ("c", 3)])
        .await
        .unwrap();
    let got = cache
        .get_many::<i32>(&["a", "missing", "c", "b"])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![Some(1), None, Some(3), Some(2)],
        "order kept, misses as None"
    );
    assert_eq!(
        cache.get_many::<i32>(&[] as &[&str]).await.unwrap(),
        Vec::<Option<i32>>::new()
    );
    assert_eq!(cache.delete_many(&["a", "b", "missing"]).await.unwrap(), 2);
    assert_eq!(
        cache.get_many::<i32>(&["a", "b", "c"]).await.unwrap(),
        vec![None, None, Some(3)]
    );
}

pub async fn delete_prefix_and_clear<S: CacheStore>(cache: Cache<S, Json>) {
    for i in 0..1200 {
        cache.set(&format!("sess:{i}"), &i).await.unwrap();
    }
    cache.set("user:1", &1).await.unwrap();
    cache.set("sess*literal", &1).await.unwrap();
    assert_eq!(
        cache.delete_prefix("sess:").await.unwrap(),
        1200,
        "more than one SCAN page"
    );
    assert_eq!(cache.get::<i32>("sess:7").await.unwrap(), None);
    assert_eq!(cache.get::<i32>("user:1").await.unwrap(), Some(1));
    assert_eq!(
        cache.get::<i32>("sess*literal").await.unwrap(),
        Some(1),
        "glob characters match literally"
    );
    assert_eq!(cache.clear().await.unwrap(), 2);
    assert_eq!(cache.get::<i32>("user:1").await.unwrap(), None);
}

/// `a` and `b` share one store but have different prefixes or versions.
pub async fn namespaces_isolate<S: CacheStore>(a: Cache<S, Json>, b: Cache<S, Json>) {
    assert_ne!(a.namespace(), b.namespace());
    a.set("k", &"from a").await.unwrap();
    b.set("k", &"from b").await.unwrap();
    assert_eq!(
        a.get::<String>("k").await.unwrap().as_deref(),
        Some("from a")
    );
    assert_eq!(
        b.get::<String>("k").await.unwrap().as_deref(),
        Some("from b")
    );
    assert_eq!(a.clear().await.unwrap(), 1);
    assert_eq!(
        b.get::<String>("k").await.unwrap().as_deref(),
        Some("from b"),
        "clearing a left b alone"
    );
}

pub async fn invalid_input_is_rejected<S: CacheStore>(cache: Cache<S, Json>) {
    // This cache was built with max_key_len 64 and max_value_size 1024.
    let before = cache.stats();
    let err = cache.set("", &1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("empty"), "{err}");
    let err = cache.get::<i32>(&"k".repeat(65)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("65 bytes"), "{err}");
    let err = cache.set("big", &"x".repeat(2000)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("over the 1024-byte limit"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        cache.stats().errors,
        before.errors,
        "rejected before any backend call"
    );
    assert!(!cache.exists("big").await.unwrap());
}

pub async fn corrupt_value_names_the_key<S: CacheStore>(cache: Cache<S, Json>) {
    cache
        .set_bytes("bad", bytes::Bytes::from_static(b"{not json"), None)
        .await
        .unwrap();
    let err = cache.get::<User>("bad").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(err.to_string().contains("\"bad\""), "names the key: {err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the decode error"
    );
}

pub async fn single_flight<S: CacheStore>(cache: Cache<S, Json>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let cache = cache.clone();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_set("report", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(ada())
                })
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), ada());
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "100 concurrent misses ran the loader once"
    );
    assert_eq!(
        cache.get::<User>("report").await.unwrap(),
        Some(ada()),
        "the loaded value is cached"
    );

    // A failing loader: every waiter gets the error, nothing is cached.
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let cache = cache.clone();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_set::<User, _, _, _>("broken", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(std::io::Error::other("database down"))
                })
                .await
        }));
    }
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("database down"), "{err}");
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the failing loader also ran once"
    );
    assert!(
        !cache.exists("broken").await.unwrap(),
        "a loader error is not cached"
    );
}

pub async fn stats_count<S: CacheStore>(cache: Cache<S, Json>) {
    cache.set("a", &1).await.unwrap();
    let _ = cache.get::<i32>("a").await.unwrap();
    let _ = cache.get::<i32>("a").await.unwrap();
    let _ = cache.get::<i32>("nope").await.unwrap();
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.sets, s.errors), (2, 1, 1, 0), "{s:?}");
    assert!((s.hit_ratio() - 2.0 / 3.0).abs() < 1e-9);
}

pub async fn ping_and_purge<S: CacheStore>(cache: Cache<S, Json>, keeps_expired: bool) {
    cache.ping().await.unwrap();
    cache
        .set_with_ttl("gone", &1, Some(Duration::from_millis(50)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    match cache.delete_expired().await.unwrap() {
        Purge::Removed(n) => assert!(keeps_expired && n >= 1, "purged {n}"),
        Purge::NotNeeded => assert!(!keeps_expired, "this backend keeps expired entries"),
    }
}

pub async fn rate_limiter<S: CacheStore>(cache: Cache<S, Json>) {
    let limiter = RateLimiter::new(cache, 3, Duration::from_millis(500)).unwrap();
    for i in 0..3 {
        let r = limiter.check("ip-1").await.unwrap();
        assert!(r.allowed, "request {i} within the limit");
        assert_eq!(r.remaining, 2 - i);
    }
    let r = limiter.check("ip-1").await.unwrap();
    assert!(!r.allowed && r.remaining == 0);
    assert!(
        r.reset_after <= Duration::from_millis(500),
        "{:?}",
        r.reset_after
    );
    assert!(
        limiter.check("ip-2").await.unwrap().allowed,
        "keys are limited separately"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        limiter.check("ip-1").await.unwrap().allowed,
        "a new window starts"
    );
}

pub async fn ttl_jitter_spreads_expiry<S: CacheStore>(cache: Cache<S, Json>) {
    // Built with a 50% jitter.
    let mut ttls = Vec::new();
    for i in 0..40 {
        let key = format!("j{i}");
        cache
            .set_with_ttl(&key, &i, Some(Duration::from_secs(1000)))
            .await
            .unwrap();
        match cache.ttl(&key).await.unwrap() {
            Some(Ttl::Expires(t)) => ttls.push(t),
            other => panic!("{other:?}"),
        }
    }
    let min = ttls.iter().min().unwrap();
    let max = ttls.iter().max().unwrap();
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

/// One `#[tokio::test]` per conformance function, for the backend whose `new_store()` (an async
/// fn returning a store) is in scope.
#[macro_export]
macro_rules! cache_suite {
    (keeps_expired: $keeps:expr) => {
        fn ns() -> String {
            $crate::support::unique("ck")
        }
        async fn cache() -> corekit::cache::Cache<Store> {
            corekit::cache::Cache::builder(new_store().await)
                .prefix(ns())
                .build()
                .unwrap()
        }
        #[tokio::test]
        async fn typed_round_trip() {
            $crate::conformance::typed_round_trip(cache().await).await
        }
        #[tokio::test]
        async fn unicode_keys_and_binary_values() {
            $crate::conformance::unicode_keys_and_binary_values(cache().await).await
        }
        #[tokio::test]
        async fn binary_keys() {
            $crate::conformance::binary_keys(cache().await).await
        }
        #[tokio::test]
        async fn delete_and_exists() {
            $crate::conformance::delete_and_exists(cache().await).await
        }
        #[tokio::test]
        async fn ttl_expiry() {
            $crate::conformance::ttl_expiry(cache().await).await
        }
        #[tokio::test]
        async fn default_ttl_applies() {
            let c = corekit::cache::Cache::builder(new_store().await)
                .prefix(ns())
                .default_ttl(Some(std::time::Duration::from_secs(3600)))
                .build()
                .unwrap();
            $crate::conformance::default_ttl_applies(c).await
        }
        #[tokio::test]
        async fn expire_changes_lifetime() {
            $crate::conformance::expire_changes_lifetime(cache().await).await
        }
        #[tokio::test]
        async fn set_if_absent_is_create_only() {
            $crate::conformance::set_if_absent_is_create_only(cache().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn set_if_absent_has_one_winner() {
            $crate::conformance::set_if_absent_has_one_winner(cache().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn counters() {
            $crate::conformance::counters(cache().await).await
        }
        #[tokio::test]
        async fn batch_operations() {
            $crate::conformance::batch_operations(cache().await).await
        }
        #[tokio::test]
        async fn delete_prefix_and_clear() {
            $crate::conformance::delete_prefix_and_clear(cache().await).await
        }
        #[tokio::test]
        async fn namespaces_isolate() {
            let store = new_store().await;
            let base = ns();
            let a = corekit::cache::Cache::builder(store.clone())
                .prefix(base.clone())
                .build()
                .unwrap();
            let b = corekit::cache::Cache::builder(store.clone())
                .prefix(format!("{base}-other"))
                .build()
                .unwrap();
            $crate::conformance::namespaces_isolate(a, b).await;
            let v1 = corekit::cache::Cache::builder(store.clone())
                .prefix(base.clone())
                .version("1")
                .build()
                .unwrap();
            let v2 = corekit::cache::Cache::builder(store)
                .prefix(base)
                .version("2")
                .build()
                .unwrap();
            $crate::conformance::namespaces_isolate(v1, v2).await;
        }
        #[tokio::test]
        async fn invalid_input_is_rejected() {
            let c = corekit::cache::Cache::builder(new_store().await)
                .prefix(ns())
                .max_key_len(64)
                .max_value_size(1024)
                .build()
                .unwrap();
            $crate::conformance::invalid_input_is_rejected(c).await
        }
        #[tokio::test]
        async fn corrupt_value_names_the_key() {
            $crate::conformance::corrupt_value_names_the_key(cache().await).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn single_flight() {
            $crate::conformance::single_flight(cache().await).await
        }
        #[tokio::test]
        async fn stats_count() {
            $crate::conformance::stats_count(cache().await).await
        }
        #[tokio::test]
        async fn ping_and_purge() {
            $crate::conformance::ping_and_purge(cache().await, $keeps).await
        }
        #[tokio::test]
        async fn rate_limiter() {
            $crate::conformance::rate_limiter(cache().await).await
        }
        #[tokio::test]
        async fn ttl_jitter_spreads_expiry() {
            let c = corekit::cache::Cache::builder(new_store().await)
                .prefix(ns())
                .ttl_jitter(0.5)
                .build()
                .unwrap();
            $crate::conformance::ttl_jitter_spreads_expiry(c).await
        }
    };
}
