//! The checks of delayed delivery ([`Queue::publish_at`]), written once over [`Queue`] and its
//! [`DelayForwarder`](crate::queue::DelayForwarder).

use super::{WAIT, cleanup, recv, unique_topic};
use crate::ErrorKind;
use crate::queue::{ForwardReport, MAX_DELAY, Message, Queue, Subscription};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A queue with level topics of its own (so checks sharing a broker do not share forwarders)
/// and a forwarder running on it, shown to be receiving (a first delayed message came through).
struct Forwarding {
    queue: Queue,
    stop: oneshot::Sender<()>,
    run: tokio::task::JoinHandle<crate::Result<ForwardReport>>,
}

impl Forwarding {
    async fn start(queue: &Queue, name: &str) -> Self {
        let queue = queue
            .with_delay_topics(&unique_topic(name))
            .expect("delay topics");
        let (stop, run) = spawn_forwarder(&queue);
        let t = unique_topic("dwarm");
        let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
        queue
            .publish_after(&t, Message::new("warm"), Duration::from_millis(100))
            .await
            .expect("publish_after");
        recv(&mut sub, "the forwarder's first message")
            .await
            .ack()
            .await
            .expect("ack");
        cleanup(&queue, &[&t]).await;
        Self { queue, stop, run }
    }

    /// Stops the forwarder, then deletes the level topics.
    async fn finish(self) -> ForwardReport {
        drop(self.stop);
        let report = tokio::time::timeout(WAIT, self.run)
            .await
            .expect("the forwarder stops")
            .expect("join")
            .expect("forwarder run");
        delete_levels(&self.queue).await;
        report
    }
}

fn spawn_forwarder(
    queue: &Queue,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<crate::Result<ForwardReport>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let forwarder = queue.delay_forwarder();
    let run = tokio::spawn(async move {
        forwarder
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    (stop, run)
}

async fn delete_levels(queue: &Queue) {
    for t in queue.delay.topics() {
        let _ = queue.delete_topic(t).await;
        let _ = queue.delete_topic(&queue.dead_letter_topic(t)).await;
    }
}

/// Receives one delivery, acks it, and checks it did not arrive before `due_ms`; returns it
/// with its lateness.
async fn recv_due(sub: &mut Subscription, due_ms: u64, what: &str) -> (Message, Duration) {
    let d = recv(sub, what).await;
    let now = unix_ms(SystemTime::now());
    assert!(
        now >= due_ms,
        "{what}: delivered {} ms before it was due",
        due_ms - now
    );
    let m = d.message().clone();
    d.ack().await.expect("ack");
    (m, Duration::from_millis(now - due_ms))
}

/// A message delayed 2 s reaches every group no earlier than due, with its payload, id, key and
/// headers as published and no delay headers left; one delayed 9 s (two levels) too.
pub async fn delayed_delivery_waits_then_reaches_every_group(queue: Queue) {
    let fwd = Forwarding::start(&queue, "dfwd").await;
    let queue = fwd.queue.clone();
    let t = unique_topic("delayed");
    let mut a = queue.subscribe(&t, "a").await.expect("subscribe");
    let mut b = queue.subscribe(&t, "b").await.expect("subscribe");
    for delay in [Duration::from_secs(2), Duration::from_secs(9)] {
        let sent = Message::new(vec![0u8, 1, 255])
            .with_key("customer-7")
            .with_header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .with_header("Mixed-Case", "v");
        let due = unix_ms(SystemTime::now() + delay);
        queue
            .publish_after(&t, sent.clone(), delay)
            .await
            .expect("publish_after");
        for (name, sub) in [("a", &mut a), ("b", &mut b)] {
            let (got, late) = recv_due(sub, due, name).await;
            assert_eq!(got.payload, sent.payload, "payload");
            assert_eq!(got.id, sent.id, "id");
            assert_eq!(got.key, sent.key, "key");
            assert_eq!(got.headers, sent.headers, "headers, no delay headers left");
            assert_eq!(got.attempt, 1, "a first delivery");
            eprintln!(
                "{}: delayed {delay:?}, group {name}: {late:?} late",
                queue.backend_name()
            );
        }
    }
    cleanup(&queue, &[&t]).await;
    fwd.finish().await;
}

/// Messages of one key published at once with different delays arrive in the order they are
/// due.
pub async fn delayed_messages_arrive_in_due_order(queue: Queue) {
    let fwd = Forwarding::start(&queue, "dord").await;
    let queue = fwd.queue.clone();
    let t = unique_topic("dorder");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let delays_ms = [2_400u64, 600, 1_800, 3_000, 1_200];
    let start = SystemTime::now();
    let batch: Vec<_> = delays_ms
        .iter()
        .map(|ms| (ms, Message::new(ms.to_string()).with_key("one-key")))
        .collect();
    for (ms, m) in batch {
        queue
            .publish_at(&t, m, start + Duration::from_millis(*ms))
            .await
            .expect("publish_at");
    }
    let mut order = Vec::new();
    for _ in delays_ms {
        let d = recv(&mut sub, "due order").await;
        order.push(
            d.message()
                .text()
                .expect("text")
                .parse::<u64>()
                .expect("a number"),
        );
        d.ack().await.expect("ack");
    }
    let mut sorted = delays_ms.to_vec();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "arrived in due order");
    cleanup(&queue, &[&t]).await;
    fwd.finish().await;
}

/// A batch delayed together arrives whole; a time in the past publishes at once (no forwarder
/// running); a delay over [`MAX_DELAY`] and a delay header set by the caller are refused.
pub async fn delayed_batches_past_times_and_bad_delays(queue: Queue) {
    let t = unique_topic("dpast");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let past = SystemTime::now() - Duration::from_secs(3600);
    queue
        .publish_at(&t, Message::new("late"), past)
        .await
        .expect("publish_at in the past");
    let d = recv(&mut sub, "a past time publishes at once").await;
    assert_eq!(d.message().text(), Some("late"));
    d.ack().await.expect("ack");
    let refused = queue
        .publish_after(&t, Message::new("x"), MAX_DELAY + Duration::from_secs(60))
        .await
        .expect_err("a delay over the maximum");
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");
    let far = SystemTime::now() + MAX_DELAY + Duration::from_secs(60);
    let refused = queue
        .publish_at(&t, Message::new("x"), far)
        .await
        .expect_err("a time past the maximum");
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");
    let refused = queue
        .publish_after(
            &t,
            Message::new("x").with_header("corekit-due", "1"),
            Duration::from_secs(1),
        )
        .await
        .expect_err("a reserved header");
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused}");

    let fwd = Forwarding::start(&queue, "dbatch").await;
    let queue = fwd.queue.clone();
    let due = unix_ms(SystemTime::now() + Duration::from_secs(2));
    let batch: Vec<_> = (0..50).map(|i| Message::new(format!("{i}"))).collect();
    queue
        .publish_batch_after(&t, batch, Duration::from_secs(2))
        .await
        .expect("publish_batch_after");
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 50 {
        let (m, _) = recv_due(&mut sub, due, "batch").await;
        got.insert(m.text().expect("text").to_owned());
    }
    cleanup(&queue, &[&t]).await;
    fwd.finish().await;
}

