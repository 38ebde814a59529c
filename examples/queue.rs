//! An order pipeline on `corekit::queue`: publish typed events, consume them with bounded
//! concurrency, retries and a dead-letter topic, then shut down gracefully.
//!
//! ```sh
//! cargo run --example queue                                   # in-process broker
//! QUEUE_BACKEND=nats cargo run --example queue --features queue-nats
//! QUEUE_BACKEND=kafka cargo run --example queue --features queue-kafka
//! QUEUE_BACKEND=rabbitmq cargo run --example queue --features queue-rabbitmq
//! ```
//!
//! The code is the same for every broker: only `QUEUE_BACKEND` (and its URL) changes.

use corekit::queue::{DEAD_LETTER_GROUP, Message, Queue};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: u64,
    customer: String,
    cents: u64,
}

#[tokio::main]
async fn main() -> corekit::Result<()> {
    let queue = Queue::from_env().await?;
    // A topic of our own per run, so reruns against a real broker start clean.
    let topic = format!("orders_{}", std::process::id());
    println!("backend: {}, topic: {topic}", queue.backend_name());

    // Provision before publishing: RabbitMQ routes only to groups that exist.
    queue.ensure_topic(&topic).await?;
    queue.ensure_group(&topic, "billing").await?;

    for order_id in 1..=10 {
        let event = OrderPlaced {
            order_id,
            customer: format!("customer-{}", order_id % 3),
            cents: order_id * 1250,
        };
        // The key keeps one customer's events in order, on every backend.
        let message = Message::json(&event)?
            .with_key(event.customer.clone())
            .with_header("source", "example");
        queue.publish(&topic, message).await?;
    }
    // One message no handler can decode: it goes straight to the dead-letter topic.
    queue.publish(&topic, Message::new("not an order")).await?;
    println!("published 11 messages");

    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let report = queue
        .consumer(&topic, "billing")
        .concurrency(4)
        .max_attempts(3)
        .backoff(Duration::from_millis(50), Duration::from_secs(1))
        .run(
            move |message: Message| {
                let seen = seen.clone();
                async move {
                    let order: OrderPlaced = message.decode()?;
                    // Order 7 fails once: the consumer retries it with backoff. (An
                    // `Unavailable` error would instead pause the consumer and keep the
                    // attempt: a dependency that is down is waited for.)
                    if order.order_id == 7 && message.attempt == 1 {
                        return Err(corekit::Error::new(
                            corekit::ErrorKind::Timeout,
                            "payment service too slow",
                        ));
                    }
                    println!(
                        "billed order {} for {} ({} cents), attempt {}",
                        order.order_id, order.customer, order.cents, message.attempt
                    );
                    seen.fetch_add(1, Ordering::Relaxed);
                    Ok::<(), corekit::Error>(())
                }
            },
            // Shut down once all ten orders are billed (a service would await a signal here).
            {
                let handled = handled.clone();
                async move {
                    while handled.load(Ordering::Relaxed) < 10 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            },
        )
        .await?;
    println!("consumer stopped: {report:?}");

    let dlq = queue.dead_letter_topic(&topic);
    let mut dead = queue.subscribe(&dlq, DEAD_LETTER_GROUP).await?;
    if let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(30), dead.next()).await {
        let delivery = delivery?;
        println!(
            "dead letter {:?}: {:?}",
            delivery.message().text(),
            delivery.message().headers
        );
        delivery.ack().await?;
    }
    // Leave nothing behind on a real broker. Kafka refuses (`Unsupported`: deleting topics
    // can crash librdkafka clients); its topics go with the cluster's retention or tooling.
    for t in [&topic, &dlq] {
        match queue.delete_topic(t).await {
            Err(e) if e.kind() == corekit::ErrorKind::Unsupported => {
                println!("left topic {t} in place: {e}");
            }
            other => other?,
        }
    }
    Ok(())
}
