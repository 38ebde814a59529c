//! Kafka on rdkafka: idempotent `acks=all` producer, consumer groups that commit only settled
//! offsets, retries through a per-group retry topic.

use super::message::{from_wire, wire_pairs};
use super::{BoxFuture, Broker, Incoming, IncomingStream, Message, Settle, TopicOptions, bounded};
use crate::{Error, ErrorKind, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod offsets;
use offsets::{Offsets, Position, Rebalancing};

/// Builds a [`KafkaBroker`]; from [`KafkaBroker::builder`].
#[derive(Debug, Clone)]
pub struct KafkaBuilder {
    brokers: String,
    operation_timeout: Duration,
    connect_timeout: Duration,
    topic_options: TopicOptions,
    session_timeout: Duration,
    overrides: Vec<(String, String)>,
}

impl KafkaBuilder {
    /// Consumer group session timeout (default 10 s, the broker's minimum is usually 6 s): how
    /// long a dead consumer keeps its partitions, and roughly how long a group (re)join takes
    /// on brokers that wait for members (Tansu waits about half of it).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Bound on one publish (delivery report included) and on admin calls (default 30 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Bound on the first metadata fetch in [`build`](Self::build) (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Partitions, replication and retention of the topics corekit creates.
    pub fn topic_options(mut self, options: TopicOptions) -> Self {
        self.topic_options = options;
        self
    }

    /// Sets a librdkafka property on the producer and every consumer (e.g. `security.protocol`,
    /// `sasl.mechanisms`, `compression.type`); applied after corekit's own settings.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.overrides {
            c.set(k, v);
        }
        c
    }

    /// Creates the producer and admin client and checks the cluster answers.
    ///
    /// # Errors
    /// [`Config`](ErrorKind::Config) for properties librdkafka rejects;
    /// [`Unavailable`](ErrorKind::Unavailable) or [`Timeout`](ErrorKind::Timeout) when no broker
    /// answers within the connect timeout.
    pub async fn build(self) -> Result<KafkaBroker> {
        let timeout_ms = self.operation_timeout.as_millis().to_string();
        let mut producer_config = ClientConfig::new();
        producer_config
            .set("bootstrap.servers", &self.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", &timeout_ms);
        for (k, v) in &self.overrides {
            producer_config.set(k, v);
        }
        let producer: FutureProducer = producer_config.create().map_err(config_error)?;
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().map_err(config_error)?;
        let broker = KafkaBroker {
            inner: Arc::new(Inner {
                producer,
                admin,
                builder: self,
                known_topics: Mutex::new(HashSet::new()),
            }),
        };
        let brokers = crate::config::redact_url(&broker.inner.builder.brokers);
        broker
            .metadata(broker.inner.builder.connect_timeout)
            .await
            .map_err(|e| e.with_context(format!("connecting to {brokers}")))?;
        Ok(broker)
    }
}

/// Kafka through rdkafka (bundled librdkafka).
///
/// - Publishing uses an idempotent producer with `acks=all`; `publish` returns on the delivery
///   report, `publish_batch` sends all and awaits every report (librdkafka batches them).
/// - Each subscription is a consumer in the group, with `enable.auto.offset.store=false`: an
///   offset is stored for commit only once it and every earlier offset of its partition were
///   settled, so a crash never commits an unprocessed message. Stored offsets are committed
///   every 200 ms, before a rebalance moves partitions, and when the subscription is dropped
///   (on a thread of its own, which nothing waits for: a close blocks until the group
///   coordinator answers).
/// - A rebalance that takes partitions away first lets go of their messages no handler has
///   started (a [`Consumer`](super::Consumer)'s prefetch; counted in
///   [`ConsumeReport::handed_back`](super::ConsumeReport::handed_back)) and waits up to a third
///   of the session timeout for the started ones to settle, so the next owner does not handle
///   a message this consumer still holds. A handler slower than that may overlap with the next
///   owner's run of the same message (at-least-once).
/// - Group `g` of topic `t` is Kafka consumer group `t.g` (groups are per topic on every
///   backend).
/// - Retries go to `<topic>.retry.<group>`, which the group's consumers also read.
/// - librdkafka prefetches into its own bounded buffer (`queued.max.messages.kbytes`, settable
///   with [`KafkaBuilder::set`]); the queue's prefetch setting does not apply.
/// - Topics are created on first use with the configured partitions and replication.
#[derive(Clone)]
pub struct KafkaBroker {
    inner: Arc<Inner>,
}

