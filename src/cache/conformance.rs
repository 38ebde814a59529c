//! The behaviour every [`CacheStore`] must have, as public async functions (feature `testing`).
//!
//! Each function takes a store, builds the [`Cache`] it needs over it under a prefix no other
//! call uses, and panics with a message naming what broke. The functions can therefore share
//! one store (one Redis server) and run in any order or at once. A few wait on real time (TTLs
//! of a few hundred ms), and some spawn tasks, so run them on a multi-threaded runtime:
//!
//! ```no_run
//! use corekit::cache::{MemoryStore, conformance};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn memory_store_conforms() {
//!     // The memory store keeps expired entries until `delete_expired` purges them.
//!     conformance::run_all(MemoryStore::new(100_000), true).await;
//! }
//! # fn main() {}
//! ```
//!
//! A third-party store is done when [`run_all`] passes on it. Calling the checks one by one
//! (one test each) names the failing behaviour in the test report.

mod expiry;
mod flight;
mod lock;
mod refresh;
mod tags;

pub use expiry::{
    default_ttl_applies, expire_changes_lifetime, ping_and_purge, rate_limiter,
    set_if_absent_is_create_only, ttl_expiry, ttl_jitter_spreads_expiry,
};
pub use flight::{
    a_cancelled_leader_hands_over, a_hung_loader_is_cut_at_the_loader_timeout,
    a_panicking_loader_does_not_poison_the_key,
};
pub use lock::{
    lock_is_exclusive_and_fenced, lock_keep_alive_and_drop, lock_only_its_holder_releases,
};
pub use refresh::{
    a_panicking_refresh_does_not_poison_the_key,
    a_soft_timeout_waits_for_the_refresh_then_serves_stale,
    fail_safe_returns_stale_when_the_loader_fails, refresh_ahead_runs_one_loader_for_many_readers,
    stale_is_served_while_one_refresh_runs,
};
pub use tags::{bad_tags_are_refused, tags_invalidate_their_entries};

use super::{Cache, CacheStore, Json};
use crate::ErrorKind;
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

/// A key prefix no other call uses, so checks sharing a store do not meet.
pub fn unique_prefix(name: &str) -> String {
    crate::testing::unique_name(name, '-')
}

/// A cache with every default over `store`, under a fresh prefix.
fn cache<S: CacheStore>(store: S) -> Cache<S, Json> {
    Cache::builder(store)
        .prefix(unique_prefix("ck"))
        .build()
        .expect("a cache with a unique prefix")
}

/// Every check, one after the other, on `store`. `keeps_expired` says whether the store keeps
/// expired entries until [`Cache::delete_expired`] removes them (in-process stores) or expires
/// them itself (Redis); see [`ping_and_purge`].
pub async fn run_all<S: CacheStore + Clone>(store: S, keeps_expired: bool) {
    // Each check boxed: together their futures overflow a test thread's stack in debug builds.
    Box::pin(typed_round_trip(store.clone())).await;
    Box::pin(binary_keys(store.clone())).await;
    Box::pin(unicode_keys_and_binary_values(store.clone())).await;
    Box::pin(delete_and_exists(store.clone())).await;
    Box::pin(ttl_expiry(store.clone())).await;
    Box::pin(default_ttl_applies(store.clone())).await;
    Box::pin(expire_changes_lifetime(store.clone())).await;
    Box::pin(set_if_absent_is_create_only(store.clone())).await;
    Box::pin(set_if_absent_has_one_winner(store.clone())).await;
    Box::pin(counters(store.clone())).await;
    Box::pin(batch_operations(store.clone())).await;
    Box::pin(delete_prefix_and_clear(store.clone())).await;
    Box::pin(namespaces_isolate(store.clone())).await;
    Box::pin(invalid_input_is_rejected(store.clone())).await;
    Box::pin(corrupt_value_names_the_key(store.clone())).await;
    Box::pin(single_flight(store.clone())).await;
    Box::pin(a_panicking_loader_does_not_poison_the_key(store.clone())).await;
    Box::pin(a_cancelled_leader_hands_over(store.clone())).await;
    Box::pin(a_hung_loader_is_cut_at_the_loader_timeout(store.clone())).await;
    Box::pin(refresh_ahead_runs_one_loader_for_many_readers(
        store.clone(),
    ))
    .await;
    Box::pin(stale_is_served_while_one_refresh_runs(store.clone())).await;
    Box::pin(a_soft_timeout_waits_for_the_refresh_then_serves_stale(
        store.clone(),
    ))
    .await;
    Box::pin(fail_safe_returns_stale_when_the_loader_fails(store.clone())).await;
    Box::pin(a_panicking_refresh_does_not_poison_the_key(store.clone())).await;
    Box::pin(stats_count(store.clone())).await;
    Box::pin(ping_and_purge(store.clone(), keeps_expired)).await;
    Box::pin(rate_limiter(store.clone())).await;
    Box::pin(lock_is_exclusive_and_fenced(store.clone())).await;
    Box::pin(lock_only_its_holder_releases(store.clone())).await;
    Box::pin(lock_keep_alive_and_drop(store.clone())).await;
    Box::pin(tags_invalidate_their_entries(store.clone())).await;
    Box::pin(bad_tags_are_refused(store.clone())).await;
    Box::pin(ttl_jitter_spreads_expiry(store)).await;
}

