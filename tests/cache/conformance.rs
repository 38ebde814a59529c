//! The cache conformance suite (`corekit::cache::conformance`) on every store: `cache_suite!`
//! makes one test per check, and one running them all on one store.

/// One `#[tokio::test]` per check of `corekit::cache::conformance`, on the store that
/// `new_store()` (an async fn in scope) returns; `keeps_expired` as in
/// `conformance::ping_and_purge`.
#[macro_export]
macro_rules! cache_suite {
    (keeps_expired: $keeps:expr) => {
        $crate::cache_suite!(@tests
            typed_round_trip,
            binary_keys,
            unicode_keys_and_binary_values,
            delete_and_exists,
            ttl_expiry,
            default_ttl_applies,
            expire_changes_lifetime,
            set_if_absent_is_create_only,
            set_if_absent_has_one_winner,
            counters,
            batch_operations,
            delete_prefix_and_clear,
            namespaces_isolate,
            invalid_input_is_rejected,
            corrupt_value_names_the_key,
            single_flight,
            a_panicking_loader_does_not_poison_the_key,
            a_cancelled_leader_hands_over,
            a_hung_loader_is_cut_at_the_loader_timeout,
            refresh_ahead_runs_one_loader_for_many_readers,
            stale_is_served_while_one_refresh_runs,
            a_soft_timeout_waits_for_the_refresh_then_serves_stale,
            fail_safe_returns_stale_when_the_loader_fails,
            a_panicking_refresh_does_not_poison_the_key,
            stats_count,
            rate_limiter,
            ttl_jitter_spreads_expiry,
            lock_is_exclusive_and_fenced,
            lock_only_its_holder_releases,
            lock_keep_alive_and_drop,
            tags_invalidate_their_entries,
            bad_tags_are_refused
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn ping_and_purge() {
            corekit::cache::conformance::ping_and_purge(new_store().await, $keeps).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn run_all_on_one_store() {
            corekit::cache::conformance::run_all(new_store().await, $keeps).await
        }
    };
    (@tests $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                corekit::cache::conformance::$check(new_store().await).await
            }
        )*
    };
}

/// The suite on a Redis deployment, plain and two-tier: `mod plain` and `mod tiered` over the
/// store that `$connect()` (an async fn returning a `RedisStore`) gives.
#[macro_export]
macro_rules! redis_deployment_suites {
    ($connect:path) => {
        mod plain {
            type Store = corekit::cache::RedisStore;
            async fn new_store() -> Store {
                $connect().await
            }
            $crate::cache_suite!(keeps_expired: false);
        }

        mod tiered {
            type Store = corekit::cache::TieredStore;
            async fn new_store() -> Store {
                corekit::cache::TieredStore::builder(
                    corekit::cache::MemoryStore::new(10_000),
                    $connect().await,
                )
                .channel($crate::support::unique("chan"))
                .build()
                .await
                .unwrap()
            }
            $crate::cache_suite!(keeps_expired: true);
        }
    };
}
