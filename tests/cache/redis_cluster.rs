//! The cache on a Redis Cluster (three primaries from `scripts/services.sh up redis_cluster`):
//! the whole conformance suite, the two-tier store's suite, and the calls that a cluster
//! refuses unless the store splits them by slot.

use crate::support;
use corekit::cache::{Cache, RedisStore};

async fn cluster_store() -> RedisStore {
    let store = RedisStore::connect(&support::REDIS_CLUSTER.require())
        .await
        .unwrap();
    assert!(store.is_clustered());
    store
}

crate::redis_deployment_suites!(super::cluster_store);

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

/// A primary SIGKILLed while 8 tasks read and write (a cluster of the test's own, each primary
/// with a replica): every failure is retryable and bounded by the command timeout, the replica
/// takes over, and within 5 s of that the same handle serves every key again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_fails_over_and_the_handle_carries_on() {
    let mut cluster = support::RedisCluster::start(1);
    // Until a replica is promoted, the dead primary's slots cannot be served.
    crate::failover::load_through(&cluster.url(), || cluster.fail_over(0)).await;
}

/// A resharding under load: 2,000 slots (keys included) move from one primary to another
/// while 8 tasks read and write. The client follows the MOVED and ASK redirections: not one
/// call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharding_under_load_fails_no_call() {
    let cluster = support::RedisCluster::start(0);
    let failed = crate::failover::load_through(&cluster.url(), || {
        let primaries = cluster.primaries();
        cluster.reshard(&primaries[0].0, &primaries[1].0, 2000);
    })
    .await;
    assert_eq!(failed, 0, "calls failed during the resharding");
}

/// The node holding the two-tier store's invalidation subscription SIGKILLed (a cluster with
/// replicas; Redis tracking off, so corekit's channel is all it hears): invalidations sent
/// meanwhile are lost, so the store must forget its near copies. A write made behind its back
/// (a plain client, which sends no invalidation on the channel) is seen afterwards, where the
/// near copy would otherwise serve the old value for its whole 60 s near TTL. With tracking on,
/// `tests/cache/tracking.rs` covers a failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_copies_are_dropped_when_the_subscription_node_dies() {
    use corekit::cache::{CacheStore, MemoryStore, TieredStore};
    use fred::interfaces::KeysInterface;
    use std::time::{Duration, Instant};

    let mut cluster = support::RedisCluster::start(1);
    let far = RedisStore::builder(cluster.url())
        .command_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let tiered = TieredStore::builder(MemoryStore::new(1_000), far.clone())
        .channel(support::unique("chan"))
        .near_ttl(Duration::from_secs(60))
        .tracking(false)
        .build()
        .await
        .unwrap();
    tiered.set(b"k", "1".into(), None).await.unwrap();
    assert_eq!(tiered.get(b"k").await.unwrap().as_deref(), Some(&b"1"[..]));

    // The node the subscription lives on: the one with a client in subscribe mode.
    let victim = tokio::task::block_in_place(|| {
        cluster
            .primaries()
            .into_iter()
            .map(|(_, port)| port)
            .find(|port| {
                support::RedisCluster::cli(*port, &["client", "list"])
                    .lines()
                    .any(|l| l.contains(" sub=1 "))
            })
            .expect("a primary holds the subscription")
    });
    // Written behind the tiered store's back: no invalidation is ever sent for it.
    let _: () = far.pool().set("k", "2", None, None, false).await.unwrap();
    assert_eq!(
        tiered.get(b"k").await.unwrap().as_deref(),
        Some(&b"1"[..]),
        "the near copy still answers before the fault"
    );

    tokio::task::block_in_place(|| {
        cluster.kill(victim);
        cluster.wait_ok(Duration::from_secs(30));
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(v)) = tiered.get(b"k").await
            && &v[..] == b"2"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the near copy survived the loss of the subscription"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A lock through a failover of the primary holding it (a cluster of the test's own, each
/// primary with a replica): calls fail retryably while no primary serves the slot, and the next
/// holder's fencing token is larger than the one taken before the kill, whether or not the
/// replica had received the lock and its fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_keeps_its_fencing_order_through_a_failover() {
    let mut cluster = support::RedisCluster::start(1);
    let store = RedisStore::builder(cluster.url())
        .command_timeout(std::time::Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(store)
        .prefix(support::unique("lockfo"))
        .build()
        .unwrap();
    let ttl = std::time::Duration::from_secs(3);
    let before = cache.lock("L", ttl).await.unwrap().expect("free");
    // The slot of the lock's keys: the hash tag `{:<namespace>L}` (see `Cache::lock`).
    let slot = fred::util::redis_keyslot(format!(":{}L", cache.namespace()).as_bytes());
    tokio::task::block_in_place(|| cluster.fail_over(slot));

    // Taken again once the promoted replica serves the slot: at once if the lock was lost
    // with the primary, after its TTL if the replica had it.
    let promoted = std::time::Instant::now();
    let deadline = promoted + std::time::Duration::from_secs(15);
    let after = loop {
        match cache.lock("L", ttl).await {
            Ok(Some(lock)) => break lock,
            Ok(None) => {}
            Err(e) => assert!(e.is_retryable(), "a failure during the failover: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lock never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // Which case this run saw: taken at once (lost with the primary) or after the TTL.
    eprintln!(
        "lock taken again {:?} after the promotion",
        promoted.elapsed()
    );
    assert!(
        after.token() > before.token(),
        "fencing order kept: {} then {}",
        before.token(),
        after.token()
    );
    assert!(
        !before.release().await.unwrap(),
        "the old holder cannot release the new holder's lock"
    );
    assert!(after.release().await.unwrap());
}
