//! The cache behind Redis Sentinel (a primary, a replica and three sentinels from
//! `scripts/services.sh up redis_sentinel`): the conformance suite, plain and two-tier,
//! through the sentinels; then a failover on a deployment of the test's own.

use crate::support;
use corekit::cache::RedisStore;

async fn sentinel_store() -> RedisStore {
    RedisStore::connect(&support::REDIS_SENTINEL.require())
        .await
        .unwrap()
}

crate::redis_deployment_suites!(super::sentinel_store);

/// The primary SIGKILLed while 8 tasks read and write (a deployment of the test's own): the
/// sentinels promote the replica, and within 5 s of that the same handle serves every key,
/// every failure meanwhile retryable and bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_the_handle_carries_on() {
    use std::time::{Duration, Instant};
    let mut deployment = support::RedisSentinel::start();
    let [primary, replica] = deployment.data_ports;
    crate::failover::load_through(&deployment.url(), || {
        deployment.kill(primary);
        let deadline = Instant::now() + Duration::from_secs(20);
        while deployment.primary() != Some(replica) {
            assert!(
                Instant::now() < deadline,
                "the replica was not promoted within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await;
}
