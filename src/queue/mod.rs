//! One messaging API over an in-process broker, Kafka, RabbitMQ and NATS JetStream, with
//! at-least-once delivery.
//!
//! [`Broker`] is the trait every backend implements; [`Queue`] is the handle applications use:
//! names, payload sizes and headers are checked before any network call, every backend call runs
//! in a `tracing` span, dead letters go to one place, and [`Consumer`] (bounded concurrency,
//! per-key order, retries with backoff, dead-lettering, panic isolation, graceful shutdown) is
//! written once for every backend.
//!
//! | backend | feature | type | publish returns when |
//! |---|---|---|---|
//! | in-process | `queue-memory` | [`MemoryBroker`] | the message is queued |
//! | Kafka | `queue-kafka` | [`KafkaBroker`] | every in-sync replica has it (`acks=all`, idempotent producer) |
//! | RabbitMQ | `queue-rabbitmq` | [`RabbitMqBroker`] | the broker confirmed it (publisher confirms, persistent, mandatory) |
//! | NATS JetStream | `queue-nats` | [`NatsBroker`] | the stream stored it (publish ack); core NATS: fire-and-forget, see [`NatsMode`] |
//!
//! ```
//! # #[cfg(feature = "queue-memory")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use corekit::queue::{MemoryBroker, Message, Queue};
//!
//! let queue = Queue::new(MemoryBroker::new());
//! let mut orders = queue.subscribe("orders", "billing").await?;
//! queue.publish("orders", Message::json(&42)?.with_key("customer-7")).await?;
//!
//! use futures_util::StreamExt;
//! let delivery = orders.next().await.unwrap()?;
//! assert_eq!(delivery.message().decode::<u32>()?, 42);
//! delivery.ack().await?;
//! # Ok::<(), corekit::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Semantics every backend shares
//!
//! - **Groups.** Each consumer group gets every message published to the topic; consumers in one
//!   group share the work. A group receives what is published after it first subscribed (or was
//!   provisioned with [`Queue::ensure_group`]); Kafka and NATS also keep what came before, and
//!   the memory broker holds messages published to a topic with no group yet for its first group.
//! - **At least once.** A delivery is settled once: [`ack`](Delivery::ack), retried
//!   ([`nack(true)`](Delivery::nack), [`retry_after`](Delivery::retry_after)), or dead-lettered
//!   ([`reject`](Delivery::reject)). Unsettled deliveries are delivered again. Kafka commits an
//!   offset only when it and every earlier offset of its partition were settled.
//! - **Retries** go to the same group only, as attempt + 1 ([`Delivery::attempt`]): natively on
//!   the memory broker and NATS (`Nak` with a delay); on Kafka and RabbitMQ the message is
//!   republished to the group's own retry destination (Kafka topic `<topic>.retry.<group>`,
//!   RabbitMQ the group's queue) with its attempt in a header, then acknowledged.
//! - **Dead letters** go to `<topic>.dlq` (configurable) with `corekit-dlq-reason`,
//!   `corekit-dlq-attempts`, `corekit-dlq-topic` and `corekit-dlq-group` headers; read them with
//!   `subscribe(dlq, DEAD_LETTER_GROUP)`, which is provisioned before the first dead letter.
//!   Once the cause is fixed, [`Queue::redrive`] sends them back, each to the group that gave
//!   up on it (a `corekit-for-group` header that other groups' subscriptions skip).
//! - **Headers** round-trip exactly. `corekit-id`, `corekit-attempt` and `corekit-key` are
//!   reserved: they carry [`Message::id`], the attempt and (where the broker has no message key)
//!   [`Message::key`].
//!
//! # Delayed delivery
//!
//! [`Queue::publish_at`] and [`Queue::publish_after`] (and their batch forms) deliver a message
//! to every group of its topic no earlier than a given time, up to [`MAX_DELAY`] (366 days)
//! ahead; a time in the past publishes at once. The same design runs on every broker, written
//! once over [`Broker`]: the message waits on one of four level topics (`corekit.delay.1s`,
//! `.8s`, `.64s`, `.512s`; [`QueueBuilder::delay_topics`]), as an ordinary durable message,
//! and a [`DelayForwarder`] moves it to a shorter level, then to its topic once due. The
//! forwarder holds a message at most 512 s, under RabbitMQ's 30-minute `consumer_timeout`, and
//! keeps NATS from redelivering it meanwhile. Every [`Consumer`] runs one in the background while
//! it runs (once per `Queue`; `QUEUE_DELAY_FORWARD=false` turns that off), so delayed messages
//! arrive wherever something consumes; run [`Queue::delay_forwarder`] where nothing does.
//!
//! - **Kept**: payload, id, key, headers and trace context; the first delivery is attempt 1.
//! - **When**: never early (the forwarder compares wall clocks: keep hosts on NTP). Late by the
//!   time one publish and its delivery take, in normal operation; while no forwarder runs,
//!   messages wait. A subscriber that only just started may add its own start-up (a new Kafka
//!   group's first join: ~3 s on Tansu here) to the first messages it gets, delayed or not.
//! - **Order**: by due time, as far as the broker orders (Kafka: within a key).
//! - **Faults**: a message leaves a level only once its next step was accepted, so a broker
//!   restart or a forwarder that dies loses nothing; the next forwarder may send again what the
//!   dead one had sent but not acknowledged (at least once, as everywhere). A message whose
//!   topic cannot take it (deleted; a RabbitMQ topic without groups) is dead-lettered to its
//!   level's `.dlq` topic after five tries ([`DelayForwarder`]).
//! - **Cost**: one publish per hop; a delay of 2 s takes 2 hops, 10 s 3, an hour 9, a day
//!   174-188.
//!
//! | broker | the level topics are | what holds a waiting message | lateness measured (1,000 x 2 s, p50 / p99) |
//! |---|---|---|---|
//! | memory | in-process topics (lost with the process) | the forwarder | 4-6 ms / 8-16 ms |
//! | Kafka | topics (the queue's topic options: partitions, retention); with their `.dlq` and the forwarder group's retry topics (`corekit.delay.1s.retry.corekit-delay`), 12 per prefix | the forwarder; Kafka commits the offset once it moved on | Tansu: 33-35 ms / 61-68 ms (one publish and one fetch: an immediate message takes ~50 ms from publish to subscriber here) |
//! | RabbitMQ | fanout exchanges with the durable queue `<level>.corekit-delay` | the forwarder, unacknowledged | 1-2 ms / 5-6 ms |
//! | NATS JetStream | streams (`corekit_delay_1s`, ...) | the forwarder, with ack-wait progress | 1-2 ms / 3-6 ms |
//! | core NATS ([`NatsMode::Core`]) | subjects, fire-and-forget | the forwarder only: a message is lost when no forwarder receives it or one stops holding it; use JetStream | — |
//!
//! Restarts are tested: 200 messages delayed 3-9 s while NATS, RabbitMQ or durable Kafka was
//! SIGKILLed and restarted all arrived, none early, none twice. So is a forwarder process
//! SIGKILLed once 100 of 200 delayed messages had arrived: another forwarder delivered the
//! rest, none early. Delivered more than once (three runs): 0 on NATS, 0-1 on RabbitMQ, 6-32 on
//! Kafka, where a forwarder's partition resumes from its last committed offset (committed
//! every 200 ms, never past a message still held), so what the dead one sent since is sent
//! again; killed within its first commit interval it had sent 195-200 of 200 again (two runs).
//! Consumers that must not see those twice use [`Consumer::dedupe`]: a delayed
//! message keeps its id.
//!
//! # Effectively-once processing
//!
//! Delivery is at least once on every broker: a consumer that dies after handling a message but
//! before acknowledging it gets it handled again (Kafka: everything since the last committed
//! offset). [`Consumer::dedupe`] (or `QUEUE_DEDUPE_URL` for every consumer of a queue) keeps
//! the ids a group handled in a [`DedupeStore`]: [`MemoryDedupe`] for one process,
//! [`RedisDedupe`] (feature `queue-dedupe-redis`) shared by all.
//! Before the handler runs, the message's id is claimed for a lease; a success marks it done
//! for the window, a failure frees it for the retry. A delivery whose id is done is
//! acknowledged without running the handler ([`ConsumeReport::duplicates`]); one whose id
//! another consumer holds waits. Message ids stay the same across retries, redrives and delayed
//! delivery.
//!
//! Measured with a consumer process SIGKILLed mid-batch (200 messages, 4 lanes, 20 ms each):
//! on Kafka 20-28 messages were handled twice without de-duplication (51 when offsets were
//! committed every second) and 0 with it (Redis).
//! What is left: a process that dies between a handler's return and its id being marked done
//! (one store call) has that message handled again, and a handler that outlives its lease may
//! run beside a redelivery.
//!
//! # Deployments
//!
//! Each broker's conformance suite also runs on the deployments services grow into, and the
//! fault tests count what is lost (always 0 acknowledged messages):
//!
//! | broker | deployments tested | faults counted |
//! |---|---|---|
//! | Kafka | Tansu 0.6, topics of 1 and 6 partitions; Tansu with durable S3 storage (SeaweedFS) | the durable broker SIGKILLed twice under 5,000 batch publishes and a consuming group; a consumer process SIGKILLed mid-batch (Kafka redelivers what it had not committed) |
//! | RabbitMQ | 3.10, classic and quorum queues ([`QueueType`]) | a node SIGKILLed and restarted during publishing, classic and quorum; a consumer process SIGKILLed mid-batch |
//! | NATS JetStream | 2.9 single server; a three-node cluster with R3 streams (`QUEUE_NATS_REPLICAS=3`) | the server restarted; the cluster node the client is connected to SIGKILLed (the client moves on, publishes retried within the bound); a consumer process SIGKILLed mid-batch |
//!
//! Tansu with durable storage loses acknowledged messages of an idempotent producer (corekit's
//! default, right for Apache Kafka) when it is SIGKILLed during publishing: up to 23 of 5,000
//! in 3 of 6 runs here, none in 4 runs with `KafkaBuilder::set("enable.idempotence", "false")`,
//! which is how the durable test runs it.
//!
//! Every broker also runs `group_rebalances_without_overlap`: consumers joining and leaving a
//! group mid-work lose nothing, and no message is in two consumers' handlers at once (on Kafka a
//! revoked partition hands back what its consumer prefetched but did not start, and waits up to
//! a third of the session timeout for what it started).
//!
//! Not tested here: Kafka with several brokers (Tansu's multi-broker setup, brokers sharing one
//! log under one node id, lost nothing in 2 runs but in a third its consumer groups read
//! nothing at all, so it is not in the suite), a RabbitMQ cluster of several nodes.
//!
//! # Configuration
//!
//! [`Queue::from_env`] reads [`QueueConfig`] from `QUEUE_*` variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `QUEUE_URL` | *(none)* | `memory://`, `kafka://host:9092[,host:9092]`, `amqp(s)://user:pass@host:5672/vhost` or `nats://host:4222[,nats://...]`: its scheme picks the backend and it is the address (in place of the three below) |
//! | `QUEUE_BACKEND` | from `QUEUE_URL`, else `memory` | `memory`, `kafka`, `rabbitmq` or `nats`; one that contradicts `QUEUE_URL` is a `Config` error |
//! | `QUEUE_KAFKA_BROKERS`, else `KAFKA_BOOTSTRAP_SERVERS` | `127.0.0.1:9092` | comma-separated bootstrap servers |
//! | `QUEUE_KAFKA_PARTITIONS` | `1` | partitions of topics corekit creates |
//! | `QUEUE_KAFKA_REPLICATION` | `1` | replication factor of topics corekit creates |
//! | `QUEUE_KAFKA_SESSION_TIMEOUT` | `10s` | consumer group session timeout |
//! | `QUEUE_NATS_REPLICAS` | `1` | replicas of the JetStream streams corekit creates |
//! | `QUEUE_RETENTION` | *(no limit)* | how long topics corekit creates keep messages (`7d`); Kafka `retention.ms`, NATS `max_age` ([`TopicOptions`]) |
//! | `QUEUE_RETENTION_BYTES` | *(no limit)* | bytes they keep (`10GiB`); Kafka `retention.bytes` (per partition), NATS `max_bytes` |
//! | `QUEUE_RETENTION_MESSAGES` | *(no limit)* | messages they keep; NATS `max_msgs` |
//! | `QUEUE_RABBITMQ_QUEUE_TYPE` | `classic` | `classic` or `quorum`: the type of the queues groups get ([`QueueType`]) |
//! | `QUEUE_AMQP_URL`, else `AMQP_URL`, else `RABBITMQ_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ URL (`amqps://` with feature `queue-rabbitmq-tls`) |
//! | `QUEUE_NATS_URL`, else `NATS_URL` | `nats://127.0.0.1:4222` | NATS server(s), comma-separated |
//! | `QUEUE_NATS_MODE` | `jetstream` | `jetstream` (acknowledged, durable) or `core` (fire-and-forget) |
//! | `QUEUE_MAX_PAYLOAD` | `1MiB` | larger payloads are `InvalidInput` before any network call |
//! | `QUEUE_CONNECT_TIMEOUT` | `10s` | connecting |
//! | `QUEUE_OPERATION_TIMEOUT` | `30s` | bound on one publish (confirm included) or admin call |
//! | `QUEUE_PREFETCH` | `64` | unacknowledged messages a subscription may hold |
//! | `QUEUE_ACK_WAIT` | `30s` | NATS: redeliver a message not settled within this |
//! | `QUEUE_CONCURRENCY` | `8` | [`Consumer`] handlers running at once |
//! | `QUEUE_MAX_ATTEMPTS` | `5` | [`Consumer`] attempts before dead-lettering |
//! | `QUEUE_RETRY_BACKOFF` | `200ms` | [`Consumer`] first retry delay; doubles per attempt |
//! | `QUEUE_RETRY_BACKOFF_MAX` | `30s` | [`Consumer`] longest retry delay (`QUEUE_RETRY_MAX_BACKOFF` is read too) |
//! | `QUEUE_DLQ_SUFFIX` | `.dlq` | dead-letter topic = topic + suffix |
//! | `QUEUE_DELAY_TOPICS` | `corekit.delay` | prefix of [delayed delivery](#delayed-delivery)'s level topics |
//! | `QUEUE_DELAY_FORWARD` | `true` | each running [`Consumer`] also runs the queue's [`DelayForwarder`] |
//! | `QUEUE_DEDUPE_URL` | *(none: off)* | [effectively-once](#effectively-once-processing) consumers: `memory://` or a Redis URL (feature `queue-dedupe-redis`) keeping handled ids |
//! | `QUEUE_DEDUPE_WINDOW` | `24h` | how long a handled id is remembered |
//! | `QUEUE_DEDUPE_LEASE` | `60s` | how long a claimed id stays claimed while its handler runs |
//!
//! # Tracing
//!
//! Every backend call runs in a `DEBUG` span named `queue` with `otel.name` (`publish`,
//! `publish_batch`, `publish_delayed`, `subscribe`, `ensure_topic`, `ensure_group`, `ping`),
//! `messaging.system` (`memory`, `kafka`, `rabbitmq`, `nats`) and
//! `messaging.destination.name`; [`Consumer`] runs each handler in a `queue` span with
//! `otel.name = "process"`, the message id and attempt. Once a propagator is installed in
//! [`crate::instrument`] (`observability::init` does it), `publish` writes the current W3C trace
//! context into the message headers (`traceparent`, unless already set; inside the `publish`
//! span, after validation) and the consumer's `process` span continues that trace.

