//! How `Consumer` scales with real work: 2,000 messages, 1 ms of (async) work each, at
//! concurrency 1, 16 and 64, on each broker. Efficiency is the rate at concurrency N over N
//! times the rate at concurrency 1 (100% = perfect scaling).
//!
//! ```sh
//! scripts/services.sh up kafka rabbitmq nats
//! cargo bench --bench consumer_scaling --features queue-kafka,queue-rabbitmq,queue-nats
//! ```
//!
//! The clock runs from the first handler start to the last handler end, so subscribing and
//! group joins are not counted. Messages are unkeyed; Kafka topics have 64 partitions.
//! `BENCH_SCALING_BROKERS=kafka,nats` picks brokers, `BENCH_SCALING_RUNS=3` repeats the whole
//! table.

#[path = "common/brokers.rs"]
mod brokers;

use brokers::{broker, env};
use corekit::queue::{Message, Queue, TopicOptions};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const N: usize = 2000;
const WORK: Duration = Duration::from_millis(1);

/// First start and last end of the handlers, and how many ran.
#[derive(Default)]
struct Span {
    first: Option<Instant>,
    last: Option<Instant>,
    done: usize,
}

/// Messages per second at `concurrency`, first handler start to last handler end.
async fn rate(queue: &Queue, concurrency: usize) -> f64 {
    let topic = format!("scale_{}_{:x}", std::process::id(), fastrand::u32(..));
    queue
        .ensure_topic_with(&topic, &TopicOptions::default().partitions(64))
        .await
        .expect("topic");
    queue.ensure_group(&topic, "g").await.expect("group");
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let batch = chunk.iter().map(|i| Message::new(i.to_string())).collect();
        queue.publish_batch(&topic, batch).await.expect("publish");
    }
    let span = Arc::new(Mutex::new(Span::default()));
    let all = Arc::new(tokio::sync::Notify::new());
    let (s, notify) = (span.clone(), all.clone());
    let report = queue
        .consumer(&topic, "g")
        .concurrency(concurrency)
        .run(
            move |_m: Message| {
                let (s, notify) = (s.clone(), notify.clone());
                async move {
                    let started = Instant::now();
                    s.lock().unwrap().first.get_or_insert(started);
                    tokio::time::sleep(WORK).await;
                    let mut s = s.lock().unwrap();
                    s.last = Some(Instant::now());
                    s.done += 1;
                    if s.done == N {
                        notify.notify_one();
                    }
                    Ok::<(), corekit::Error>(())
                }
            },
            async move { all.notified().await },
        )
        .await
        .expect("run");
    let _ = queue.delete_topic(&topic).await;
    let s = span.lock().unwrap();
    assert!(report.acked as usize >= N, "{report:?}");
    let took = s.last.expect("ran") - s.first.expect("ran");
    N as f64 / took.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let brokers = env("BENCH_SCALING_BROKERS", "kafka,rabbitmq,nats");
    let runs: usize = env("BENCH_SCALING_RUNS", "1").parse().expect("a number");
    println!("broker    run  c1 msg/s  c16 msg/s (eff.)  c64 msg/s (eff.)");
    for name in brokers.split(',') {
        let queue = rt.block_on(broker(name));
        for run in 1..=runs {
            let one = rt.block_on(rate(&queue, 1));
            let sixteen = rt.block_on(rate(&queue, 16));
            let sixty_four = rt.block_on(rate(&queue, 64));
            println!(
                "{name:<9} {run:>3} {one:>9.0} {sixteen:>10.0} ({:>3.0}%) {sixty_four:>10.0} ({:>3.0}%)",
                100.0 * sixteen / (16.0 * one),
                100.0 * sixty_four / (64.0 * one),
            );
        }
    }
}