/// A typed value reads back equal; a fresh cache misses; `set` overwrites.
pub async fn typed_round_trip<S: CacheStore>(store: S) {
    let cache = cache(store);
    assert_eq!(
        cache
            .get::<User>("u:1")
            .await
            .expect("get on a fresh cache"),
        None,
        "fresh cache is empty"
    );
    cache.set("u:1", &ada()).await.expect("set u:1");
    assert_eq!(
        cache.get::<User>("u:1").await.expect("get u:1"),
        Some(ada()),
        "the value set is read back"
    );
    let grace = User {
        id: 1,
        name: "Grace".into(),
        tags: vec![],
    };
    cache.set("u:1", &grace).await.expect("overwrite u:1");
    assert_eq!(
        cache.get::<User>("u:1").await.expect("get u:1"),
        Some(grace),
        "set overwrites"
    );
}

/// Keys that are not UTF-8 (hashes, packed ids) are stored byte for byte, apart from text keys
/// with the same characters, and every operation takes them.
pub async fn binary_keys<S: CacheStore>(store: S) {
    let cache = cache(store);
    let raw: &[u8] = b"\xff\x00bin\xfe key*?";
    let other: Vec<u8> = vec![0xff, 0x00, b'b', b'i', b'n', 0xfd];
    cache.set(raw, &1).await.expect("set a binary key");
    cache
        .set(&other, &2)
        .await
        .expect("set a second binary key");
    cache
        .set("\u{ff}\0bin", &3)
        .await
        .expect("set a text key with the same characters");
    assert_eq!(cache.get::<i32>(raw).await.expect("get"), Some(1));
    assert_eq!(cache.get::<i32>(&other).await.expect("get"), Some(2));
    assert_eq!(
        cache.get::<i32>("\u{ff}\0bin").await.expect("get"),
        Some(3),
        "text stays apart"
    );
    assert!(
        cache.exists(raw).await.expect("exists"),
        "binary key exists"
    );
    assert_eq!(
        cache.incr(&[0x80u8, 0x81][..], 5).await.expect("incr"),
        5,
        "a counter under a binary key"
    );
    assert_eq!(
        cache
            .get_many::<i32>(&[raw, other.as_slice()])
            .await
            .expect("get_many"),
        vec![Some(1), Some(2)]
    );
    // A prefix that is itself not UTF-8 removes exactly the keys under it.
    assert_eq!(
        cache
            .delete_prefix(&[0xffu8, 0x00][..])
            .await
            .expect("delete_prefix"),
        2,
        "a binary prefix removes the two keys under it"
    );
    assert_eq!(cache.get::<i32>(raw).await.expect("get"), None);
    assert_eq!(
        cache.get::<i32>("\u{ff}\0bin").await.expect("get"),
        Some(3),
        "the text key survives a binary prefix delete"
    );
    let got: i32 = cache
        .get_or_set(&[0xc0u8, 0xc1][..], None, || async {
            Ok::<_, std::io::Error>(9)
        })
        .await
        .expect("get_or_set under a binary key");
    assert_eq!(got, 9);
    assert!(
        cache.delete(&[0xc0u8, 0xc1][..]).await.expect("delete"),
        "the loaded value was stored"
    );
    // A value that does not decode names its binary key, in hex.
    cache
        .set_bytes(&[0xeeu8, 0x01][..], "not json".into(), None)
        .await
        .expect("set_bytes");
    let e = cache
        .get::<i32>(&[0xeeu8, 0x01][..])
        .await
        .expect_err("a value that does not decode");
    assert!(
        e.to_string().contains("0xee01"),
        "names the key in hex: {e}"
    );
}

/// Unicode, whitespace and glob characters in keys; every byte value in values; an empty value
/// is a value, not a miss.
pub async fn unicode_keys_and_binary_values<S: CacheStore>(store: S) {
    let cache = cache(store);
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
        let got = cache
            .get_bytes(key)
            .await
            .unwrap_or_else(|e| panic!("get {key:?}: {e}"));
        assert_eq!(
            got.as_deref(),
            Some(&all_bytes[..]),
            "binary value byte-exact under {key:?}"
        );
    }
    cache
        .set_bytes("empty", bytes::Bytes::new(), None)
        .await
        .expect("set an empty value");
    assert_eq!(
        cache.get_bytes("empty").await.expect("get").as_deref(),
        Some(&b""[..]),
        "empty value is not a miss"
    );
}