mod config;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;
mod consumer;
mod dedupe;
mod delay;
mod delivery;
mod dispatch;
mod message;
mod redrive;

#[cfg(feature = "queue-kafka")]
mod kafka;
#[cfg(feature = "queue-memory")]
mod memory;
#[cfg(feature = "queue-nats")]
mod nats;
#[cfg(feature = "queue-rabbitmq")]
mod rabbitmq;

pub use config::{QueueBackend, QueueConfig};
pub use consumer::{ConsumeReport, Consumer};
#[cfg(feature = "queue-dedupe-redis")]
pub use dedupe::RedisDedupe;
pub use dedupe::{Claim, DedupeStore, MemoryDedupe};
pub use delay::{DELAY_GROUP, DelayForwarder, ForwardReport, MAX_DELAY};
pub use delivery::{Delivery, Incoming, Settle};
pub use message::{
    ATTEMPT_HEADER, DLQ_ATTEMPTS_HEADER, DLQ_GROUP_HEADER, DLQ_REASON_HEADER, DLQ_TOPIC_HEADER,
    FOR_GROUP_HEADER, Headers, ID_HEADER, KEY_HEADER, Message,
};

#[cfg(feature = "queue-kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "queue-kafka")))]
pub use kafka::{KafkaBroker, KafkaBuilder};
#[cfg(feature = "queue-memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "queue-memory")))]
pub use memory::MemoryBroker;
#[cfg(feature = "queue-nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "queue-nats")))]
pub use nats::{NatsBroker, NatsBuilder, NatsMode};
#[cfg(feature = "queue-rabbitmq")]
#[cfg_attr(docsrs, doc(cfg(feature = "queue-rabbitmq")))]
pub use rabbitmq::{RabbitMqBroker, RabbitMqBuilder};

