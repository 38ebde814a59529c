//! The behaviour every queue [`Broker`] must have, written once over [`Queue`], as public
//! async functions (feature `testing`).
//!
//! Each function takes a connected queue, uses topics no other call uses (see
//! [`unique_topic`]), and panics with a message naming what broke; so the functions can share
//! one server and run in any order or at once. They wait on real time (deliveries, retry
//! delays) and spawn tasks, so run them on a multi-threaded runtime:
//!
//! ```no_run
//! use corekit::queue::{MemoryBroker, Queue, conformance};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn memory_broker_conforms() {
//!     conformance::run_all(Queue::new(MemoryBroker::new())).await;
//! }
//! # fn main() {}
//! ```
//!
//! A third-party broker is done when [`run_all`] passes on it. Calling the checks one by one
//! (one test each) names the failing behaviour in the test report, and lets slow brokers run
//! them in parallel.
//!
//! [`Broker`]: super::Broker

mod consumer;
mod dedupe;
mod delay;
mod rebalance;

pub use consumer::{
    consumer_keeps_per_key_order, consumer_retries_then_dead_letters,
    consumer_survives_panics_and_bad_payloads, graceful_shutdown_finishes_in_flight,
};
pub use dedupe::{
    dedupe_holds_a_copy_while_another_lane_handles_it,
    dedupe_skips_handled_ids_and_retries_failed_ones, dedupe_store_keeps_claims_apart,
};
pub use delay::{
    a_consumer_forwards_delayed_messages, a_stopped_forwarder_loses_no_delayed_message,
    delayed_batches_past_times_and_bad_delays, delayed_delivery_waits_then_reaches_every_group,
    delayed_messages_arrive_in_due_order,
};
pub use rebalance::group_rebalances_without_overlap;

use super::{
    DEAD_LETTER_GROUP, DLQ_ATTEMPTS_HEADER, DLQ_GROUP_HEADER, DLQ_REASON_HEADER, DLQ_TOPIC_HEADER,
    Delivery, Message, Queue, Subscription, TopicOptions,
};
use crate::ErrorKind;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a check waits for a message before failing (Kafka group joins take seconds).
pub const WAIT: Duration = Duration::from_secs(45);

/// A topic name no other call uses (letters, digits and `_`, valid on every broker), so checks
/// sharing a server do not meet.
pub fn unique_topic(name: &str) -> String {
    crate::testing::unique_name(name, '_')
}

/// The next delivery on `sub`.
///
/// # Panics
/// When the subscription fails, ends, or nothing arrives within [`WAIT`]; `what` names the
/// step in the message.
pub async fn recv(sub: &mut Subscription, what: &str) -> Delivery {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("{what}: receive failed: {e}"),
        Ok(None) => panic!("{what}: subscription ended"),
        Err(_) => panic!("{what}: nothing received within {WAIT:?}"),
    }
}

/// Asserts nothing arrives on `sub` within `quiet`; `what` names the step in the panic.
pub async fn nothing_within(sub: &mut Subscription, quiet: Duration, what: &str) {
    if let Ok(Some(d)) = tokio::time::timeout(quiet, sub.next()).await {
        panic!("{what}: unexpected delivery {d:?}");
    }
}

async fn cleanup(queue: &Queue, topics: &[&str]) {
    for t in topics {
        let _ = queue.delete_topic(t).await;
    }
}

