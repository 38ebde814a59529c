//! The queue conformance suite (`corekit::queue::conformance`) on every broker: `queue_suite!`
//! makes one test per check.

/// One `#[tokio::test]` per check of `corekit::queue::conformance`, on the queue that `queue()`
/// (an async fn in scope) returns.
#[macro_export]
macro_rules! queue_suite {
    () => {
        $crate::queue_suite!(@tests
            round_trip_is_exact,
            batch_publish_delivers_all,
            each_group_gets_every_message,
            consumers_in_a_group_share_work,
            nack_requeue_redelivers_as_next_attempt,
            retry_after_waits_and_reaches_only_this_group,
            reject_dead_letters_with_reason,
            redrive_returns_dead_letters_to_their_group,
            unsettled_deliveries_come_back,
            crash_loses_nothing,
            typed_payloads,
            consumer_retries_then_dead_letters,
            consumer_survives_panics_and_bad_payloads,
            consumer_keeps_per_key_order,
            graceful_shutdown_finishes_in_flight,
            group_rebalances_without_overlap,
            delayed_delivery_waits_then_reaches_every_group,
            delayed_messages_arrive_in_due_order,
            delayed_batches_past_times_and_bad_delays,
            a_stopped_forwarder_loses_no_delayed_message,
            a_consumer_forwards_delayed_messages,
            dedupe_skips_handled_ids_and_retries_failed_ones,
            dedupe_holds_a_copy_while_another_lane_handles_it,
            bad_input_is_rejected_before_the_broker,
            delete_topic_or_unsupported
        );
    };
    (@tests $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                corekit::queue::conformance::$name(queue().await).await
            }
        )*
    };
}