#[cfg(any(
    feature = "queue-kafka",
    feature = "queue-rabbitmq",
    feature = "queue-nats"
))]
pub(crate) use crate::error::bounded;
use crate::retry::Backoff;
use crate::{Error, Result};
use delivery::DeadLetter;
use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A boxed, sendable future: what [`Broker`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A backend's stream of received messages.
pub type IncomingStream = Pin<Box<dyn Stream<Item = Result<Incoming>> + Send>>;

/// The consumer group dead letters are kept for: `subscribe(dlq_topic, DEAD_LETTER_GROUP)` reads
/// them.
pub const DEAD_LETTER_GROUP: &str = "dead-letters";

/// Settings for topics corekit creates, applied when a topic is created (an existing topic,
/// stream or queue keeps its own):
///
/// | setting | Kafka | NATS JetStream | RabbitMQ, memory |
/// |---|---|---|---|
/// | `partitions` | partitions | — | — |
/// | `replication` | replication factor | stream replicas (a clustered server) | — |
/// | `retention` | `retention.ms` | `max_age` | not applied (use a policy) |
/// | `retention_bytes` | `retention.bytes` (per partition) | `max_bytes` | not applied |
/// | `retention_messages` | — (Kafka has no such limit) | `max_msgs` | not applied |
/// | `queue_type` | — | — | RabbitMQ: the type of each group's queue ([`QueueType`]) |
///
/// Without a retention setting a topic keeps everything (Kafka: the broker's default): set one
/// so a topic cannot grow without bound. Past a limit the oldest messages go first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicOptions {
    /// Kafka partitions (others: ignored).
    pub partitions: u32,
    /// Kafka replication factor; NATS stream replicas.
    pub replication: u16,
    /// How long messages are kept.
    pub retention: Option<Duration>,
    /// How many bytes a topic keeps.
    pub retention_bytes: Option<u64>,
    /// How many messages a topic keeps.
    pub retention_messages: Option<u64>,
    /// RabbitMQ: the type of the queue each group of the topic gets.
    pub queue_type: QueueType,
}

