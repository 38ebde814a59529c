use crate::support;
use corekit::cache::{Cache, CacheStore, MemoryStore, RedisStore, TieredStore};
use std::time::{Duration, Instant};

type Store = TieredStore;

async fn new_store() -> Store {
    tiered(&support::unique("chan")).await
}

async fn tiered(channel: &str) -> TieredStore {
    let far = RedisStore::connect(&support::REDIS.require())
        .await
        .unwrap();
    TieredStore::builder(MemoryStore::new(10_000), far)
        .channel(channel)
        .build()
        .await
        .unwrap()
}

crate::cache_suite!(keeps_expired: true);

/// Polls `check` for up to two seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 2 s");
}

/// Two instances of one cache (same Redis, channel and prefix), and the prefix.
async fn two_instances() -> (Cache<TieredStore>, Cache<TieredStore>, String) {
    let channel = support::unique("chan");
    let prefix = support::unique("tier");
    let instance = async || {
        Cache::builder(tiered(&channel).await)
            .prefix(&prefix)
            .build()
            .unwrap()
    };
    (instance().await, instance().await, prefix)
}

#[tokio::test]
async fn writes_on_one_instance_invalidate_the_near_copy_on_another() {
    let (a, b, prefix) = two_instances().await;
    let key = format!("{prefix}:k");

    a.set("k", &1).await.unwrap();
    assert_eq!(b.get::<i32>("k").await.unwrap(), Some(1));
    // Under Redis tracking the first fill may be dropped by the set's own invalidation.
    eventually("b holds a near copy", || async {
        b.get::<i32>("k").await.unwrap();
        b.store().near().exists(key.as_bytes()).await.unwrap()
    })
    .await;

    a.set("k", &2).await.unwrap();
    eventually("b drops its stale copy after a's update", || async {
        !b.store().near().exists(key.as_bytes()).await.unwrap()
    })
    .await;
    assert_eq!(b.get::<i32>("k").await.unwrap(), Some(2));

    a.delete("k").await.unwrap();
    eventually("b drops its copy after a's delete", || async {
        !b.store().near().exists(key.as_bytes()).await.unwrap()
    })
    .await;
    assert_eq!(b.get::<i32>("k").await.unwrap(), None);

    b.set("p1", &1).await.unwrap();
    assert_eq!(a.get::<i32>("p1").await.unwrap(), Some(1));
    b.clear().await.unwrap();
    eventually("a drops its copies after b's clear", || async {
        a.store().near().is_empty()
    })
    .await;
}

#[tokio::test]
async fn near_copy_never_outlives_the_redis_key() {
    let cache = Cache::builder(new_store().await)
        .prefix(support::unique("tier"))
        .build()
        .unwrap();
    cache
        .set_with_ttl("short", &1, Some(Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(cache.get::<i32>("short").await.unwrap(), Some(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get::<i32>("short").await.unwrap(), None);
}

#[tokio::test]
async fn a_tag_invalidated_on_one_instance_misses_on_another() {
    let (a, b, prefix) = two_instances().await;
    // b invalidates first: a near copy of the version on b would now be the stale one.
    b.invalidate_tag("org:7").await.unwrap();
    a.set_tagged("k", &1, &["org:7"]).await.unwrap();
    assert_eq!(b.get::<i32>("k").await.unwrap(), Some(1));
    eventually("b holds the entry near", || async {
        b.get::<i32>("k").await.unwrap();
        b.store()
            .near()
            .exists(format!("{prefix}:k").as_bytes())
            .await
            .unwrap()
    })
    .await;
    // Seen at once, not after the pub/sub delay: versions are read from Redis.
    a.invalidate_tag("org:7").await.unwrap();
    assert_eq!(
        b.get::<i32>("k").await.unwrap(),
        None,
        "b misses right away"
    );
    b.set_tagged("k", &2, &["org:7"]).await.unwrap();
    assert_eq!(a.get::<i32>("k").await.unwrap(), Some(2));
    b.invalidate_tag("org:7").await.unwrap();
    assert_eq!(
        a.get::<i32>("k").await.unwrap(),
        None,
        "a misses right away"
    );
}
