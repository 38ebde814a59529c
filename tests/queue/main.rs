//! The queue module against every backend: the conformance suite on the in-process broker,
//! Kafka (Tansu), RabbitMQ and NATS JetStream, plus each backend's own behaviour and faults.

#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod consumer_kill;
mod dedupe;
mod faults;
mod forwarder_kill;
mod from_env;
mod kafka;
mod kafka_durable;
mod memory;
mod nats;
mod outage;
mod rabbitmq;