/// `delete` reports whether the key existed; `exists` follows `set` and `delete`.
pub async fn delete_and_exists<S: CacheStore>(store: S) {
    let cache = cache(store);
    assert!(
        !cache.exists("k").await.expect("exists"),
        "fresh key absent"
    );
    assert!(
        !cache.delete("k").await.expect("delete"),
        "deleting a missing key reports false"
    );
    cache.set("k", &1).await.expect("set");
    assert!(cache.exists("k").await.expect("exists"), "set key exists");
    assert!(
        cache.delete("k").await.expect("delete"),
        "deleting an existing key reports true"
    );
    assert!(
        !cache.exists("k").await.expect("exists"),
        "deleted key gone"
    );
    assert_eq!(cache.get::<i32>("k").await.expect("get"), None);
}

/// Of 50 concurrent `set_if_absent` calls on one key, exactly one wins.
pub async fn set_if_absent_has_one_winner<S: CacheStore>(store: S) {
    let cache = cache(store);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .set_if_absent("race", &i, None)
                .await
                .expect("set_if_absent")
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.expect("a set_if_absent task") {
            winners += 1;
        }
    }
    assert_eq!(
        winners, 1,
        "exactly one of 50 concurrent create-only writers wins"
    );
}

/// `incr`/`decr` start from 0, read back as integers, refuse non-numbers with `InvalidInput`,
/// and lose no increment under concurrency.
pub async fn counters<S: CacheStore>(store: S) {
    let cache = cache(store);
    assert_eq!(
        cache.incr("n", 1).await.expect("incr"),
        1,
        "a missing counter starts at 0"
    );
    assert_eq!(cache.incr("n", 5).await.expect("incr"), 6);
    assert_eq!(cache.decr("n", 2).await.expect("decr"), 4);
    assert_eq!(
        cache.get::<i64>("n").await.expect("get"),
        Some(4),
        "counters read back as integers"
    );
    cache.set("word", &"hello").await.expect("set");
    let err = cache
        .incr("word", 1)
        .await
        .expect_err("incr on a non-number");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            cache.incr("concurrent", 1).await.expect("concurrent incr")
        }));
    }
    for t in tasks {
        t.await.expect("an incr task");
    }
    assert_eq!(
        cache.get::<i64>("concurrent").await.expect("get"),
        Some(50),
        "no increment lost"
    );
}

/// `set_many`/`get_many`/`delete_many`: order kept, misses as `None`, deletes counted.
pub async fn batch_operations<S: CacheStore>(store: S) {
    let cache = cache(store);
    cache
        .set_many(&[("a", 1), ("b", 2), ("c", 3)])
        .await
        .expect("set_many");
    let got = cache
        .get_many::<i32>(&["a", "missing", "c", "b"])
        .await
        .expect("get_many");
    assert_eq!(
        got,
        vec![Some(1), None, Some(3), Some(2)],
        "order kept, misses as None"
    );
    assert_eq!(
        cache
            .get_many::<i32>(&[] as &[&str])
            .await
            .expect("get_many of nothing"),
        Vec::<Option<i32>>::new()
    );
    assert_eq!(
        cache
            .delete_many(&["a", "b", "missing"])
            .await
            .expect("delete_many"),
        2,
        "delete_many counts what existed"
    );
    assert_eq!(
        cache
            .get_many::<i32>(&["a", "b", "c"])
            .await
            .expect("get_many"),
        vec![None, None, Some(3)]
    );
}

/// `delete_prefix` removes every key under a prefix (more than one SCAN page), matching glob
/// characters literally; `clear` removes the rest of the namespace.
pub async fn delete_prefix_and_clear<S: CacheStore>(store: S) {
    let cache = cache(store);
    for i in 0..1200 {
        cache.set(&format!("sess:{i}"), &i).await.expect("set");
    }
    cache.set("user:1", &1).await.expect("set");
    cache.set("sess*literal", &1).await.expect("set");
    assert_eq!(
        cache.delete_prefix("sess:").await.expect("delete_prefix"),
        1200,
        "more than one SCAN page"
    );
    assert_eq!(cache.get::<i32>("sess:7").await.expect("get"), None);
    assert_eq!(cache.get::<i32>("user:1").await.expect("get"), Some(1));
    assert_eq!(
        cache.get::<i32>("sess*literal").await.expect("get"),
        Some(1),
        "glob characters match literally"
    );
    assert_eq!(
        cache.clear().await.expect("clear"),
        2,
        "clear counts what it removed"
    );
    assert_eq!(cache.get::<i32>("user:1").await.expect("get"), None);
}