/// Every check, one after the other, on `queue`.
pub async fn run_all(queue: Queue) {
    // Each check boxed: together their futures overflow a test thread's stack in debug builds.
    Box::pin(round_trip_is_exact(queue.clone())).await;
    Box::pin(batch_publish_delivers_all(queue.clone())).await;
    Box::pin(each_group_gets_every_message(queue.clone())).await;
    Box::pin(consumers_in_a_group_share_work(queue.clone())).await;
    Box::pin(nack_requeue_redelivers_as_next_attempt(queue.clone())).await;
    Box::pin(retry_after_waits_and_reaches_only_this_group(queue.clone())).await;
    Box::pin(reject_dead_letters_with_reason(queue.clone())).await;
    Box::pin(redrive_returns_dead_letters_to_their_group(queue.clone())).await;
    Box::pin(unsettled_deliveries_come_back(queue.clone())).await;
    Box::pin(crash_loses_nothing(queue.clone())).await;
    Box::pin(typed_payloads(queue.clone())).await;
    Box::pin(consumer_retries_then_dead_letters(queue.clone())).await;
    Box::pin(consumer_survives_panics_and_bad_payloads(queue.clone())).await;
    Box::pin(consumer_keeps_per_key_order(queue.clone())).await;
    Box::pin(graceful_shutdown_finishes_in_flight(queue.clone())).await;
    Box::pin(delayed_delivery_waits_then_reaches_every_group(
        queue.clone(),
    ))
    .await;
    Box::pin(delayed_messages_arrive_in_due_order(queue.clone())).await;
    Box::pin(delayed_batches_past_times_and_bad_delays(queue.clone())).await;
    Box::pin(a_stopped_forwarder_loses_no_delayed_message(queue.clone())).await;
    Box::pin(a_consumer_forwards_delayed_messages(queue.clone())).await;
    Box::pin(dedupe_skips_handled_ids_and_retries_failed_ones(
        queue.clone(),
    ))
    .await;
    Box::pin(dedupe_holds_a_copy_while_another_lane_handles_it(
        queue.clone(),
    ))
    .await;
    Box::pin(bad_input_is_rejected_before_the_broker(queue.clone())).await;
    Box::pin(delete_topic_or_unsupported(queue)).await;
}

/// Payload bytes, key, headers (names and values, empty ones too) and id arrive exactly; the
/// first delivery is attempt 1; an acked message does not come back.
pub async fn round_trip_is_exact(queue: Queue) {
    let t = unique_topic("rt");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let sent = Message::new(all_bytes.clone())
        .with_key("customer-7")
        .with_header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .with_header("Mixed-Case", "Value With Spaces and ünïcode")
        .with_header("empty", "");
    queue.publish(&t, sent.clone()).await.expect("publish");
    let d = recv(&mut sub, "round trip").await;
    let got = d.message();
    assert_eq!(&got.payload[..], &all_bytes[..], "payload bytes");
    assert_eq!(got.key.as_deref(), Some("customer-7"), "key");
    assert_eq!(
        got.headers, sent.headers,
        "headers exact (names and values)"
    );
    assert_eq!(got.id, sent.id, "id");
    assert_eq!(d.attempt(), 1, "first delivery is attempt 1");
    assert_eq!((d.topic(), d.group()), (t.as_str(), "g"));
    d.ack().await.expect("ack");
    nothing_within(&mut sub, Duration::from_millis(500), "after ack").await;
    cleanup(&queue, &[&t]).await;
}

/// Every message of a 100-message `publish_batch` is delivered.
pub async fn batch_publish_delivers_all(queue: Queue) {
    let t = unique_topic("batch");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let batch: Vec<Message> = (0..100).map(|i| Message::new(format!("m{i}"))).collect();
    let ids: BTreeSet<String> = batch.iter().map(|m| m.id.clone()).collect();
    queue.publish_batch(&t, batch).await.expect("publish batch");
    let mut got = BTreeSet::new();
    while got.len() < ids.len() {
        let d = recv(&mut sub, "batch").await;
        got.insert(d.message().id.clone());
        d.ack().await.expect("ack");
    }
    assert_eq!(got, ids);
    cleanup(&queue, &[&t]).await;
}

/// Each consumer group gets every message of the topic.
pub async fn each_group_gets_every_message(queue: Queue) {
    let t = unique_topic("groups");
    let mut a = queue.subscribe(&t, "a").await.expect("subscribe");
    let mut b = queue.subscribe(&t, "b").await.expect("subscribe");
    for i in 0..10 {
        queue
            .publish(&t, Message::new(format!("{i}")))
            .await
            .expect("publish");
    }
    for (name, sub) in [("a", &mut a), ("b", &mut b)] {
        let mut got = BTreeSet::new();
        while got.len() < 10 {
            let d = recv(sub, name).await;
            got.insert(d.message().text().expect("a UTF-8 payload").to_owned());
            d.ack().await.expect("ack");
        }
        assert_eq!(got.len(), 10, "group {name} got all");
    }
    cleanup(&queue, &[&t]).await;
}