/// The type of the queue a RabbitMQ group reads from; other brokers ignore it.
///
/// A queue keeps the type it was created with: declaring an existing queue with another type
/// is a [`Conflict`](crate::ErrorKind::Conflict) naming both types (delete the queue, or move
/// its messages, to change it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum QueueType {
    /// A classic queue (RabbitMQ's default): on one node.
    #[default]
    Classic,
    /// A quorum queue: replicated by Raft over the cluster's nodes, RabbitMQ's recommended
    /// type for data that must not be lost (3.8+; works on one node too).
    Quorum,
}

impl QueueType {
    /// The `x-queue-type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl Default for TopicOptions {
    fn default() -> Self {
        Self {
            partitions: 1,
            replication: 1,
            retention: None,
            retention_bytes: None,
            retention_messages: None,
            queue_type: QueueType::Classic,
        }
    }
}

impl TopicOptions {
    /// With this many Kafka partitions.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// With this many replicas (Kafka replication factor, NATS stream replicas).
    pub fn replication(mut self, replicas: u16) -> Self {
        self.replication = replicas;
        self
    }

    /// Keeping messages this long.
    pub fn retention(mut self, age: Duration) -> Self {
        self.retention = Some(age);
        self
    }

    /// Keeping at most this many bytes.
    pub fn retention_bytes(mut self, bytes: u64) -> Self {
        self.retention_bytes = Some(bytes);
        self
    }

