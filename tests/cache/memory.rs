use corekit::cache::{Cache, CacheStore, MemoryStore};
use std::time::Duration;

type Store = MemoryStore;

async fn new_store() -> Store {
    MemoryStore::new(100_000)
}

crate::cache_suite!(keeps_expired: true);

#[tokio::test]
async fn bounded_by_entries_and_counts_evictions() {
    let cache = Cache::new(MemoryStore::new(100));
    for i in 0..1000 {
        cache.set(&format!("k{i}"), &i).await.unwrap();
    }
    let len = cache.store().len();
    assert!(len <= 110, "holds about 100 entries, not {len}");
    let stats = cache.stats();
    assert!(stats.evictions >= 890, "{stats:?}");
    assert_eq!(cache.store().evictions(), stats.evictions);
}

#[tokio::test]
async fn bounded_by_bytes() {
    let cache = Cache::new(MemoryStore::with_max_bytes(64 * 1024));
    let value = "x".repeat(1000);
    for i in 0..1000 {
        cache.set(&format!("k{i}"), &value).await.unwrap();
    }
    // ~1 KiB per entry in a 64 KiB store.
    let len = cache.store().len();
    assert!(
        (30..=70).contains(&len),
        "a 64 KiB store holds ~60 1 KiB entries, not {len}"
    );
}

#[tokio::test]
async fn overwrites_and_counters_are_not_evictions() {
    let cache = Cache::new(MemoryStore::new(10_000));
    for i in 0..10 {
        cache.set("k", &i).await.unwrap();
        cache.incr("n", 1).await.unwrap();
    }
    cache
        .set_with_ttl("t", &1, Some(std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    cache.expire("t", None).await.unwrap();
    assert_eq!(cache.stats().evictions, 0, "{:?}", cache.stats());
}

/// A TTL too long to add to the clock (`Duration::MAX`, a plausible "forever") is about a
/// century, not a panic, for entries and for locks.
#[tokio::test]
async fn a_ttl_too_long_for_the_clock_does_not_panic() {
    let cache = Cache::new(MemoryStore::new(100));
    cache
        .set_with_ttl("k", &1, Some(Duration::MAX))
        .await
        .unwrap();
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1));
    let mut lock = cache.lock("l", Duration::MAX).await.unwrap().expect("free");
    assert!(lock.extend(Duration::MAX).await.unwrap());
    assert!(lock.release().await.unwrap());
}

#[tokio::test]
async fn delete_expired_counts_what_it_removed() {
    use corekit::cache::Purge;
    let cache = Cache::new(MemoryStore::new(100));
    cache
        .set_with_ttl("gone", &1, Some(Duration::from_millis(30)))
        .await
        .unwrap();
    cache.set_with_ttl("kept", &1, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(cache.delete_expired().await.unwrap(), Purge::Removed(1));
    assert_eq!(cache.get::<i32>("kept").await.unwrap(), Some(1));
}
