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