    /// Keeping at most this many messages.
    pub fn retention_messages(mut self, messages: u64) -> Self {
        self.retention_messages = Some(messages);
        self
    }

    /// RabbitMQ: groups of the topic read from queues of this type.
    pub fn queue_type(mut self, queue_type: QueueType) -> Self {
        self.queue_type = queue_type;
        self
    }
}

/// The message-broker backend trait.
///
/// Names and messages reaching a backend were already validated by [`Queue`]. Every method is a
/// network call on a networked backend and is bounded by the backend's operation timeout.
pub trait Broker: std::any::Any + Send + Sync {
    /// Short backend name (`memory`, `kafka`, `rabbitmq`, `nats`): errors and spans carry it.
    fn name(&self) -> &'static str;

    /// Publishes one message; returns once the broker accepted it (see the module table).
    fn publish<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<()>>;

    /// Publishes many, pipelining the acknowledgements; returns once all were accepted, or the
    /// first error (some messages may then have been accepted).
    fn publish_batch<'a>(
        &'a self,
        topic: &'a str,
        messages: Vec<Message>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            futures_util::future::try_join_all(messages.into_iter().map(|m| self.publish(topic, m)))
                .await
                .map(drop)
        })
    }

    /// Starts receiving `topic` as a member of `group`.
    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        group: &'a str,
        prefetch: u32,
    ) -> BoxFuture<'a, Result<IncomingStream>>;

    /// The options of topics created without explicit ones (its builder's; default
    /// [`TopicOptions::default`]).
    fn topic_options(&self) -> TopicOptions {
        TopicOptions::default()
    }

    /// Creates the topic if it does not exist.
    fn ensure_topic<'a>(
        &'a self,
        topic: &'a str,
        options: &'a TopicOptions,
    ) -> BoxFuture<'a, Result<()>>;

    /// Makes sure `group` receives messages published to `topic` from now on, even before any
    /// consumer of it runs (RabbitMQ: declares and binds its queue; memory: creates its queue;
    /// Kafka and NATS keep messages anyway).
    fn ensure_group<'a>(&'a self, topic: &'a str, group: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Deletes a topic and everything it holds (tests and tooling); groups' queues too where
    /// the broker has them.
    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Checks the broker answers.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;

    /// Flushes what is buffered and closes the connection; calls made afterwards fail. A
    /// broker that holds no connection (memory) has nothing to do.
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A stream of [`Delivery`]s for one topic and group; from [`Queue::subscribe`].
///
/// Dropping it stops receiving; unsettled deliveries are delivered again.
pub struct Subscription {
    inner: IncomingStream,
    topic: Arc<str>,
    group: Arc<str>,
    dead_letter: DeadLetter,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = Result<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let incoming = match this.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(incoming))) => incoming,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            // A redriven message meant for another group: acknowledged here, not handled.
            if incoming
                .message
                .headers
                .get(FOR_GROUP_HEADER)
                .is_some_and(|g| **g != *this.group)
            {
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        let ack = incoming.settle.ack();
                        rt.spawn(async move {
                            if let Err(e) = ack.await {
                                tracing::debug!(error = %e, "queue: skipping another group's message");
                            }
                        });
                    }
                    // No runtime to acknowledge on: left unsettled, skipped again next time.
                    Err(_) => drop(incoming),
                }
                continue;
            }
            return Poll::Ready(Some(Ok(Delivery::new(
                incoming,
                this.topic.clone(),
                this.group.clone(),
                this.dead_letter.clone(),
            ))));
        }
    }
}

