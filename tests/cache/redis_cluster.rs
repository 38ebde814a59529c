//! The cache on a Redis Cluster (three primaries from `scripts/services.sh up redis_cluster`):
//! the whole conformance suite, the two-tier store's suite, and the calls that a cluster
//! refuses unless the store splits them by slot.

use crate::support;
use corekit::cache::{Cache, MemoryStore, RedisStore, TieredStore};

async fn cluster_store() -> RedisStore {
    let store = RedisStore::connect(&support::REDIS_CLUSTER.require())
        .await
        .unwrap();
    assert!(store.is_clustered());
    store
}

mod plain {
    use super::*;
    type Store = RedisStore;
    async fn new_store() -> Store {
        cluster_store().await
    }
    crate::cache_suite!(keeps_expired: false);
}

mod tiered {
    use super::*;
    type Store = TieredStore;
    async fn new_store() -> Store {
        TieredStore::builder(MemoryStore::new(10_000), cluster_store().await)
            .channel(support::unique("chan"))
            .build()
            .await
            .unwrap()
    }
    crate::cache_suite!(keeps_expired: true);
}

/// Keys that hash to every primary: the many-key calls and `delete_prefix` must reach them all
/// and answer in the caller's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_key_calls_span_every_primary() {
    let store = cluster_store().await;
    let cache = Cache::builder(store.clone())
        .prefix(support::unique("spread"))
        .build()
        .unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    let entries: Vec<(String, u32)> = keys.iter().cloned().zip(0..).collect();
    cache.set_many(&entries).await.unwrap();

    // Keys in slots of all three primaries, asked in a shuffled order with a missing one.
    let mut asked: Vec<String> = keys.iter().rev().step_by(3).cloned().collect();
    asked.insert(5, "missing".to_owned());
    let got: Vec<Option<u32>> = cache.get_many(&asked).await.unwrap();
    for (key, value) in asked.iter().zip(&got) {
        let want = key.strip_prefix('k').map(|n| n.parse::<u32>().unwrap());
        assert_eq!(*value, want, "{key}");
    }

    let deleted = cache.delete_many(&keys[..50]).await.unwrap();
    assert_eq!(deleted, 50);
    // The rest, wherever they live, go with the namespace.
    assert_eq!(cache.clear().await.unwrap(), 150);
    assert!(
        cache
            .get_many::<u32>(&keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );

    // The keys really were spread: every primary held some.
    let slots: std::collections::HashSet<u16> = keys
        .iter()
        .map(|k| fred::util::redis_keyslot(format!("{}{k}", cache.namespace()).as_bytes()))
        .collect();
    assert!(slots.iter().any(|s| *s < 5461) && slots.iter().any(|s| (5461..10923).contains(s)));
    assert!(slots.iter().any(|s| *s >= 10923));
}