struct Inner {
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    builder: KafkaBuilder,
    known_topics: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("brokers", &self.inner.builder.brokers)
            .finish_non_exhaustive()
    }
}

impl KafkaBroker {
    /// A builder for the cluster at `brokers` (`host:port[,host:port...]`).
    pub fn builder(brokers: impl Into<String>) -> KafkaBuilder {
        KafkaBuilder {
            brokers: brokers.into(),
            operation_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            topic_options: TopicOptions::default(),
            session_timeout: Duration::from_secs(10),
            overrides: Vec::new(),
        }
    }

    /// The producer, for calls corekit does not wrap.
    pub fn producer(&self) -> &FutureProducer {
        &self.inner.producer
    }

    fn known(&self) -> MutexGuard<'_, HashSet<String>> {
        self.inner
            .known_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    async fn metadata(&self, timeout: Duration) -> Result<()> {
        let producer = self.inner.producer.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(None, timeout).map(drop)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Backend, format!("metadata task failed: {e}")))?;
        fetched.map_err(|e| kafka_error(e, "fetching cluster metadata"))
    }

    async fn create_topic(&self, topic: &str, options: &TopicOptions) -> Result<()> {
        if self.known().contains(topic) {
            return Ok(());
        }
        let partitions = i32::try_from(options.partitions).unwrap_or(i32::MAX);
        let retention_ms = options.retention.map(|d| d.as_millis().to_string());
        let retention_bytes = options.retention_bytes.map(|b| b.to_string());
        let mut new = NewTopic::new(
            topic,
            partitions,
            TopicReplication::Fixed(i32::from(options.replication)),
        );
        if let Some(ms) = &retention_ms {
            new = new.set("retention.ms", ms);
        }
        if let Some(bytes) = &retention_bytes {
            new = new.set("retention.bytes", bytes);
        }
        let timeout = self.inner.builder.operation_timeout;
        let admin_options = AdminOptions::new().operation_timeout(Some(timeout));
        let results = bounded(timeout, || format!("creating topic {topic:?}"), async {
            self.inner
                .admin
                .create_topics(&[new], &admin_options)
                .await
                .map_err(|e| kafka_error(e, "creating a topic"))
        })
        .await?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::new(
                        code_kind(code),
                        format!("creating topic {name:?}: {code}"),
                    ));
                }
            }
        }
        self.known().insert(topic.to_owned());
        Ok(())
    }

    async fn ensure_default(&self, topic: &str) -> Result<()> {
        let options = self.inner.builder.topic_options.clone();
        self.create_topic(topic, &options).await
    }

    /// One message to the broker, to its delivery report. librdkafka reports every message
    /// within `message.timeout.ms` (the operation timeout): no timer of corekit's per message,
    /// see [`send_bounded`](Self::send_bounded) for the callers that want one anyway.
    async fn send(&self, topic: &str, message: &Message, attempt: u32) -> Result<()> {
        let headers = to_kafka_headers(message, attempt);
        let mut record = FutureRecord::<str, [u8]>::to(topic)
            .payload(&message.payload[..])
            .headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key.as_str());
        }
        self.inner
            .producer
            .send(record, self.inner.builder.operation_timeout)
            .await
            .map(drop)
            .map_err(|(e, _)| kafka_error(e, "publishing"))
    }

    /// [`send`](Self::send) within the operation timeout even if `message.timeout.ms` was
    /// overridden (to 0, "never").
    async fn send_bounded(&self, topic: &str, message: &Message, attempt: u32) -> Result<()> {
        let timeout = self.inner.builder.operation_timeout;
        bounded(
            timeout,
            || format!("publishing to {topic:?}"),
            self.send(topic, message, attempt),
        )
        .await
    }
}

fn to_kafka_headers(message: &Message, attempt: u32) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(message.headers.len() + 2);
    for (k, v) in wire_pairs(message, attempt, false) {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    headers
}

fn config_error(e: KafkaError) -> Error {
    Error::config(format!("kafka client configuration: {e}")).with_backend("kafka")
}

fn code_kind(code: RDKafkaErrorCode) -> ErrorKind {
    use RDKafkaErrorCode as C;
    match code {
        C::BrokerTransportFailure | C::AllBrokersDown | C::Resolve => ErrorKind::Unavailable,
        C::MessageTimedOut | C::OperationTimedOut | C::RequestTimedOut | C::TimedOutQueue => {
            ErrorKind::Timeout
        }
        C::MessageSizeTooLarge | C::InvalidTopic => ErrorKind::InvalidInput,
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition => ErrorKind::NotFound,
        C::TopicAlreadyExists => ErrorKind::AlreadyExists,
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed => ErrorKind::PermissionDenied,
        C::QueueFull => ErrorKind::Unavailable,
        _ => ErrorKind::Backend,
    }
}