/// Two caches over one store with different prefixes, or one prefix and different versions,
/// neither see nor clear each other's keys.
pub async fn namespaces_isolate<S: CacheStore + Clone>(store: S) {
    let base = unique_prefix("ns");
    let build = |prefix: String, version: Option<&str>| {
        let builder = Cache::builder(store.clone()).prefix(prefix);
        let builder = match version {
            Some(v) => builder.version(v),
            None => builder,
        };
        builder.build().expect("a cache with a namespace")
    };
    let pairs = [
        (
            build(base.clone(), None),
            build(format!("{base}-other"), None),
        ),
        (
            build(base.clone(), Some("1")),
            build(base.clone(), Some("2")),
        ),
    ];
    for (a, b) in pairs {
        assert_ne!(a.namespace(), b.namespace());
        a.set("k", &"from a").await.expect("set in a");
        b.set("k", &"from b").await.expect("set in b");
        assert_eq!(
            a.get::<String>("k").await.expect("get").as_deref(),
            Some("from a"),
            "a sees its own value"
        );
        assert_eq!(
            b.get::<String>("k").await.expect("get").as_deref(),
            Some("from b"),
            "b sees its own value"
        );
        assert_eq!(
            a.clear().await.expect("clear a"),
            1,
            "clearing a removes only a's key"
        );
        assert_eq!(
            b.get::<String>("k").await.expect("get").as_deref(),
            Some("from b"),
            "clearing a left b alone"
        );
        b.clear().await.expect("clear b");
    }
}

/// Empty keys, keys over `max_key_len` and values over `max_value_size` are `InvalidInput`,
/// not retryable, refused before any backend call.
pub async fn invalid_input_is_rejected<S: CacheStore>(store: S) {
    let cache = Cache::builder(store)
        .prefix(unique_prefix("ck"))
        .max_key_len(64)
        .max_value_size(1024)
        .build()
        .expect("a cache with input limits");
    let before = cache.stats();
    let err = cache.set("", &1).await.expect_err("an empty key");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
    let err = cache
        .get::<i32>(&"k".repeat(65))
        .await
        .expect_err("a key over max_key_len");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("65 bytes"), "{err}");
    let err = cache
        .set("big", &"x".repeat(2000))
        .await
        .expect_err("a value over max_value_size");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("over the 1024-byte limit"),
        "{err}"
    );
    assert!(!err.is_retryable(), "invalid input is not retryable");
    assert_eq!(
        cache.stats().errors,
        before.errors,
        "rejected before any backend call"
    );
    assert!(
        !cache.exists("big").await.expect("exists"),
        "the refused value was not stored"
    );
}

/// A stored value that does not decode is a `Backend` error naming the key and keeping the
/// decode error as its source.
pub async fn corrupt_value_names_the_key<S: CacheStore>(store: S) {
    let cache = cache(store);
    cache
        .set_bytes("bad", bytes::Bytes::from_static(b"{not json"), None)
        .await
        .expect("set_bytes");
    let err = cache
        .get::<User>("bad")
        .await
        .expect_err("a value that does not decode");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.to_string().contains("\"bad\""), "names the key: {err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the decode error"
    );
}

/// `get_or_set`: 100 concurrent misses run the loader once and all get its value, which is
/// cached; a failing loader also runs once, every waiter gets its error, nothing is cached.
pub async fn single_flight<S: CacheStore>(store: S) {
    let cache = cache(store);
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
                .expect("get_or_set")
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.expect("a get_or_set task"),
            ada(),
            "every waiter gets the loaded value"
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "100 concurrent misses ran the loader once"
    );
    assert_eq!(
        cache.get::<User>("report").await.expect("get"),
        Some(ada()),
        "the loaded value is cached"
    );

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
        let err = t
            .await
            .expect("a get_or_set task")
            .expect_err("a failing loader");
        assert!(
            err.to_string().contains("database down"),
            "the loader's error: {err}"
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the failing loader also ran once"
    );
    assert!(
        !cache.exists("broken").await.expect("exists"),
        "a loader error is not cached"
    );
}

/// `stats()` counts hits, misses, sets and errors.
pub async fn stats_count<S: CacheStore>(store: S) {
    let cache = cache(store);
    cache.set("a", &1).await.expect("set");
    cache.get::<i32>("a").await.expect("get");
    cache.get::<i32>("a").await.expect("get");
    cache.get::<i32>("nope").await.expect("get");
    let s = cache.stats();
    assert_eq!(
        (s.hits, s.misses, s.sets, s.errors),
        (2, 1, 1, 0),
        "two hits, a miss, a set: {s:?}"
    );
    assert!((s.hit_ratio() - 2.0 / 3.0).abs() < 1e-9, "{s:?}");
}
