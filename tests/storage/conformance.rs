//! The storage conformance suite (`corekit::storage::conformance`) on every backend:
//! `storage_suite!` makes one test per check.

/// One `#[tokio::test]` per check of `corekit::storage::conformance`, on the handle and base
/// prefix that `storage()` (an async fn in scope) returns; presigned URLs are fetched with
/// [`crate::http`]; a test that passes removes what `storage()` made
/// ([`crate::scratch::discard`]).
#[macro_export]
macro_rules! storage_suite {
    () => {
        $crate::storage_suite!(@tests
            metadata_round_trips,
            overwrites_replace_metadata,
            ranges,
            listing,
            many_keys_list_completely,
            copy_and_rename,
            metadata_contract,
            list_after_starts_after,
            conditional_operations,
            one_of_fifty_create_only_writers_wins,
            bad_input_is_rejected,
            streaming_put_and_get,
            scoped_handles_see_only_their_prefix
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn presigned_urls() {
            let (storage, base) = storage().await;
            corekit::storage::conformance::presigned_urls(storage.clone(), &base, $crate::http)
                .await;
            $crate::scratch::discard(storage).await;
        }
    };
    (@tests $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (storage, base) = storage().await;
                corekit::storage::conformance::$name(storage.clone(), &base).await;
                $crate::scratch::discard(storage).await;
            }
        )*
    };
}