fn kafka_error(e: KafkaError, what: &str) -> Error {
    let kind = match &e {
        KafkaError::AdminOp(code) => code_kind(*code),
        KafkaError::Canceled => ErrorKind::Unavailable,
        other => other
            .rdkafka_error_code()
            .map_or(ErrorKind::Backend, code_kind),
    };
    Error::new(kind, format!("{what}: {e}"))
        .with_backend("kafka")
        .with_source(e)
}

fn retry_topic(topic: &str, group: &str) -> String {
    format!("{topic}.retry.{group}")
}

impl Broker for KafkaBroker {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn topic_options(&self) -> TopicOptions {
        self.inner.builder.topic_options.clone()
    }

    fn publish<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.ensure_default(topic).await?;
            self.send_bounded(topic, &message, 1).await
        })
    }

    fn publish_batch<'a>(
        &'a self,
        topic: &'a str,
        messages: Vec<Message>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.ensure_default(topic).await?;
            // librdkafka batches whatever is queued; awaiting the reports together pipelines.
            // One bound for the batch, not a timer per message.
            let timeout = self.inner.builder.operation_timeout;
            let all =
                futures_util::future::try_join_all(messages.iter().map(|m| self.send(topic, m, 1)));
            bounded(
                timeout,
                || format!("publishing a batch to {topic:?}"),
                async { all.await.map(drop) },
            )
            .await
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        group: &'a str,
        _prefetch: u32,
    ) -> BoxFuture<'a, Result<IncomingStream>> {
        Box::pin(async move {
            let retry = retry_topic(topic, group);
            self.ensure_default(topic).await?;
            self.ensure_default(&retry).await?;
            let builder = &self.inner.builder;
            let session = builder.session_timeout.as_millis().max(1);
            let mut config = builder.config();
            config
                // Groups are per topic on every backend; a Kafka group spans topics, so one
                // group id per (topic, group) keeps one topic's consumers from rebalancing
                // another's.
                .set("group.id", format!("{topic}.{group}"))
                .set("session.timeout.ms", session.to_string())
                .set("heartbeat.interval.ms", (session / 6).max(100).to_string())
                .set("enable.auto.commit", "true")
                // What a killed consumer's successor handles again is what was settled since
                // the last commit: 20-28 of 200 in the kill test at 200 ms, 51 at 1 s.
                .set("auto.commit.interval.ms", "200")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                .set("enable.partition.eof", "false")
                // A fetch waits at most this long for data: the latency floor of a quiet topic.
                .set("fetch.wait.max.ms", "100");
            for (k, v) in &self.inner.builder.overrides {
                config.set(k, v);
            }
            let offsets = Arc::new(Offsets::default());
            let context = Rebalancing {
                offsets: offsets.clone(),
                // Well inside the session timeout, so the group does not give up on this member.
                wait: builder.session_timeout / 3,
            };
            let consumer: StreamConsumer<Rebalancing> =
                config.create_with_context(context).map_err(config_error)?;
            consumer
                .subscribe(&[topic, retry.as_str()])
                .map_err(|e| kafka_error(e, "subscribing"))?;
            let shared = Arc::new(ConsumerShared {
                consumer: Some(consumer),
                offsets,
            });
            let producer = self.clone();
            let stream = futures_util::stream::unfold(
                (shared, producer, Arc::<str>::from(retry)),
                |(shared, broker, retry)| async move {
                    let item = shared.recv().await.map(|(message, position)| Incoming {
                        message,
                        settle: Box::new(KafkaSettle {
                            shared: shared.clone(),
                            broker: broker.clone(),
                            retry_topic: retry.clone(),
                            position,
                        }),
                    });
                    Some((item, (shared, broker, retry)))
                },
            );
            Ok(Box::pin(stream) as IncomingStream)
        })
    }

    fn ensure_topic<'a>(
        &'a self,
        topic: &'a str,
        options: &'a TopicOptions,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.create_topic(topic, options))
    }

    fn ensure_group<'a>(&'a self, _topic: &'a str, _group: &'a str) -> BoxFuture<'a, Result<()>> {
        // A new group starts from the earliest retained offset: nothing to provision.
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<()>> {
        // Deleting a topic that librdkafka 2.12 clients have cached crashed those clients in
        // our tests (a SIGSEGV in rd_kafka_metadata_cache_find, the class of librdkafka#4778 and
        // #4964): a library call must not take the process down.
        let _ = topic;
        Box::pin(std::future::ready(Err(Error::unsupported(
            "kafka",
            "delete_topic",
            "deleting a topic can crash librdkafka 2.12 clients that cached it (librdkafka#4778, \
             #4964); delete Kafka topics with the cluster's admin tooling",
        ))))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.metadata(self.inner.builder.operation_timeout))
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        // librdkafka's flush blocks; the client itself is released with the last clone.
        let inner = self.inner.clone();
        Box::pin(async move {
            let timeout = inner.builder.operation_timeout;
            tokio::task::spawn_blocking(move || inner.producer.flush(timeout))
                .await
                .map_err(|e| Error::new(ErrorKind::Backend, format!("kafka flush task: {e}")))?
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("messages not delivered within {timeout:?}: {e}"),
                    )
                })
        })
    }
}