/// Limits and defaults a [`Queue`] applies; set through [`QueueBuilder`] or [`QueueConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub max_payload: usize,
    pub prefetch: u32,
    pub dlq_suffix: String,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// `None`: the broker's own (its builder's) options.
    pub topic_options: Option<TopicOptions>,
    /// Delayed delivery's level topics are this + `.1s`, `.8s`, ...
    pub delay_topics: String,
    /// Whether a running [`Consumer`] also runs the queue's [`DelayForwarder`].
    pub forward_delayed: bool,
    /// Every [`Consumer`]'s de-duplication (`QUEUE_DEDUPE_URL`), unless it sets its own.
    pub dedupe: Option<dedupe::Dedupe>,
    /// The lease of [`Consumer::dedupe`] claims (`QUEUE_DEDUPE_LEASE`).
    pub dedupe_lease: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let c = QueueConfig::default();
        Self::from(&c)
    }
}

impl From<&QueueConfig> for Settings {
    fn from(c: &QueueConfig) -> Self {
        Self {
            max_payload: usize::try_from(c.max_payload).unwrap_or(usize::MAX),
            prefetch: c.prefetch,
            dlq_suffix: c.dlq_suffix.clone(),
            concurrency: c.concurrency,
            max_attempts: c.max_attempts,
            backoff: Backoff::new(c.retry_backoff, c.retry_backoff_max),
            topic_options: None,
            delay_topics: c.delay_topics.clone(),
            forward_delayed: c.delay_forward,
            dedupe: None,
            dedupe_lease: c.dedupe_lease,
        }
    }
}

/// The queue handle applications use; cheap to clone.
///
/// ```
/// # #[cfg(feature = "queue-memory")]
/// # block_on(async {
/// use corekit::queue::{MemoryBroker, Message, Queue};
///
/// let queue = Queue::new(MemoryBroker::new()); // or Queue::from_env() (QUEUE_URL=nats://..)
/// queue.ensure_group("orders", "billing").await?;
/// queue.publish("orders", Message::json(&serde_json::json!({"id": 7}))?.with_key("customer-1")).await?;
/// let mut orders = queue.subscribe("orders", "billing").await?;
/// # use futures_util::StreamExt as _;
/// let delivery = orders.next().await.expect("a message")?;
/// assert_eq!(delivery.message().decode::<serde_json::Value>()?["id"], 7);
/// delivery.ack().await?;
/// # Ok::<(), corekit::Error>(()) }).unwrap();
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Queue {
    broker: Arc<dyn Broker>,
    settings: Arc<Settings>,
    delay: Arc<delay::DelayState>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("backend", &self.broker.name())
            .field("settings", &self.settings)
            .finish()
    }
}

/// Builds a [`Queue`] over a broker; from [`Queue::builder`].
#[derive(Debug)]
pub struct QueueBuilder<B> {
    broker: B,
    settings: Settings,
}

impl<B: Broker> QueueBuilder<B> {
    /// Largest payload accepted by `publish` (default 1 MiB).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.settings.max_payload = bytes;
        self
    }

    /// Unacknowledged messages one subscription may hold (default 64).
    pub fn prefetch(mut self, prefetch: u32) -> Self {
        self.settings.prefetch = prefetch;
        self
    }

    /// Dead-letter topic = topic + this (default `.dlq`).
    pub fn dlq_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.settings.dlq_suffix = suffix.into();
        self
    }

    /// Settings of topics `ensure_topic` creates without explicit options (default: those
    /// of the broker's builder).
    pub fn topic_options(mut self, options: TopicOptions) -> Self {
        self.settings.topic_options = Some(options);
        self
    }

    /// Delayed delivery's level topics: `prefix.1s`, `.8s`, `.64s`, `.512s` (default
    /// `corekit.delay`). A forwarder sends on every message of its levels through its own
    /// queue: give each service its own prefix unless each may publish to the others' topics
    /// (same payload limit and broker permissions).
    pub fn delay_topics(mut self, prefix: impl Into<String>) -> Self {
        self.settings.delay_topics = prefix.into();
        self
    }

    /// Whether each running [`Consumer`] also runs this queue's [`DelayForwarder`] (default
    /// `true`), so delayed messages are delivered wherever something consumes.
    pub fn forward_delayed(mut self, forward: bool) -> Self {
        self.settings.forward_delayed = forward;
        self
    }

    /// Defaults of every [`Consumer`]: handlers at once, attempts, first and longest backoff.
    pub fn consumer_defaults(
        mut self,
        concurrency: usize,
        max_attempts: u32,
        backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        self.settings.concurrency = concurrency;
        self.settings.max_attempts = max_attempts;
        self.settings.backoff = Backoff::new(backoff, max_backoff);
        self
    }

    /// The queue.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) for a zero prefetch, concurrency or
    /// attempt count, or a suffix that makes invalid topic names.
    pub fn build(self) -> Result<Queue> {
        let s = &self.settings;
        if s.prefetch == 0 || s.concurrency == 0 || s.max_attempts == 0 || s.max_payload == 0 {
            return Err(Error::invalid_input(
                "queue: prefetch, concurrency, max_attempts and max_payload must be above 0",
            ));
        }
        message::validate_topic(&format!("t{}", s.dlq_suffix))
            .map_err(|e| Error::invalid_input(format!("dead-letter suffix: {}", e.message())))?;
        message::validate_topic(&format!("{}.512s", s.delay_topics))
            .map_err(|e| Error::invalid_input(format!("delay topics: {}", e.message())))?;
        Ok(Queue::assemble(Arc::new(self.broker), self.settings))
    }
}

