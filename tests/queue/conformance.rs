//! The behaviour every queue backend must have, written once over `Queue`.
//!
//! Each function takes a connected queue and uses topics of its own on the shared server; it
//! panics with a message naming what broke. `queue_suite!` turns them into one `#[tokio::test]`
//! each per backend.

use corekit::ErrorKind;
use corekit::queue::{
    DEAD_LETTER_GROUP, DLQ_ATTEMPTS_HEADER, DLQ_GROUP_HEADER, DLQ_REASON_HEADER, DLQ_TOPIC_HEADER,
    Delivery, Message, Queue, Subscription,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for a message before failing (Kafka group joins take seconds).
pub const WAIT: Duration = Duration::from_secs(45);

pub fn topic(name: &str) -> String {
    crate::support::unique(name).replace('-', "_")
}

pub async fn recv(sub: &mut Subscription, what: &str) -> Delivery {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("{what}: receive failed: {e}"),
        Ok(None) => panic!("{what}: subscription ended"),
        Err(_) => panic!("{what}: nothing received within {WAIT:?}"),
    }
}

/// Asserts nothing arrives within `quiet`.
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

pub async fn round_trip_is_exact(queue: Queue) {
    let t = topic("rt");
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let sent = Message::new(all_bytes.clone())
        .with_key("customer-7")
        .with_header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .with_header("Mixed-Case", "Value With Spaces and ünïcode")
        .with_header("empty", "");
    queue.publish(&t, sent.clone()).await.unwrap();
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
    d.ack().await.unwrap();
    nothing_within(&mut sub, Duration::from_millis(500), "after ack").await;
    cleanup(&queue, &[&t]).await;
}

pub async fn batch_publish_delivers_all(queue: Queue) {
    let t = topic("batch");
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    let batch: Vec<Message> = (0..100).map(|i| Message::new(format!("m{i}"))).collect();
    let ids: BTreeSet<String> = batch.iter().map(|m| m.id.clone()).collect();
    queue.publish_batch(&t, batch).await.unwrap();
    let mut got = BTreeSet::new();
    while got.len() < ids.len() {
        let d = recv(&mut sub, "batch").await;
        got.insert(d.message().id.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(got, ids);
    cleanup(&queue, &[&t]).await;
}

pub async fn each_group_gets_every_message(queue: Queue) {
    let t = topic("groups");
    let mut a = queue.subscribe(&t, "a").await.unwrap();
    let mut b = queue.subscribe(&t, "b").await.unwrap();
    for i in 0..10 {
        queue
            .publish(&t, Message::new(format!("{i}")))
            .await
            .unwrap();
    }
    for (name, sub) in [("a", &mut a), ("b", &mut b)] {
        let mut got = BTreeSet::new();
        while got.len() < 10 {
            let d = recv(sub, name).await;
            got.insert(d.message().text().unwrap().to_owned());
            d.ack().await.unwrap();
        }
        assert_eq!(got.len(), 10, "group {name} got all");
    }
    cleanup(&queue, &[&t]).await;
}

pub async fn consumers_in_a_group_share_work(queue: Queue) {
    let t = topic("share");
    queue
        .ensure_topic_with(&t, &corekit::queue::TopicOptions::default().partitions(4))
        .await
        .unwrap();
    let subs = vec![
        queue.subscribe(&t, "workers").await.unwrap(),
        queue.subscribe(&t, "workers").await.unwrap(),
    ];
    let seen: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    for (n, mut sub) in subs.into_iter().enumerate() {
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok(Some(Ok(d))) = tokio::time::timeout(WAIT, sub.next()).await {
                seen.lock()
                    .unwrap()
                    .push((n, d.message().text().unwrap().to_owned()));
                // Slow enough that one consumer cannot take everything first.
                tokio::time::sleep(Duration::from_millis(20)).await;
                d.ack().await.unwrap();
            }
        }));
    }
    let total = 60;
    for i in 0..total {
        let m = Message::new(format!("{i}")).with_key(format!("k{i}"));
        queue.publish(&t, m).await.unwrap();
    }
    let deadline = Instant::now() + WAIT * 2;
    loop {
        let distinct: BTreeSet<String> = seen
            .lock()
            .unwrap()
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
    let seen = seen.lock().unwrap().clone();
    let per: Vec<usize> = (0..2)
        .map(|n| seen.iter().filter(|(c, _)| *c == n).count())
        .collect();
    assert!(
        per.iter().all(|&c| c > 0),
        "both consumers got work: {per:?}"
    );
    cleanup(&queue, &[&t]).await;
}

