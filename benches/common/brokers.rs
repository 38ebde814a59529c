//! The queue benches' brokers, at the addresses `scripts/services.sh` starts them on (or the
//! `COREKIT_TEST_*` variables').

use corekit::queue::{KafkaBroker, MemoryBroker, NatsBroker, Queue, RabbitMqBroker};
use std::time::Duration;

/// `var`, else `default`.
pub fn env(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// A queue on broker `name`: `memory`, `kafka`, `rabbitmq` or `nats`.
pub async fn broker(name: &str) -> Queue {
    match name {
        "memory" => Queue::new(MemoryBroker::new()),
        "kafka" => Queue::new(
            KafkaBroker::builder(env("COREKIT_TEST_KAFKA_BROKERS", "127.0.0.1:9092"))
                .session_timeout(Duration::from_secs(6))
                .build()
                .await
                .expect("kafka: scripts/services.sh up kafka"),
        ),
        "rabbitmq" => Queue::new(
            RabbitMqBroker::builder(env(
                "COREKIT_TEST_AMQP_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ))
            .build()
            .await
            .expect("rabbitmq: scripts/services.sh up rabbitmq"),
        ),
        "nats" => Queue::new(
            NatsBroker::builder(env("COREKIT_TEST_NATS_URL", "nats://127.0.0.1:4222"))
                .build()
                .await
                .expect("nats: scripts/services.sh up nats"),
        ),
        other => panic!("unknown broker {other}"),
    }
}