/// Two consumers in one group share the messages (both get some), and every message is
/// handled.
pub async fn consumers_in_a_group_share_work(queue: Queue) {
    let t = unique_topic("share");
    queue
        .ensure_topic_with(&t, &TopicOptions::default().partitions(4))
        .await
        .expect("ensure topic with");
    let subs = vec![
        queue.subscribe(&t, "workers").await.expect("subscribe"),
        queue.subscribe(&t, "workers").await.expect("subscribe"),
    ];
    let seen: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    for (n, mut sub) in subs.into_iter().enumerate() {
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok(Some(Ok(d))) = tokio::time::timeout(WAIT, sub.next()).await {
                seen.lock()
                    .expect("lock")
                    .push((n, d.message().text().expect("a UTF-8 payload").to_owned()));
                // Slow enough that one consumer cannot take everything first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                d.ack().await.expect("ack");
            }
        }));
    }
    let total = 60;
    for i in 0..total {
        let m = Message::new(format!("{i}")).with_key(format!("k{i}"));
        queue.publish(&t, m).await.expect("publish");
    }
    let deadline = Instant::now() + WAIT * 2;
    loop {
        let distinct: BTreeSet<String> = seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, m)| m.clone())
            .collect();
        if distinct.len() == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {total} handled",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        task.abort();
    }
    let seen = seen.lock().expect("lock").clone();
    let per: Vec<usize> = (0..2)
        .map(|n| seen.iter().filter(|(c, _)| *c == n).count())
        .collect();
    assert!(
        per.iter().all(|&c| c > 0),
        "both consumers got work: {per:?}"
    );
    cleanup(&queue, &[&t]).await;
}

/// `nack(true)` redelivers the same message (id, key, headers, payload) as attempt 2.
pub async fn nack_requeue_redelivers_as_next_attempt(queue: Queue) {
    let t = unique_topic("nack");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let sent = Message::new("again").with_header("h", "v").with_key("k");
    queue.publish(&t, sent.clone()).await.expect("publish");
    let d = recv(&mut sub, "first").await;
    assert_eq!(d.attempt(), 1);
    d.nack(true).await.expect("nack");
    let d = recv(&mut sub, "redelivery").await;
    assert_eq!(d.attempt(), 2, "redelivery is attempt 2");
    assert_eq!(d.message().id, sent.id, "same id");
    assert_eq!(d.message().headers, sent.headers, "headers kept");
    assert_eq!(d.message().key.as_deref(), Some("k"), "key kept");
    assert_eq!(&d.message().payload[..], b"again");
    d.ack().await.expect("ack");
    nothing_within(&mut sub, Duration::from_millis(500), "after ack").await;
    cleanup(&queue, &[&t]).await;
}

/// `retry_after` redelivers no sooner than asked, as the next attempt, to the same group only.
pub async fn retry_after_waits_and_reaches_only_this_group(queue: Queue) {
    let t = unique_topic("retry");
    let mut g = queue.subscribe(&t, "g").await.expect("subscribe");
    let mut other = queue.subscribe(&t, "other").await.expect("subscribe");
    queue.publish(&t, Message::new("x")).await.expect("publish");
    recv(&mut other, "other group")
        .await
        .ack()
        .await
        .expect("ack");
    let d = recv(&mut g, "first").await;
    let delay = Duration::from_millis(600);
    let start = Instant::now();
    d.retry_after(delay).await.expect("retry after");
    let d = recv(&mut g, "retry").await;
    assert!(
        start.elapsed() >= delay.mul_f64(0.9),
        "retried after {:?}, asked {delay:?}",
        start.elapsed()
    );
    assert_eq!(d.attempt(), 2);
    d.ack().await.expect("ack");
    nothing_within(
        &mut other,
        Duration::from_millis(500),
        "a retry in g reaching other",
    )
    .await;
    cleanup(&queue, &[&t]).await;
}

/// `reject` moves the message, with its id, key and headers, to the dead-letter topic with the
/// reason (line breaks flattened), attempts, topic and group headers; it does not come back.
pub async fn reject_dead_letters_with_reason(queue: Queue) {
    let t = unique_topic("dlq");
    queue
        .ensure_dead_letter(&t)
        .await
        .expect("ensure dead letter");
    let dlq = queue.dead_letter_topic(&t);
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let sent = Message::new("poison").with_header("h", "v").with_key("k");
    queue.publish(&t, sent.clone()).await.expect("publish");
    let d = recv(&mut sub, "first").await;
    d.reject("cannot parse: line 1\nline 2")
        .await
        .expect("reject");
    let mut dead = queue
        .subscribe(&dlq, DEAD_LETTER_GROUP)
        .await
        .expect("subscribe");
    let d = recv(&mut dead, "dead letter").await;
    let m = d.message();
    assert_eq!(&m.payload[..], b"poison");
    assert_eq!(m.id, sent.id, "dead letter keeps the id");
    assert_eq!(m.key.as_deref(), Some("k"));
    assert_eq!(m.headers.get("h").map(String::as_str), Some("v"));
    assert_eq!(m.headers[DLQ_REASON_HEADER], "cannot parse: line 1 line 2");
    assert_eq!(m.headers[DLQ_ATTEMPTS_HEADER], "1");
    assert_eq!(m.headers[DLQ_TOPIC_HEADER], t);
    assert_eq!(m.headers[DLQ_GROUP_HEADER], "g");
    d.ack().await.expect("ack");
    nothing_within(
        &mut sub,
        Duration::from_millis(500),
        "rejected message came back",
    )
    .await;
    cleanup(&queue, &[&t, &dlq]).await;
}