pub async fn nack_requeue_redelivers_as_next_attempt(queue: Queue) {
    let t = topic("nack");
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    let sent = Message::new("again").with_header("h", "v").with_key("k");
    queue.publish(&t, sent.clone()).await.unwrap();
    let d = recv(&mut sub, "first").await;
    assert_eq!(d.attempt(), 1);
    d.nack(true).await.unwrap();
    let d = recv(&mut sub, "redelivery").await;
    assert_eq!(d.attempt(), 2, "redelivery is attempt 2");
    assert_eq!(d.message().id, sent.id, "same id");
    assert_eq!(d.message().headers, sent.headers, "headers kept");
    assert_eq!(d.message().key.as_deref(), Some("k"), "key kept");
    assert_eq!(&d.message().payload[..], b"again");
    d.ack().await.unwrap();
    nothing_within(&mut sub, Duration::from_millis(500), "after ack").await;
    cleanup(&queue, &[&t]).await;
}

pub async fn retry_after_waits_and_reaches_only_this_group(queue: Queue) {
    let t = topic("retry");
    let mut g = queue.subscribe(&t, "g").await.unwrap();
    let mut other = queue.subscribe(&t, "other").await.unwrap();
    queue.publish(&t, Message::new("x")).await.unwrap();
    recv(&mut other, "other group").await.ack().await.unwrap();
    let d = recv(&mut g, "first").await;
    let delay = Duration::from_millis(600);
    let start = Instant::now();
    d.retry_after(delay).await.unwrap();
    let d = recv(&mut g, "retry").await;
    assert!(
        start.elapsed() >= delay.mul_f64(0.9),
        "retried after {:?}, asked {delay:?}",
        start.elapsed()
    );
    assert_eq!(d.attempt(), 2);
    d.ack().await.unwrap();
    nothing_within(
        &mut other,
        Duration::from_millis(500),
        "a retry in g reaching other",
    )
    .await;
    cleanup(&queue, &[&t]).await;
}

pub async fn reject_dead_letters_with_reason(queue: Queue) {
    let t = topic("dlq");
    queue.ensure_dead_letter(&t).await.unwrap();
    let dlq = queue.dead_letter_topic(&t);
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    let sent = Message::new("poison").with_header("h", "v").with_key("k");
    queue.publish(&t, sent.clone()).await.unwrap();
    let d = recv(&mut sub, "first").await;
    d.reject("cannot parse: line 1\nline 2").await.unwrap();
    let mut dead = queue.subscribe(&dlq, DEAD_LETTER_GROUP).await.unwrap();
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
    d.ack().await.unwrap();
    nothing_within(
        &mut sub,
        Duration::from_millis(500),
        "rejected message came back",
    )
    .await;
    cleanup(&queue, &[&t, &dlq]).await;
}

pub async fn unsettled_deliveries_come_back(queue: Queue) {
    let t = topic("unsettled");
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    queue.publish(&t, Message::new("keep me")).await.unwrap();
    let d = recv(&mut sub, "first").await;
    let id = d.message().id.clone();
    drop(d);
    drop(sub);
    let mut again = queue.subscribe(&t, "g").await.unwrap();
    let d = recv(&mut again, "after a consumer dropped it unsettled").await;
    assert_eq!(d.message().id, id);
    d.ack().await.unwrap();
    cleanup(&queue, &[&t]).await;
}