impl Queue {
    /// A queue over `broker` with the default settings.
    pub fn new<B: Broker>(broker: B) -> Self {
        Self::assemble(Arc::new(broker), Settings::default())
    }

    fn assemble(broker: Arc<dyn Broker>, settings: Settings) -> Self {
        Self {
            delay: Arc::new(delay::DelayState::new(&settings.delay_topics)),
            broker,
            settings: Arc::new(settings),
        }
    }

    /// A builder over `broker`.
    pub fn builder<B: Broker>(broker: B) -> QueueBuilder<B> {
        QueueBuilder {
            broker,
            settings: Settings::default(),
        }
    }

    /// A queue configured from `QUEUE_*` variables (see the [module docs](self)).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the variable; connection errors of the
    /// chosen backend.
    pub async fn from_env() -> Result<Self> {
        use crate::config::EnvConfig;
        let config = QueueConfig::from_env()?;
        if config.backend() == QueueBackend::Memory {
            crate::config::warn_if_defaulted(
                QueueConfig::PREFIX,
                "messages stay in this process and are lost when it exits",
                "QUEUE_URL=kafka://host:9092, amqp://... or nats://... (or QUEUE_BACKEND=memory \
                 to choose this)",
            );
        }
        Self::from_config(&config).await
    }

    /// A queue from a loaded config.
    ///
    /// # Errors
    /// Connection errors of the chosen backend; [`Config`](crate::ErrorKind::Config) when its
    /// feature is not enabled.
    pub async fn from_config(config: &QueueConfig) -> Result<Self> {
        use crate::config::EnvConfig;
        config
            .validate()
            .map_err(|issue| issue.into_error(QueueConfig::PREFIX, QueueConfig::SECRETS))?;
        let mut settings = Settings::from(config);
        settings.dedupe = dedupe::from_config(config).await?;
        let broker = config.connect().await?;
        Ok(Self::assemble(broker, settings))
    }