/// `redrive` sends dead letters back to the group that rejected them, as first attempts
/// without the dead-letter headers and under new ids; another group does not see them again.
pub async fn redrive_returns_dead_letters_to_their_group(queue: Queue) {
    let t = unique_topic("redrive");
    queue
        .ensure_dead_letter(&t)
        .await
        .expect("ensure dead letter");
    let dlq = queue.dead_letter_topic(&t);
    let mut failing = queue.subscribe(&t, "failing").await.expect("subscribe");
    let mut other = queue.subscribe(&t, "other").await.expect("subscribe");
    let mut sent = Vec::new();
    for i in 0..2 {
        let m = Message::new(format!("order {i}")).with_header("h", "v");
        queue.publish(&t, m.clone()).await.expect("publish");
        sent.push(m);
    }
    for _ in 0..2 {
        recv(&mut failing, "first delivery")
            .await
            .reject("downstream broken")
            .await
            .expect("reject");
        recv(&mut other, "the other group")
            .await
            .ack()
            .await
            .expect("ack");
    }
    let moved = queue
        .redrive(&t, Duration::from_secs(2))
        .await
        .expect("redrive");
    assert_eq!(moved, 2, "both dead letters sent back");
    let mut payloads = Vec::new();
    for _ in 0..2 {
        let d = recv(&mut failing, "redriven").await;
        let m = d.message();
        assert_eq!(m.attempt, 1, "a first attempt again");
        assert_eq!(m.headers.get("h").map(String::as_str), Some("v"));
        assert!(
            !m.headers.contains_key(DLQ_REASON_HEADER) && !m.headers.contains_key(DLQ_GROUP_HEADER),
            "dead-letter headers removed: {:?}",
            m.headers
        );
        assert!(sent.iter().all(|s| s.id != m.id), "a new id");
        let payload = String::from_utf8_lossy(&m.payload).into_owned();
        // Order 0 is still broken: dead again, it must reach the dead letters again.
        if payload == "order 0" {
            d.reject("still broken").await.expect("reject");
        } else {
            d.ack().await.expect("ack");
        }
        payloads.push(payload);
    }
    payloads.sort();
    assert_eq!(payloads, ["order 0", "order 1"]);
    let moved = queue
        .redrive(&t, Duration::from_secs(2))
        .await
        .expect("redrive");
    assert_eq!(
        moved, 1,
        "the message that died again is a dead letter again"
    );
    let d = recv(&mut failing, "redriven twice").await;
    assert_eq!(&d.message().payload[..], b"order 0");
    d.ack().await.expect("ack");
    nothing_within(
        &mut other,
        Duration::from_millis(500),
        "a redriven message reached a group that had handled it",
    )
    .await;
    let again = queue
        .redrive(&t, Duration::from_millis(500))
        .await
        .expect("redrive");
    assert_eq!(again, 0, "the dead-letter topic is empty");
    cleanup(&queue, &[&t, &dlq]).await;
}

/// A delivery dropped unsettled, with its subscription, is delivered again to the group.
pub async fn unsettled_deliveries_come_back(queue: Queue) {
    let t = unique_topic("unsettled");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    queue
        .publish(&t, Message::new("keep me"))
        .await
        .expect("publish");
    let d = recv(&mut sub, "first").await;
    let id = d.message().id.clone();
    drop(d);
    drop(sub);
    let mut again = queue.subscribe(&t, "g").await.expect("subscribe");
    let d = recv(&mut again, "after a consumer dropped it unsettled").await;
    assert_eq!(d.message().id, id);
    d.ack().await.expect("ack");
    cleanup(&queue, &[&t]).await;
}

