//! The job-store conformance suite (`corekit::scheduler::conformance`), on every store: each
//! check is its own test, on a fresh memory store or a Redis store under a unique prefix (one
//! server, a Redis Cluster, behind Sentinel).

use corekit::scheduler::{JobStore, MemoryJobStore, RedisJobStore, conformance};
use std::sync::Arc;

async fn memory() -> Arc<dyn JobStore> {
    Arc::new(MemoryJobStore::new())
}

async fn redis_at(server: crate::single_instance::support::Server) -> Arc<dyn JobStore> {
    let url = server.require();
    let prefix = crate::single_instance::support::unique("jobs-conformance");
    Arc::new(RedisJobStore::connect(&url, &prefix).await.unwrap())
}

async fn redis() -> Arc<dyn JobStore> {
    redis_at(crate::single_instance::support::REDIS).await
}

async fn redis_cluster() -> Arc<dyn JobStore> {
    redis_at(crate::single_instance::support::REDIS_CLUSTER).await
}

async fn redis_sentinel() -> Arc<dyn JobStore> {
    redis_at(crate::single_instance::support::REDIS_SENTINEL).await
}

macro_rules! suite {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    conformance::$check(super::$backend().await).await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn run_all_on_one_store() {
                conformance::run_all(super::$backend().await).await;
            }
        }
    };
}

suite!(memory: ping_answers, jobs_run_once, retries_count_attempts, dead_after_max_attempts,
    dead_lists_are_per_queue, dead_jobs_can_be_retried_and_deleted,
    handler_panics_and_timeouts_are_isolated, expired_lease_is_reclaimed,
    stale_lease_cannot_settle, enqueue_validates);
suite!(redis: ping_answers, jobs_run_once, retries_count_attempts, dead_after_max_attempts,
    dead_lists_are_per_queue, dead_jobs_can_be_retried_and_deleted,
    handler_panics_and_timeouts_are_isolated, expired_lease_is_reclaimed,
    stale_lease_cannot_settle, enqueue_validates);
suite!(redis_cluster: ping_answers, jobs_run_once, retries_count_attempts, dead_after_max_attempts,
    dead_lists_are_per_queue, dead_jobs_can_be_retried_and_deleted,
    handler_panics_and_timeouts_are_isolated, expired_lease_is_reclaimed,
    stale_lease_cannot_settle, enqueue_validates);
suite!(redis_sentinel: ping_answers, jobs_run_once, retries_count_attempts, dead_after_max_attempts,
    dead_lists_are_per_queue, dead_jobs_can_be_retried_and_deleted,
    handler_panics_and_timeouts_are_isolated, expired_lease_is_reclaimed,
    stale_lease_cannot_settle, enqueue_validates);