    /// The backend's name (`memory`, `kafka`, `rabbitmq`, `nats`).
    pub fn backend_name(&self) -> &'static str {
        self.broker.name()
    }

    /// The broker, for backend-specific calls.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// The concrete broker when it is a `B`, for calls the queue API does not cover (Go CDK's
    /// `As`):
    ///
    /// ```
    /// # #[cfg(feature = "queue-memory")]
    /// # async fn run() -> corekit::Result<()> {
    /// use corekit::queue::{MemoryBroker, Queue};
    /// let queue = Queue::new(MemoryBroker::new());
    /// assert!(queue.downcast_ref::<MemoryBroker>().is_some());
    /// # Ok(()) }
    /// ```
    pub fn downcast_ref<B: Broker>(&self) -> Option<&B> {
        let any: &dyn std::any::Any = self.broker.as_ref();
        any.downcast_ref::<B>()
    }

    /// The dead-letter topic of `topic`.
    pub fn dead_letter_topic(&self, topic: &str) -> String {
        format!("{topic}{}", self.settings.dlq_suffix)
    }

    /// Publishes one message; returns once the broker accepted it.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) for a bad topic, header, id or an
    /// oversize payload (before any network call); the backend's errors otherwise (retryable
    /// ones for timeouts and lost connections).
    pub async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        message::validate_topic(topic)?;
        message.validate(self.settings.max_payload)?;
        // Injected inside the publish span, so the consumer's span is its child.
        self.call("publish", topic, async {
            self.broker.publish(topic, traced(message)).await
        })
        .await
    }

    /// Publishes `value` as a JSON message.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), and `InvalidInput` when `value` does not serialize.
    pub async fn publish_json<T: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
    ) -> Result<()> {
        self.publish(topic, Message::json(value)?).await
    }

    /// Publishes many messages, pipelining the broker's acknowledgements; returns once every
    /// one was accepted, or with the first error.
    ///
    /// # Errors
    /// As [`publish`](Self::publish); every message is checked before any is sent.
    pub async fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<()> {
        message::validate_topic(topic)?;
        for m in &messages {
            m.validate(self.settings.max_payload)?;
        }
        if messages.is_empty() {
            return Ok(());
        }
        self.call("publish_batch", topic, async {
            let messages = messages.into_iter().map(traced).collect();
            self.broker.publish_batch(topic, messages).await
        })
        .await
    }

    /// Receives `topic` as a member of `group`: a stream of deliveries to settle one by one.
    /// For handler-style consumption with retries use [`consumer`](Self::consumer).
    ///
    /// # Errors
    /// `InvalidInput` for bad names; the backend's errors.
    pub async fn subscribe(&self, topic: &str, group: &str) -> Result<Subscription> {
        self.subscribe_with(topic, group, self.settings.prefetch)
            .await
    }

    /// [`subscribe`](Self::subscribe) holding up to `prefetch` unsettled messages.
    async fn subscribe_with(
        &self,
        topic: &str,
        group: &str,
        prefetch: u32,
    ) -> Result<Subscription> {
        message::validate_topic(topic)?;
        message::validate_group(group)?;
        let inner = self
            .call(
                "subscribe",
                topic,
                self.broker.subscribe(topic, group, prefetch),
            )
            .await?;
        Ok(Subscription {
            inner,
            topic: topic.into(),
            group: group.into(),
            dead_letter: DeadLetter {
                broker: self.broker.clone(),
                topic: self.dead_letter_topic(topic),
            },
        })
    }

    /// A handler-style consumer of `topic` in `group`, with this queue's consumer defaults.
    pub fn consumer(&self, topic: &str, group: &str) -> Consumer {
        Consumer::new(self.clone(), topic, group)
    }

    /// Creates `topic` if missing, with this queue's topic options.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name; the backend's errors.
    pub async fn ensure_topic(&self, topic: &str) -> Result<()> {
        let options = self
            .settings
            .topic_options
            .clone()
            .unwrap_or_else(|| self.broker.topic_options());
        self.ensure_topic_with(topic, &options).await
    }

    /// Creates `topic` if missing, with these options.
    ///
    /// # Errors
    /// As [`ensure_topic`](Self::ensure_topic).
    pub async fn ensure_topic_with(&self, topic: &str, options: &TopicOptions) -> Result<()> {
        message::validate_topic(topic)?;
        self.call(
            "ensure_topic",
            topic,
            self.broker.ensure_topic(topic, options),
        )
        .await
    }

    /// Makes sure `group` receives what is published to `topic` from now on, before any of its
    /// consumers runs.
    ///
    /// # Errors
    /// As [`ensure_topic`](Self::ensure_topic).
    pub async fn ensure_group(&self, topic: &str, group: &str) -> Result<()> {
        message::validate_topic(topic)?;
        message::validate_group(group)?;
        self.call(
            "ensure_group",
            topic,
            self.broker.ensure_group(topic, group),
        )
        .await
    }

    /// Provisions `topic`'s dead-letter topic and its [`DEAD_LETTER_GROUP`], so no dead letter
    /// is dropped for want of a destination. [`Consumer`] calls this before it starts.
    ///
    /// # Errors
    /// As [`ensure_topic`](Self::ensure_topic).
    pub async fn ensure_dead_letter(&self, topic: &str) -> Result<()> {
        let dlq = self.dead_letter_topic(topic);
        self.ensure_topic(&dlq).await?;
        self.ensure_group(&dlq, DEAD_LETTER_GROUP).await
    }

    /// Deletes `topic` and what it holds.
    ///
    /// # Errors
    /// As [`ensure_topic`](Self::ensure_topic).
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        message::validate_topic(topic)?;
        self.call("delete_topic", topic, self.broker.delete_topic(topic))
            .await
    }

    /// Checks the broker answers (a readiness probe).
    ///
    /// # Errors
    /// The backend's error when it does not.
    pub async fn ping(&self) -> Result<()> {
        self.call("ping", "", self.broker.ping()).await
    }

    /// Flushes buffered messages and closes the broker connection; calls made afterwards
    /// fail. Clones share the connection, so close once, at shutdown.
    ///
    /// # Errors
    /// The backend's error when flushing or closing fails.
    pub async fn close(&self) -> Result<()> {
        self.call("close", "", self.broker.close()).await
    }

    async fn call<T>(
        &self,
        op: &'static str,
        topic: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let system = self.broker.name();
        let call = crate::instrument::Call::new(crate::instrument::Module::Queue, system, op);
        let span = || {
            tracing::debug_span!(
                "queue",
                otel.name = op,
                messaging.system = system,
                messaging.destination.name = topic,
                messaging.operation = op,
            )
        };
        crate::instrument::call(call, tracing::Level::DEBUG, span, fut).await
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// The current trace context in the message's headers (with an installed propagator), unless
/// the caller put one there.
fn traced(mut message: Message) -> Message {
    if !message.headers.contains_key("traceparent") {
        crate::instrument::inject(&mut message.headers);
    }
    message
}
