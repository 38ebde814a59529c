use crate::support;
use corekit::queue::{KafkaBroker, Queue};

async fn queue() -> Queue {
    let brokers = support::KAFKA.require();
    Queue::new(
        KafkaBroker::builder(brokers)
            // The broker's minimum: group joins take about half of it on Tansu.
            .session_timeout(std::time::Duration::from_secs(6))
            .build()
            .await
            .unwrap(),
    )
}

crate::queue_suite!();

/// The whole suite again with every topic on 6 partitions: per-key order, group sharing and
/// redelivery must hold across partitions, not only on one.
mod partitioned {
    use super::*;
    use corekit::queue::TopicOptions;

    pub(super) async fn queue() -> Queue {
        let brokers = support::KAFKA.require();
        Queue::new(
            KafkaBroker::builder(brokers)
                .session_timeout(std::time::Duration::from_secs(6))
                .topic_options(TopicOptions::default().partitions(6))
                .build()
                .await
                .unwrap(),
        )
    }

    crate::queue_suite!();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_retention_is_created_and_used() {
    use corekit::queue::{Message, TopicOptions};
    use futures_util::StreamExt;
    // Tansu does not report topic configs back, so this checks only that the broker accepts
    // retention.ms / retention.bytes at creation and the topic works.
    let q = queue().await;
    let t = corekit::queue::conformance::unique_topic("retention");
    q.ensure_topic_with(
        &t,
        &TopicOptions::default()
            .retention(std::time::Duration::from_secs(3600))
            .retention_bytes(1 << 30),
    )
    .await
    .unwrap();
    let mut sub = q.subscribe(&t, "g").await.unwrap();
    q.publish(&t, Message::new("kept")).await.unwrap();
    let d = tokio::time::timeout(corekit::queue::conformance::WAIT, sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&d.message().payload[..], b"kept");
    d.ack().await.unwrap();
    let _ = q.delete_topic(&t).await;
}
