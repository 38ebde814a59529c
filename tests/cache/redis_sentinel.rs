//! The cache behind Redis Sentinel (a primary, a replica and three sentinels from
//! `scripts/services.sh up redis_sentinel`): the conformance suite through the sentinels. The
//! failover case (primary killed, replica promoted, same handle carries on) is in
//! `redis_faults`, on a deployment of its own.

use crate::support;
use corekit::cache::RedisStore;

type Store = RedisStore;

async fn new_store() -> Store {
    RedisStore::connect(&support::REDIS_SENTINEL.require())
        .await
        .unwrap()
}

crate::cache_suite!(keeps_expired: false);
