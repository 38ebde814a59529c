//! The de-duplication stores' contract (`conformance::dedupe_store_keeps_claims_apart`) on the
//! in-process store and on Redis: one server, Cluster and Sentinel.

use crate::support::{self, Server};
use corekit::queue::conformance::dedupe_store_keeps_claims_apart;
use corekit::queue::{MemoryDedupe, RedisDedupe};
use std::time::Duration;

async fn on_redis(server: Server) {
    let url = server.require();
    let store = RedisDedupe::connect(&url, Duration::from_secs(5))
        .await
        .expect("connect");
    dedupe_store_keeps_claims_apart(store).await;
}

#[tokio::test]
async fn memory_store_keeps_claims_apart() {
    dedupe_store_keeps_claims_apart(MemoryDedupe::new()).await;
}

#[tokio::test]
async fn redis_store_keeps_claims_apart() {
    on_redis(support::REDIS).await;
}

#[tokio::test]
async fn redis_cluster_store_keeps_claims_apart() {
    on_redis(support::REDIS_CLUSTER).await;
}

#[tokio::test]
async fn redis_sentinel_store_keeps_claims_apart() {
    on_redis(support::REDIS_SENTINEL).await;
}
