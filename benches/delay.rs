//! Delayed delivery on each broker: how late 1,000 messages delayed 2 s arrive, and what a
//! delayed publish costs next to an immediate one.
//!
//! ```sh
//! scripts/services.sh up kafka rabbitmq nats
//! cargo bench --bench delay --features queue-memory,queue-kafka,queue-rabbitmq,queue-nats
//! ```
//!
//! Lateness is the wall-clock time from a message's due time to its arrival at a subscriber of
//! its topic, with a `DelayForwarder` already running (warmed up by one delayed message). The
//! 1,000 messages are published one by one, as fast as the broker acknowledges them, so their
//! due times spread over the publishing time; the subscriber reads while they are published. Publish rates are one message per call,
//! sequential, 1,000 each. `BENCH_DELAY_BROKERS=nats,rabbitmq` picks brokers,
//! `BENCH_DELAY_RUNS=3` repeats.

#[path = "common/brokers.rs"]
mod brokers;

use brokers::{broker, env};
use corekit::queue::{Message, Queue};
use futures_util::StreamExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const N: usize = 1000;
const DELAY: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

fn unique(name: &str) -> String {
    format!("{name}_{}_{:x}", std::process::id(), fastrand::u32(..))
}

/// Sequential publishes per second: immediate, then delayed by [`DELAY`].
async fn publish_rates(queue: &Queue) -> (f64, f64) {
    let t = unique("bdrate");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    let start = Instant::now();
    for i in 0..N {
        queue
            .publish(&t, Message::new(i.to_string()))
            .await
            .expect("publish");
    }
    let immediate = N as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..N {
        queue
            .publish_after(&t, Message::new(i.to_string()), DELAY)
            .await
            .expect("publish_after");
    }
    let delayed = N as f64 / start.elapsed().as_secs_f64();
    // Drained before the topic goes, so no delayed message is left for a deleted topic.
    for _ in 0..2 * N {
        let d = tokio::time::timeout(Duration::from_secs(120), sub.next())
            .await
            .expect("all delivered within 120 s")
            .expect("open")
            .expect("receive");
        d.ack().await.expect("ack");
    }
    let _ = queue.delete_topic(&t).await;
    (immediate, delayed)
}

/// Lateness of [`N`] messages delayed [`DELAY`]: p50, p99, max (ms).
async fn lateness(queue: &Queue) -> (u64, u64, u64) {
    let t = unique("bdlate");
    let mut sub = queue.subscribe(&t, "g").await.expect("subscribe");
    // The forwarder is receiving once a first delayed message came through.
    queue
        .publish_after(&t, Message::new("warm"), Duration::from_millis(100))
        .await
        .expect("warm");
    let d = sub.next().await.expect("warm").expect("warm");
    d.ack().await.expect("ack");
    // Received while publishing: on a broker slower to publish 1,000 than DELAY (Kafka here),
    // the first are due before the last are sent, and reading only afterwards would count the
    // publishing time as lateness.
    let arrivals = tokio::spawn(async move {
        let mut arrivals = Vec::with_capacity(N);
        while arrivals.len() < N {
            let d = tokio::time::timeout(Duration::from_secs(120), sub.next())
                .await
                .expect("all delivered within 120 s")
                .expect("open")
                .expect("receive");
            arrivals.push((d.message().id.clone(), now_ms()));
            d.ack().await.expect("ack");
        }
        arrivals
    });
    let mut due = std::collections::HashMap::new();
    for i in 0..N {
        let m = Message::new(i.to_string());
        due.insert(m.id.clone(), now_ms() + DELAY.as_millis() as u64);
        queue
            .publish_after(&t, m, DELAY)
            .await
            .expect("publish_after");
    }
    let mut late = Vec::with_capacity(N);
    for (id, at) in arrivals.await.expect("receiver") {
        let due = due.remove(&id).expect("a message of this run, once");
        assert!(at >= due, "delivered early");
        late.push(at - due);
    }
    let _ = queue.delete_topic(&t).await;
    late.sort_unstable();
    (late[N / 2], late[N * 99 / 100], late[N - 1])
}

async fn delay_queue(name: &str) -> Queue {
    let queue = broker(name).await;
    // Level topics of this run's own: nothing left by an earlier run is forwarded meanwhile.
    queue
        .with_delay_topics(&unique("bdelay"))
        .expect("delay topics")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let brokers = env("BENCH_DELAY_BROKERS", "memory,kafka,rabbitmq,nats");
    let runs: usize = env("BENCH_DELAY_RUNS", "1").parse().expect("a number");
    println!("broker    run  late p50 ms  p99 ms  max ms  publish/s  publish_after/s");
    for name in brokers.split(',') {
        let queue = rt.block_on(delay_queue(name));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let forwarder = queue.delay_forwarder();
        let run = rt.spawn(async move {
            forwarder
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        for r in 1..=runs {
            let (p50, p99, max) = rt.block_on(lateness(&queue));
            let (immediate, delayed) = rt.block_on(publish_rates(&queue));
            println!(
                "{name:<9} {r:>3} {p50:>12} {p99:>7} {max:>7} {immediate:>10.0} {delayed:>16.0}"
            );
        }
        let _ = stop.send(());
        let report = rt.block_on(run).expect("join").expect("forwarder");
        eprintln!("{name}: forwarder {report:?}");
    }
}
