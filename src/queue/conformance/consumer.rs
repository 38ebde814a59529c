//! The checks of [`Consumer`], the handler runner every broker shares: retries, dead letters,
//! panics, per-key order and graceful shutdown.

use super::{Order, WAIT, cleanup, recv, unique_topic};
use crate::ErrorKind;
use crate::queue::{
    BoxFuture, ConsumeReport, Consumer, DEAD_LETTER_GROUP, DLQ_ATTEMPTS_HEADER, DLQ_REASON_HEADER,
    Message, Queue,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `consumer` until `done` returns true of what it handled, then shuts it down.
pub(super) async fn run_until(
    consumer: Consumer,
    handler: impl Fn(Message) -> BoxFuture<'static, crate::Result<()>> + Send + Sync + 'static,
    done: impl Fn() -> bool + Send + 'static,
) -> ConsumeReport {
    let shutdown = async move {
        let deadline = Instant::now() + WAIT * 2;
        while !done() {
            assert!(Instant::now() < deadline, "consumer did not finish in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    consumer.run(handler, shutdown).await.expect("run")
}

/// A [`Consumer`] retries a failing message up to `max_attempts` (attempts numbered 1..=max),
/// then dead-letters it with the handler's error as the reason; other messages are acked.
pub async fn consumer_retries_then_dead_letters(queue: Queue) {
    let t = unique_topic("cretry");
    let attempts: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    queue
        .ensure_dead_letter(&t)
        .await
        .expect("ensure dead letter");
    let consumer = queue
        .consumer(&t, "g")
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(40));
    // Start consuming before publishing (RabbitMQ routes only to existing group queues).
    queue.ensure_group(&t, "g").await.expect("ensure group");
    queue
        .publish(&t, Message::new("bad"))
        .await
        .expect("publish");
    queue
        .publish(&t, Message::new("good"))
        .await
        .expect("publish");
    let seen = attempts.clone();
    let report = run_until(
        consumer,
        move |m| {
            let seen = seen.clone();
            Box::pin(async move {
                let body = m.text().expect("a UTF-8 payload").to_owned();
                seen.lock()
                    .expect("lock")
                    .entry(body.clone())
                    .or_default()
                    .push(m.attempt);
                if body == "bad" {
                    Err(crate::Error::new(ErrorKind::Backend, "downstream said no"))
                } else {
                    Ok(())
                }
            })
        },
        {
            let attempts = attempts.clone();
            move || {
                let a = attempts.lock().expect("lock");
                a.get("bad").is_some_and(|v| v.len() == 3) && a.contains_key("good")
            }
        },
    )
    .await;
    let a = attempts.lock().expect("lock").clone();
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
        .expect("subscribe");
    let d = recv(&mut dead, "dead letter").await;
    assert_eq!(&d.message().payload[..], b"bad");
    assert_eq!(d.message().headers[DLQ_ATTEMPTS_HEADER], "3");
    assert!(
        d.message().headers[DLQ_REASON_HEADER].contains("downstream said no"),
        "{:?}",
        d.message().headers
    );
    d.ack().await.expect("ack");
    cleanup(&queue, &[&t, &queue.dead_letter_topic(&t)]).await;
}

/// A [`Consumer`] whose handler panics retries the message; a payload that does not decode
/// (`InvalidInput`) is dead-lettered at once.
pub async fn consumer_survives_panics_and_bad_payloads(queue: Queue) {
    let t = unique_topic("panic");
    queue.ensure_group(&t, "g").await.expect("ensure group");
    queue
        .publish(&t, Message::new("panic once"))
        .await
        .expect("publish");
    queue
        .publish(&t, Message::new("not json"))
        .await
        .expect("publish");
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
                let body = m.text().expect("a UTF-8 payload").to_owned();
                h.lock().expect("lock").push((body.clone(), m.attempt));
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
            move || handled.lock().expect("lock").len() >= 3
        },
    )
    .await;
    assert_eq!(report.panicked, 1, "{report:?}");
    assert_eq!(
        report.dead_lettered, 1,
        "bad payload dead-lettered: {report:?}"
    );
    let mut h = handled.lock().expect("lock").clone();
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
    let mut dead = queue
        .subscribe(&dlq, DEAD_LETTER_GROUP)
        .await
        .expect("subscribe");
    let d = recv(&mut dead, "dead letter").await;
    assert!(d.message().headers[DLQ_REASON_HEADER].contains("does not decode"));
    assert_eq!(d.message().headers[DLQ_ATTEMPTS_HEADER], "1");
    d.ack().await.expect("ack");
    cleanup(&queue, &[&t, &dlq]).await;
}

/// A [`Consumer`] with concurrency 4 handles messages of one key in publish order.
pub async fn consumer_keeps_per_key_order(queue: Queue) {
    let t = unique_topic("order");
    queue.ensure_group(&t, "g").await.expect("ensure group");
    let keys = ["a", "b", "c"];
    let per_key = 15;
    let mut batch = Vec::new();
    for i in 0..per_key {
        for k in keys {
            batch.push(Message::new(format!("{i}")).with_key(k));
        }
    }
    queue.publish_batch(&t, batch).await.expect("publish batch");
    let seen: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let s = seen.clone();
    let report = run_until(
        queue.consumer(&t, "g").concurrency(4),
        move |m| {
            let s = s.clone();
            Box::pin(async move {
                // Random work time: without per-key lanes, order would break.
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..8))).await;
                let n: u32 = m.text().expect("a UTF-8 payload").parse().expect("parse");
                s.lock()
                    .expect("lock")
                    .entry(m.key.clone().expect("a key"))
                    .or_default()
                    .push(n);
                Ok(())
            })
        },
        {
            let seen = seen.clone();
            move || {
                seen.lock()
                    .expect("lock")
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
                    >= 45
            }
        },
    )
    .await;
    let seen = seen.lock().expect("lock").clone();
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
    let t = unique_topic("shutdown");
    queue.ensure_group(&t, "g").await.expect("ensure group");
    let n = 20;
    queue
        .publish_batch(&t, (0..n).map(|i| Message::new(format!("{i}"))).collect())
        .await
        .expect("publish batch");
    let started: Arc<Mutex<Vec<String>>> = Arc::default();
    let finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let (st, fi) = (started.clone(), finished.clone());
    let report = run_until(
        queue.consumer(&t, "g").concurrency(2),
        move |m| {
            let (st, fi) = (st.clone(), fi.clone());
            Box::pin(async move {
                let body = m.text().expect("a UTF-8 payload").to_owned();
                st.lock().expect("lock").push(body.clone());
                tokio::time::sleep(Duration::from_millis(300)).await;
                fi.lock().expect("lock").push(body);
                Ok(())
            })
        },
        {
            let started = started.clone();
            move || started.lock().expect("lock").len() >= 3
        },
    )
    .await;
    let started = started.lock().expect("lock").clone();
    let finished = finished.lock().expect("lock").clone();
    assert_eq!(
        started.len(),
        finished.len(),
        "every started handler finished before run returned"
    );
    assert_eq!(report.acked as usize, finished.len(), "{report:?}");
    assert!(finished.len() < n, "shutdown stopped fetching");
    // The rest goes to the next consumer.
    let mut all: BTreeSet<String> = finished.iter().cloned().collect();
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    while all.len() < n {
        let d = recv(&mut sub, "after shutdown").await;
        all.insert(d.message().text().expect("a UTF-8 payload").to_owned());
        d.ack().await.expect("ack");
    }
    cleanup(&queue, &[&t]).await;
}
