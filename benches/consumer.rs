//! `Consumer::run` (lanes, dispatch, spans, settling) against a plain subscription loop doing
//! the same work, on the in-process broker so the figure is corekit's own cost.
//!
//! ```sh
//! cargo bench --bench consumer --features queue-memory
//! ```
//!
//! Each iteration publishes 2,000 messages (200 keys) as one batch, then consumes and
//! acknowledges all of them.

use corekit::queue::{MemoryBroker, Message, Queue};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const N: usize = 2000;

fn batch() -> Vec<Message> {
    (0..N)
        .map(|i| Message::new(vec![7u8; 256]).with_key(format!("k{}", i % 200)))
        .collect()
}

/// A fresh queue whose topic `t<i>` holds the batch for group `g`.
async fn loaded(i: u64) -> (Queue, String) {
    let queue = Queue::new(MemoryBroker::new());
    let topic = format!("t{i}");
    queue.ensure_group(&topic, "g").await.expect("group");
    queue.publish_batch(&topic, batch()).await.expect("publish");
    (queue, topic)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut g = c.benchmark_group("queue/memory/consume_2000");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    for concurrency in [1usize, 8] {
        g.bench_function(format!("corekit_consumer_c{concurrency}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        let (queue, topic) = loaded(i).await;
                        let done = Arc::new(AtomicUsize::new(0));
                        let all_seen = Arc::new(tokio::sync::Notify::new());
                        let (seen, notify) = (done.clone(), all_seen.clone());
                        let start = Instant::now();
                        queue
                            .consumer(&topic, "g")
                            .concurrency(concurrency)
                            .run(
                                move |_m: Message| {
                                    if seen.fetch_add(1, Ordering::Relaxed) + 1 == N {
                                        notify.notify_one();
                                    }
                                    std::future::ready(Ok::<(), corekit::Error>(()))
                                },
                                async move { all_seen.notified().await },
                            )
                            .await
                            .expect("run");
                        total += start.elapsed();
                        assert_eq!(done.load(Ordering::Relaxed), N);
                    }
                    total
                })
            })
        });
    }
    g.bench_function("raw_subscription_loop", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let (queue, topic) = loaded(i).await;
                    let start = Instant::now();
                    let mut sub = queue.subscribe(&topic, "g").await.expect("subscribe");
                    for _ in 0..N {
                        let d = sub.next().await.expect("a message").expect("ok");
                        d.ack().await.expect("ack");
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(consumer, benches);
criterion_main!(consumer);