/// N messages; a consumer acks some, takes more without acking and dies; a new consumer in the
/// group finishes. Every message is handled at least once, and only unacked ones twice.
pub async fn crash_loses_nothing(queue: Queue) {
    let t = unique_topic("crash");
    let n = 40;
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    queue
        .publish_batch(&t, (0..n).map(|i| Message::new(format!("{i}"))).collect())
        .await
        .expect("publish batch");
    let mut acked = BTreeSet::new();
    let mut unacked = BTreeSet::new();
    let mut held = Vec::new();
    for i in 0..25 {
        let d = recv(&mut sub, "first consumer").await;
        let body = d.message().text().expect("a UTF-8 payload").to_owned();
        if i < 15 {
            acked.insert(body);
            d.ack().await.expect("ack");
        } else {
            unacked.insert(body);
            held.push(d);
        }
    }
    // The crash: deliveries and the consumer gone without a word.
    drop(held);
    drop(sub);
    let mut second = queue.subscribe(&t, "g").await.expect("subscribe");
    let mut handled_again = BTreeMap::<String, u32>::new();
    let mut all = acked.clone();
    while all.len() < n {
        let d = recv(&mut second, "second consumer").await;
        let body = d.message().text().expect("a UTF-8 payload").to_owned();
        *handled_again.entry(body.clone()).or_default() += 1;
        all.insert(body);
        d.ack().await.expect("ack");
    }
    nothing_within(
        &mut second,
        Duration::from_secs(2),
        "after all were handled",
    )
    .await;
    let twice: BTreeSet<String> = handled_again
        .keys()
        .filter(|b| acked.contains(*b))
        .cloned()
        .collect();
    assert!(
        twice.is_empty(),
        "acked messages delivered again: {twice:?}"
    );
    assert!(
        unacked.iter().all(|b| handled_again.contains_key(b)),
        "every unacked message came back"
    );
    cleanup(&queue, &[&t]).await;
}

/// A typed payload the checks publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    sku: String,
}

/// `publish_json` round-trips a typed value; decoding to the wrong type is `InvalidInput`.
pub async fn typed_payloads(queue: Queue) {
    let t = unique_topic("typed");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let order = Order {
        id: 7,
        sku: "ABC-1".into(),
    };
    queue.publish_json(&t, &order).await.expect("publish json");
    let d = recv(&mut sub, "typed").await;
    assert_eq!(d.message().decode::<Order>().expect("decode"), order);
    let e = d
        .message()
        .decode::<Vec<u8>>()
        .expect_err("decoding an object as a list");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    d.ack().await.expect("ack");
    cleanup(&queue, &[&t]).await;
}

/// Bad topic and group names, oversize payloads, reserved or multi-line headers are
/// `InvalidInput` before any broker call; the queue still answers `ping` afterwards.
pub async fn bad_input_is_rejected_before_the_broker(queue: Queue) {
    let q = queue.clone();
    let cases: Vec<(&str, crate::Result<()>)> = vec![
        ("empty topic", q.publish("", Message::new("x")).await),
        ("space in topic", q.publish("a b", Message::new("x")).await),
        ("wildcard topic", q.publish("a.*", Message::new("x")).await),
        (
            "oversize payload",
            q.publish("ok", Message::new(vec![0u8; (1 << 20) + 1]))
                .await,
        ),
        (
            "reserved header",
            q.publish("ok", Message::new("x").with_header("corekit-id", "1"))
                .await,
        ),
        (
            "newline in header",
            q.publish("ok", Message::new("x").with_header("h", "a\r\nb"))
                .await,
        ),
        ("dot in group", q.subscribe("ok", "a.b").await.map(drop)),
    ];
    for (what, result) in cases {
        let e = result.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
    }
    queue.ping().await.expect("ping");
}

/// Deleting a topic works, or is a typed `Unsupported` naming the operation. Of corekit's own
/// brokers only Kafka answers `Unsupported` (deleting a topic crashed librdkafka clients that
/// had it cached).
pub async fn delete_topic_or_unsupported(queue: Queue) {
    let t = unique_topic("del");
    queue.ensure_topic(&t).await.expect("ensure_topic");
    queue.ensure_group(&t, "g").await.expect("ensure_group");
    match queue.delete_topic(&t).await {
        Ok(()) => assert_ne!(
            queue.backend_name(),
            "kafka",
            "corekit's Kafka broker refuses to delete topics"
        ),
        Err(e) => {
            assert!(
                !matches!(queue.backend_name(), "memory" | "rabbitmq" | "nats"),
                "corekit's {} broker deletes topics: {e}",
                queue.backend_name()
            );
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert_eq!(e.operation(), Some("delete_topic"), "{e}");
        }
    }
}