/// N messages; a consumer acks some, takes more without acking and dies; a new consumer in the
/// group finishes. Every message is handled at least once, and only unacked ones twice.
pub async fn crash_loses_nothing(queue: Queue) {
    let t = topic("crash");
    let n = 40;
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    queue
        .publish_batch(&t, (0..n).map(|i| Message::new(format!("{i}"))).collect())
        .await
        .unwrap();
    let mut acked = BTreeSet::new();
    let mut unacked = BTreeSet::new();
    let mut held = Vec::new();
    for i in 0..25 {
        let d = recv(&mut sub, "first consumer").await;
        let body = d.message().text().unwrap().to_owned();
        if i < 15 {
            acked.insert(body);
            d.ack().await.unwrap();
        } else {
            unacked.insert(body);
            held.push(d);
        }
    }
    // The crash: deliveries and the consumer gone without a word.
    drop(held);
    drop(sub);
    let mut second = queue.subscribe(&t, "g").await.unwrap();
    let mut handled_again = BTreeMap::<String, u32>::new();
    let mut all = acked.clone();
    while all.len() < n {
        let d = recv(&mut second, "second consumer").await;
        let body = d.message().text().unwrap().to_owned();
        *handled_again.entry(body.clone()).or_default() += 1;
        all.insert(body);
        d.ack().await.unwrap();
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    sku: String,
}

pub async fn typed_payloads(queue: Queue) {
    let t = topic("typed");
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    let order = Order {
        id: 7,
        sku: "ABC-1".into(),
    };
    queue.publish_json(&t, &order).await.unwrap();
    let d = recv(&mut sub, "typed").await;
    assert_eq!(d.message().decode::<Order>().unwrap(), order);
    let e = d.message().decode::<Vec<u8>>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    d.ack().await.unwrap();
    cleanup(&queue, &[&t]).await;
}

/// Runs `consumer` until `done` returns true of what it handled, then shuts it down.
async fn run_until(
    consumer: corekit::queue::Consumer,
    handler: impl Fn(Message) -> futures_util::future::BoxFuture<'static, Result<(), corekit::Error>>
    + Send
    + Sync
    + 'static,
    done: impl Fn() -> bool + Send + 'static,
) -> corekit::queue::ConsumeReport {
    let shutdown = async move {
        let deadline = Instant::now() + WAIT * 2;
        while !done() {
            assert!(Instant::now() < deadline, "consumer did not finish in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    consumer.run(handler, shutdown).await.unwrap()
}

pub async fn consumer_retries_then_dead_letters(queue: Queue) {
    let t = topic("cretry");
    let attempts: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    queue.ensure_dead_letter(&t).await.unwrap();
    let consumer = queue
        .consumer(&t, "g")
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(40));
    // Start consuming before publishing (RabbitMQ routes only to existing group queues).
    queue.ensure_group(&t, "g").await.unwrap();
    queue.publish(&t, Message::new("bad")).await.unwrap();
    queue.publish(&t, Message::new("good")).await.unwrap();
    let seen = attempts.clone();
    let report = run_until(
        consumer,
        move |m| {
            let seen = seen.clone();
            Box::pin(async move {
                let body = m.text().unwrap().to_owned();
                seen.lock()
                    .unwrap()
                    .entry(body.clone())
                    .or_default()
                    .push(m.attempt);
                if body == "bad" {
                    Err(corekit::Error::new(
                        ErrorKind::Backend,
                        "downstream said no",
                    ))
                } else {
                    Ok(())
                }
            })
        },
        {
            let attempts = attempts.clone();
            move || {
                let a = attempts.lock().unwrap();
                a.get("bad").is_some_and(|v| v.len() == 3) && a.contains_key("good")
            }
        },
    )
    .await;
    let a = attempts.lock().unwrap().clone();
    assert_eq!(a["bad"], vec![1, 2, 3], "attempts numbered 1..=max");
    assert_eq!(a["good"], vec![1]);
    assert_eq!(
        (report.retried, report.dead_lettered, report.acked),
        (2, 1, 1),
        "{report:?}"
    );
    let mut dead = queue
        .subscribe(&queue.dead_letter_topic(&t), DEAD_LETTER_GROUP)
        .await
        .unwrap();
    let d = recv(&mut dead, "dead letter").await;
    assert_eq!(&d.message().payload[..], b"bad");
    assert_eq!(d.message().headers[DLQ_ATTEMPTS_HEADER], "3");
    assert!(
        d.message().headers[DLQ_REASON_HEADER].contains("downstream said no"),
        "{:?}",
        d.message().headers
    );
    d.ack().await.unwrap();
    cleanup(&queue, &[&t, &queue.dead_letter_topic(&t)]).await;
}

pub async fn consumer_survives_panics_and_bad_payloads(queue: Queue) {
    let t = topic("panic");
    queue.ensure_group(&t, "g").await.unwrap();
    queue.publish(&t, Message::new("panic once")).await.unwrap();
    queue.publish(&t, Message::new("not json")).await.unwrap();
    let handled: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let h = handled.clone();
    let consumer = queue
        .consumer(&t, "g")
        .backoff(Duration::from_millis(10), Duration::from_millis(10));
    let report = run_until(
        consumer,
        move |m| {
            let h = h.clone();
            Box::pin(async move {
                let body = m.text().unwrap().to_owned();
                h.lock().unwrap().push((body.clone(), m.attempt));
                if body == "panic once" && m.attempt == 1 {
                    panic!("handler bug");
                }
                if body == "not json" {
                    // A decode failure is InvalidInput: dead-lettered without retrying.
                    m.decode::<Order>()?;
                }
                Ok(())
            })
        },
        {
            let handled = handled.clone();
            move || handled.lock().unwrap().len() >= 3
        },
    )
    .await;
    assert_eq!(report.panicked, 1, "{report:?}");
    assert_eq!(
        report.dead_lettered, 1,
        "bad payload dead-lettered: {report:?}"
    );
    let mut h = handled.lock().unwrap().clone();
    h.sort();
    assert_eq!(
        h,
        vec![
            ("not json".into(), 1),
            ("panic once".into(), 1),
            ("panic once".into(), 2)
        ]
    );
    let dlq = queue.dead_letter_topic(&t);
    let mut dead = queue.subscribe(&dlq, DEAD_LETTER_GROUP).await.unwrap();
    let d = recv(&mut dead, "dead letter").await;
    assert!(d.message().headers[DLQ_REASON_HEADER].contains("does not decode"));
    assert_eq!(d.message().headers[DLQ_ATTEMPTS_HEADER], "1");
    d.ack().await.unwrap();
    cleanup(&queue, &[&t, &dlq]).await;
}

pub async fn consumer_keeps_per_key_order(queue: Queue) {
    let t = topic("order");
    queue.ensure_group(&t, "g").await.unwrap();
    let keys = ["a", "b", "c"];
    let per_key = 15;
    let mut batch = Vec::new();
    for i in 0..per_key {
        for k in keys {
            batch.push(Message::new(format!("{i}")).with_key(k));
        }
    }
    queue.publish_batch(&t, batch).await.unwrap();
    let seen: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let s = seen.clone();
    let report = run_until(
        queue.consumer(&t, "g").concurrency(4),
        move |m| {
            let s = s.clone();
            Box::pin(async move {
                // Random work time: without per-key lanes, order would break.
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..8))).await;
                let n: u32 = m.text().unwrap().parse().unwrap();
                s.lock()
                    .unwrap()
                    .entry(m.key.clone().unwrap())
                    .or_default()
                    .push(n);
                Ok(())
            })
        },
        {
            let seen = seen.clone();
            move || seen.lock().unwrap().values().map(Vec::len).sum::<usize>() >= 45
        },
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    for k in keys {
        assert_eq!(
            seen[k],
            (0..per_key).collect::<Vec<u32>>(),
            "order of key {k}"
        );
    }
    assert_eq!(report.acked, 45);
    cleanup(&queue, &[&t]).await;
}

/// Shutdown while handlers run: they finish and are acked; the rest is delivered to the next
/// consumer; nothing is lost.
pub async fn graceful_shutdown_finishes_in_flight(queue: Queue) {
    let t = topic("shutdown");
    queue.ensure_group(&t, "g").await.unwrap();
    let n = 20;
    queue
        .publish_batch(&t, (0..n).map(|i| Message::new(format!("{i}"))).collect())
        .await
        .unwrap();
    let started: Arc<Mutex<Vec<String>>> = Arc::default();
    let finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let (st, fi) = (started.clone(), finished.clone());
    let report = run_until(
        queue.consumer(&t, "g").concurrency(2),
        move |m| {
            let (st, fi) = (st.clone(), fi.clone());
            Box::pin(async move {
                let body = m.text().unwrap().to_owned();
                st.lock().unwrap().push(body.clone());
                tokio::time::sleep(Duration::from_millis(300)).await;
                fi.lock().unwrap().push(body);
                Ok(())
            })
        },
        {
            let started = started.clone();
            move || started.lock().unwrap().len() >= 3
        },
    )
    .await;
    let started = started.lock().unwrap().clone();
    let finished = finished.lock().unwrap().clone();
    assert_eq!(
        started.len(),
        finished.len(),
        "every started handler finished before run returned"
    );
    assert_eq!(report.acked as usize, finished.len(), "{report:?}");
    assert!(finished.len() < n, "shutdown stopped fetching");
    // The rest goes to the next consumer.
    let mut all: BTreeSet<String> = finished.iter().cloned().collect();
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    while all.len() < n {
        let d = recv(&mut sub, "after shutdown").await;
        all.insert(d.message().text().unwrap().to_owned());
        d.ack().await.unwrap();
    }
    cleanup(&queue, &[&t]).await;
}

pub async fn bad_input_is_rejected_before_the_broker(queue: Queue) {
    let q = queue.clone();
    let cases: Vec<(&str, corekit::Result<()>)> = vec![
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
    queue.ping().await.unwrap();
}

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
            unsettled_deliveries_come_back,
            crash_loses_nothing,
            typed_payloads,
            consumer_retries_then_dead_letters,
            consumer_survives_panics_and_bad_payloads,
            consumer_keeps_per_key_order,
            graceful_shutdown_finishes_in_flight,
            bad_input_is_rejected_before_the_broker,
            delete_topic_or_unsupported
        );
    };
    (@tests $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::conformance::$name(queue().await).await
            }
        )*
    };
}

/// Deleting a topic: supported everywhere but Kafka, where it is a typed `Unsupported`.
pub async fn delete_topic_or_unsupported(queue: Queue) {
    let t = topic("del");
    queue.ensure_topic(&t).await.unwrap();
    queue.ensure_group(&t, "g").await.unwrap();
    match queue.delete_topic(&t).await {
        Ok(()) => assert_ne!(queue.backend_name(), "kafka"),
        Err(e) => {
            assert_eq!(queue.backend_name(), "kafka", "{e}");
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert_eq!(e.operation(), Some("delete_topic"));
        }
    }
}