struct ConsumerShared {
    // Only `None` inside `drop`.
    consumer: Option<StreamConsumer<Rebalancing>>,
    offsets: Arc<Offsets>,
}

impl ConsumerShared {
    fn consumer(&self) -> Result<&StreamConsumer<Rebalancing>> {
        self.consumer
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::Unavailable, "kafka consumer closed"))
    }

    async fn recv(&self) -> Result<(Message, Position)> {
        let consumer = self.consumer()?;
        let m = consumer
            .recv()
            .await
            .map_err(|e| kafka_error(e, "receiving"))?;
        let topic: Arc<str> = m.topic().into();
        let (partition, offset) = (m.partition(), m.offset());
        let mut headers = super::Headers::new();
        if let Some(hs) = m.headers() {
            for h in hs.iter() {
                let value = h
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                headers.insert(h.key.to_owned(), value);
            }
        }
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let payload = bytes::Bytes::copy_from_slice(m.payload().unwrap_or_default());
        drop(m);
        let position = self.offsets.received(topic, partition, offset);
        Ok((from_wire(payload, key, headers), position))
    }

    /// Marks an offset settled and stores, for the next commit, the first offset of its
    /// partition that is not.
    fn settled(&self, at: &Position) {
        let Ok(consumer) = self.consumer() else {
            return;
        };
        self.offsets.settled(at, |upto| {
            // store_offset records offset + 1 as the position to resume from.
            if let Err(e) = consumer.store_offset(&at.topic, at.partition, upto - 1) {
                // The partition was revoked: its next owner re-reads from the last commit.
                tracing::debug!(topic = %at.topic, partition = at.partition, error = %e, "kafka: offset not stored");
            }
        });
    }
}

impl Drop for ConsumerShared {
    fn drop(&mut self) {
        // Closing commits the stored offsets and leaves the group. It blocks until the group
        // coordinator answers, for ever if the broker is gone (seen: a test runtime's shutdown
        // waited on a blocking-pool close after its broker was killed), so it runs on a thread
        // of its own that neither an async worker nor a runtime's shutdown waits for.
        if let Some(consumer) = self.consumer.take() {
            let closing = std::thread::Builder::new()
                .name("corekit-kafka-close".into())
                .spawn(move || drop(consumer));
            if let Err(e) = closing {
                // The consumer went down with the closure: it was closed here, inline.
                tracing::warn!(error = %e, "kafka: no thread for closing a consumer; closed inline");
            }
        }
    }
}

struct KafkaSettle {
    shared: Arc<ConsumerShared>,
    broker: KafkaBroker,
    retry_topic: Arc<str>,
    position: Position,
}

impl Settle for KafkaSettle {
    fn park(&mut self) {
        self.shared.offsets.idle(&self.position);
    }

    fn start(&mut self) -> bool {
        self.shared.offsets.start(&self.position)
    }

    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        self.shared.settled(&self.position);
        Box::pin(std::future::ready(Ok(())))
    }

    fn retry(self: Box<Self>, message: Message, delay: Duration) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            // The offset stays unsettled while waiting: a crash now redelivers the original.
            tokio::time::sleep(delay).await;
            self.broker
                .send_bounded(&self.retry_topic, &message, message.attempt)
                .await?;
            self.shared.settled(&self.position);
            Ok(())
        })
    }
}

impl Drop for KafkaSettle {
    /// Unsettled (a settled offset is no longer pending, so this is then a no-op): no handler
    /// holds it any more, a rebalance need not wait for it.
    fn drop(&mut self) {
        self.shared.offsets.idle(&self.position);
    }
}