/// A forwarder that stops while holding delayed messages loses none: the next one delivers
/// them all.
pub async fn a_stopped_forwarder_loses_no_delayed_message(queue: Queue) {
    let first = Forwarding::start(&queue, "dstop").await;
    let queue = first.queue.clone();
    let t = unique_topic("dhand");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let due = unix_ms(SystemTime::now() + Duration::from_secs(3));
    let batch: Vec<_> = (0..20).map(|i| Message::new(format!("{i}"))).collect();
    queue
        .publish_batch_after(&t, batch, Duration::from_secs(3))
        .await
        .expect("publish_batch_after");
    // Let the forwarder take them, then stop it while it holds them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(first.stop);
    let report = tokio::time::timeout(WAIT, first.run)
        .await
        .expect("the forwarder stops")
        .expect("join")
        .expect("forwarder run");
    assert_eq!(
        report.delivered, 1,
        "only the first message, stopped before the others were due: {report:?}"
    );
    let (stop, run) = spawn_forwarder(&queue);
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 20 {
        let (m, _) = recv_due(&mut sub, due, "after the forwarder was replaced").await;
        got.insert(m.text().expect("text").to_owned());
    }
    cleanup(&queue, &[&t]).await;
    let second = Forwarding { queue, stop, run }.finish().await;
    assert!(
        second.delivered >= 20,
        "the second forwarder delivered them: {second:?}"
    );
}

/// A running [`Consumer`](crate::queue::Consumer) forwards its queue's delayed messages: no
/// forwarder is started by hand.
pub async fn a_consumer_forwards_delayed_messages(queue: Queue) {
    let queue = queue
        .with_delay_topics(&unique_topic("dcons"))
        .expect("delay topics");
    let t = unique_topic("dconsumer");
    queue.ensure_group(&t, "g").await.expect("ensure_group");
    let due = unix_ms(SystemTime::now() + Duration::from_secs(1));
    queue
        .publish_after(&t, Message::new("later"), Duration::from_secs(1))
        .await
        .expect("publish_after");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let consumer = queue.consumer(&t, "g");
    let run = tokio::spawn(async move {
        consumer
            .run(
                move |m: Message| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send((m, unix_ms(SystemTime::now())));
                        Ok::<(), crate::Error>(())
                    }
                },
                async {
                    let _ = stopped.await;
                },
            )
            .await
    });
    let mut rx = rx;
    let (m, at) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("delivered through the consumer's forwarder")
        .expect("a message");
    assert_eq!(m.text(), Some("later"));
    assert!(at >= due, "handled {} ms early", due - at);
    drop(stop);
    run.await.expect("join").expect("run");
    cleanup(&queue, &[&t]).await;
    delete_levels(&queue).await;
}
