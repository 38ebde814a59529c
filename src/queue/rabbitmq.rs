//! RabbitMQ on lapin: a durable fanout exchange per topic, a durable queue per group, publisher
//! confirms, automatic connection recovery.

use super::message::{from_wire, wire_headers};
use super::{
    BoxFuture, Broker, Headers, Incoming, IncomingStream, Message, QueueType, Settle, TopicOptions,
    bounded,
};
use crate::{Error, ErrorKind, Result};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Builds a [`RabbitMqBroker`]; from [`RabbitMqBroker::builder`].
#[derive(Clone)]
pub struct RabbitMqBuilder {
    url: String,
    operation_timeout: Duration,
    connect_timeout: Duration,
    topic_options: TopicOptions,
}

impl std::fmt::Debug for RabbitMqBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqBuilder")
            .field("url", &crate::config::redact_url(&self.url))
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl RabbitMqBuilder {
    /// Bound on one publish (confirm included) or topology call (default 30 s); a publish made
    /// while the connection recovers waits for the recovery within this bound.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Bound on connecting (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Options for topics without their own ([`Queue::ensure_topic_with`](super::Queue::ensure_topic_with)):
    /// of these RabbitMQ applies [`queue_type`](TopicOptions::queue_type), the type of the
    /// queue each group gets (default classic).
    pub fn topic_options(mut self, options: TopicOptions) -> Self {
        self.topic_options = options;
        self
    }

    /// Connects and opens the publishing channel (confirm mode).
    ///
    /// # Errors
    /// [`Unavailable`](ErrorKind::Unavailable) or [`Timeout`](ErrorKind::Timeout) when the
    /// server cannot be reached in time; [`PermissionDenied`](ErrorKind::PermissionDenied) for
    /// bad credentials.
    pub async fn build(self) -> Result<RabbitMqBroker> {
        // A malformed URL is a configuration error, not a server that is away.
        if let Err(e) = self.url.parse::<lapin::uri::AMQPUri>() {
            return Err(Error::config(format!(
                "RabbitMQ URL {:?} is not valid: {}",
                crate::config::redact_url(&self.url),
                crate::config::scrub(&e, &self.url)
            ))
            .with_backend("rabbitmq"));
        }
        let properties = ConnectionProperties::default()
            .with_connection_name("corekit".into())
            .enable_auto_recover()
            // Keep trying (a second apart at most) for as long as the process runs.
            .configure_backoff(|b| {
                b.with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .with_max_times(usize::MAX)
            });
        let url = crate::config::redact_url(&self.url);
        let connection = bounded(
            self.connect_timeout,
            || format!("connecting to {url}"),
            async {
                Connection::connect_with_runtime(&self.url, properties, lapin_runtime()?)
                    .await
                    .map_err(|e| {
                        amqp_error(e, "connecting")
                            .scrubbed(&self.url)
                            .with_context(format!("connecting to {url}"))
                    })
            },
        )
        .await?;
        let publisher = open_publisher(&connection).await?;
        Ok(RabbitMqBroker {
            inner: Arc::new(Inner {
                connection,
                publisher: tokio::sync::Mutex::new(publisher),
                builder: self,
                exchanges: Mutex::new(HashSet::new()),
                queues: Mutex::new(HashSet::new()),
                queue_types: Mutex::new(HashMap::new()),
                disconnected_at: Mutex::new(None),
            }),
        })
    }
}

/// The runtime lapin's connection thread (reads, writes, reconnects) runs on: one of corekit's
/// own that lives as long as the process. On the caller's runtime, a connection recovering when
/// that runtime shuts down panics in lapin's thread ("A Tokio 1.x context was found, but it is
/// being shutdown"); on this one it never meets a runtime going away. The application's tasks
/// still await deliveries and confirms on their own runtime.
fn lapin_runtime() -> Result<async_rs::TokioRuntime> {
    static RUNTIME: std::sync::OnceLock<std::io::Result<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("corekit-amqp")
            .enable_all()
            .build()
    });
    match runtime {
        Ok(rt) => Ok(async_rs::TokioRuntime::tokio_with_handle(
            rt.handle().clone(),
        )),
        Err(e) => Err(Error::new(
            ErrorKind::Backend,
            format!("starting the RabbitMQ client's runtime: {e}"),
        )),
    }
}

async fn open_publisher(connection: &Connection) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| amqp_error(e, "opening a channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| amqp_error(e, "enabling publisher confirms"))?;
    Ok(channel)
}

/// RabbitMQ through lapin (AMQP 0.9.1).
///
/// Topic `t` is a durable fanout exchange `t`; group `g` a durable queue `t.g` bound to it.
/// Messages are persistent and published `mandatory` with confirms: `publish` returns once the
/// broker stored them, and a message no queue would receive (no group subscribed or provisioned
/// yet) is [`NotFound`](ErrorKind::NotFound), not silently dropped; on a topic this handle
/// provisioned a group of, an unroutable publish is first taken for a restarted broker still
/// restoring its bindings and sent again for up to 15 s (within the operation timeout). The
/// connection recovers by
/// itself (channels, consumers and declarations are restored); publishes made meanwhile wait
/// for it within the operation timeout. Retries are republished straight to the group's queue.
#[derive(Clone)]
pub struct RabbitMqBroker {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    publisher: tokio::sync::Mutex<Channel>,
    builder: RabbitMqBuilder,
    exchanges: Mutex<HashSet<String>>,
    queues: Mutex<HashSet<(String, String)>>,
    /// Queue types asked for per topic by `ensure_topic`; others get the builder's.
    queue_types: Mutex<HashMap<String, QueueType>>,
    /// When a publish last met a lost connection: for a while after, the restarted broker may
    /// still be recovering its queues' bindings.
    disconnected_at: Mutex<Option<std::time::Instant>>,
}

/// How long after a lost connection an unroutable publish is taken for a broker still
/// recovering its durable queues (and retried) rather than for a topic without groups.
const RECOVERY_GRACE: Duration = Duration::from_secs(15);

impl std::fmt::Debug for RabbitMqBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqBroker")
            .field("builder", &self.inner.builder)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn short(s: &str) -> Result<ShortString> {
    ShortString::try_new(s.to_owned())
        .map_err(|_| Error::invalid_input(format!("AMQP name {s:?} is over 255 bytes")))
}

fn queue_name(topic: &str, group: &str) -> String {
    format!("{topic}.{group}")
}

fn amqp_error(e: lapin::Error, what: &str) -> Error {
    use lapin::ErrorKind as K;
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    let kind = match e.kind() {
        K::ProtocolError(p) => match p.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => ErrorKind::NotFound,
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => ErrorKind::Conflict,
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => ErrorKind::PermissionDenied,
            AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED) => ErrorKind::Unavailable,
            _ => ErrorKind::Backend,
        },
        K::IOError(_) | K::InvalidChannelState(..) | K::InvalidConnectionState(_) => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Backend,
    };
    let kind = if kind == ErrorKind::Backend && e.to_string().contains("ACCESS_REFUSED") {
        ErrorKind::PermissionDenied
    } else {
        kind
    };
    Error::new(kind, format!("{what}: {e}"))
        .with_backend("rabbitmq")
        .with_source(e)
}

fn to_field_table(headers: &Headers) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in headers {
        if let Ok(name) = ShortString::try_new(k.clone()) {
            table.insert(name, AMQPValue::LongString(LongString::from(v.as_str())));
        }
    }
    table
}

fn from_field_table(table: Option<&FieldTable>) -> Headers {
    let mut headers = Headers::new();
    for (k, v) in table.into_iter().flatten() {
        let value = match v {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            AMQPValue::ShortString(s) => s.as_str().to_owned(),
            AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
            // Headers set by other AMQP clients (numbers, booleans): their text form.
            other => format!("{other:?}"),
        };
        headers.insert(k.as_str().to_owned(), value);
    }
    headers
}

impl RabbitMqBroker {
    /// A builder for the server at `url` (`amqp://user:password@host:5672/vhost`; `amqps://`
    /// with feature `queue-rabbitmq-tls`).
    pub fn builder(url: impl Into<String>) -> RabbitMqBuilder {
        RabbitMqBuilder {
            url: url.into(),
            operation_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            topic_options: TopicOptions::default(),
        }
    }

    /// The connection, for calls corekit does not wrap.
    pub fn connection(&self) -> &Connection {
        &self.inner.connection
    }

    fn timeout(&self) -> Duration {
        self.inner.builder.operation_timeout
    }

    /// A channel for topology calls: a failed declaration closes its channel, so never the
    /// publishing one.
    /// A new channel, waiting out a connection recovery (callers bound the wait with the
    /// operation timeout), as publishing does: a consumer started while the connection
    /// recovers starts once it is back instead of failing at once.
    async fn admin_channel(&self) -> Result<Channel> {
        loop {
            match self.inner.connection.create_channel().await {
                Ok(channel) => return Ok(channel),
                Err(e) if !self.inner.connection.status().connected() => {
                    tracing::debug!(error = %e, "rabbitmq: waiting for the connection to recover");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(amqp_error(e, "opening a channel")),
            }
        }
    }

    async fn declare_exchange(&self, channel: &Channel, topic: &str) -> Result<()> {
        channel
            .exchange_declare(
                short(topic)?,
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(e, "declaring an exchange"))?;
        lock(&self.inner.exchanges).insert(topic.to_owned());
        Ok(())
    }

    async fn declare_group(&self, channel: &Channel, topic: &str, group: &str) -> Result<String> {
        self.declare_exchange(channel, topic).await?;
        let queue = queue_name(topic, group);
        let queue_type = lock(&self.inner.queue_types)
            .get(topic)
            .copied()
            .unwrap_or(self.inner.builder.topic_options.queue_type);
        let mut arguments = FieldTable::default();
        if queue_type != QueueType::Classic {
            // Only when asked: a queue declared before this option existed has no argument,
            // and RabbitMQ refuses a redeclaration whose arguments differ.
            arguments.insert(
                ShortString::from("x-queue-type"),
                AMQPValue::LongString(LongString::from(queue_type.as_str())),
            );
        }
        channel
            .queue_declare(short(&queue)?, QueueDeclareOptions::durable(), arguments)
            .await
            .map_err(|e| {
                amqp_error(
                    e,
                    &format!("declaring queue {queue:?} ({})", queue_type.as_str()),
                )
            })?;
        channel
            .queue_bind(
                short(&queue)?,
                short(topic)?,
                ShortString::from(""),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| amqp_error(e, "binding a queue"))?;
        lock(&self.inner.queues).insert((topic.to_owned(), group.to_owned()));
        Ok(queue)
    }

    async fn ensure_exchange(&self, topic: &str) -> Result<()> {
        if lock(&self.inner.exchanges).contains(topic) {
            return Ok(());
        }
        let channel = self.admin_channel().await?;
        self.declare_exchange(&channel, topic).await?;
        let _ = channel.close(200, ShortString::from("done")).await;
        Ok(())
    }

    /// A usable publishing channel: the current one, or a new one when it was closed (a
    /// protocol error kills a channel for good).
    async fn publisher(&self) -> Result<Channel> {
        let mut channel = self.inner.publisher.lock().await;
        let status = channel.status();
        let dead = status.closing() || (!status.connected() && !status.reconnecting());
        if dead && self.inner.connection.status().connected() {
            *channel = open_publisher(&self.inner.connection).await?;
        }
        Ok(channel.clone())
    }

    fn mark_disconnected(&self) {
        *lock(&self.inner.disconnected_at) = Some(std::time::Instant::now());
    }

    /// Whether this handle bound a group's queue to `exchange`: a publish it routes to no
    /// queue then means the broker is still restoring the binding (a restart this handle's
    /// publishes did not see, the recovery done by lapin underneath), not a topic without
    /// groups. A group deleted behind this handle's back is then reported at the bound.
    fn has_bound(&self, exchange: &str) -> bool {
        lock(&self.inner.queues).iter().any(|(t, _)| t == exchange)
    }

    fn recently_disconnected(&self) -> bool {
        lock(&self.inner.disconnected_at).is_some_and(|at| at.elapsed() < RECOVERY_GRACE)
    }

    /// Publishes and waits for the confirm, waiting out a connection recovery on the way.
    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        message: &Message,
        attempt: u32,
    ) -> Result<()> {
        let headers = to_field_table(&wire_headers(message, attempt, true));
        let properties = BasicProperties::default()
            .with_message_id(short(&message.id)?)
            .with_delivery_mode(2)
            .with_headers(headers);
        let (exchange, routing_key) = (short(exchange)?, short(routing_key)?);
        let what = || format!("publishing to {exchange:?}");
        bounded(self.timeout(), what, async {
            let started = std::time::Instant::now();
            loop {
                let channel = self.publisher().await?;
                let sent = channel
                    .basic_publish(
                        exchange.clone(),
                        routing_key.clone(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &message.payload,
                        properties.clone(),
                    )
                    .await;
                let confirm = match sent {
                    Ok(confirm) => confirm.await,
                    Err(e) => Err(e),
                };
                match confirm {
                    Ok(Confirmation::Ack(None)) => return Ok(()),
                    // Right after a restart the broker routes before it has recovered its
                    // durable queues' bindings: wait for them (within the bound) instead of
                    // reporting a topic without groups.
                    Ok(Confirmation::Ack(Some(_)))
                        if self.recently_disconnected()
                            || (self.has_bound(exchange.as_str())
                                && started.elapsed() < RECOVERY_GRACE) =>
                    {
                        tracing::debug!("rabbitmq: unroutable right after a reconnect; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Ok(Confirmation::Ack(Some(returned))) => {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "exchange {exchange:?} routed message {} to no queue ({}): no \
                                 group has subscribed or been provisioned (Queue::ensure_group)",
                                message.id, returned.reply_text
                            ),
                        ));
                    }
                    Ok(Confirmation::Nack(_)) => {
                        return Err(Error::new(
                            ErrorKind::Unavailable,
                            format!("RabbitMQ refused message {} (nack)", message.id),
                        ));
                    }
                    Ok(Confirmation::NotRequested) => {
                        return Err(Error::new(
                            ErrorKind::Backend,
                            "publisher confirms are off on the publishing channel",
                        ));
                    }
                    // Whether the broker kept it is unknown: publish again once recovered
                    // (at least once).
                    Err(e) if channel.status().reconnecting() => {
                        self.mark_disconnected();
                        tracing::debug!(error = %e, "rabbitmq: publish interrupted; waiting for recovery");
                        channel
                            .wait_for_recovery(e)
                            .await
                            .map_err(|e| amqp_error(e, "recovering the connection"))?;
                    }
                    Err(e) if !self.inner.connection.status().connected() => {
                        self.mark_disconnected();
                        tracing::debug!(error = %e, "rabbitmq: publish failed while disconnected; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => return Err(amqp_error(e, "publishing")),
                }
            }
        })
        .await
    }
}

impl Broker for RabbitMqBroker {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn topic_options(&self) -> TopicOptions {
        self.inner.builder.topic_options.clone()
    }

    fn publish<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.ensure_exchange(topic).await?;
            self.send(topic, "", &message, 1).await
        })
    }

    fn publish_batch<'a>(
        &'a self,
        topic: &'a str,
        messages: Vec<Message>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.ensure_exchange(topic).await?;
            // Confirms are pipelined: every publish is written before any confirm is awaited.
            futures_util::future::try_join_all(messages.iter().map(|m| self.send(topic, "", m, 1)))
                .await
                .map(drop)
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: &'a str,
        group: &'a str,
        prefetch: u32,
    ) -> BoxFuture<'a, Result<IncomingStream>> {
        Box::pin(bounded(
            self.timeout(),
            move || format!("subscribing to {topic:?}"),
            async move {
                let channel = self.admin_channel().await?;
                let queue = self.declare_group(&channel, topic, group).await?;
                channel
                    .basic_qos(
                        u16::try_from(prefetch).unwrap_or(u16::MAX),
                        BasicQosOptions::default(),
                    )
                    .await
                    .map_err(|e| amqp_error(e, "setting prefetch"))?;
                let consumer = channel
                    .basic_consume(
                        short(&queue)?,
                        ShortString::from(""),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| amqp_error(e, "starting a consumer"))?;
                let broker = self.clone();
                let queue: Arc<str> = queue.into();
                let stream = consumer.map(move |item| {
                    // The channel lives as long as its consumer stream.
                    let _keep = &channel;
                    let delivery = item.map_err(|e| amqp_error(e, "receiving"))?;
                    let mut headers = from_field_table(delivery.properties.headers().as_ref());
                    // Published by another AMQP client: its message id, if it set one.
                    if let Some(id) = delivery.properties.message_id() {
                        headers
                            .entry(super::ID_HEADER.to_owned())
                            .or_insert_with(|| id.to_string());
                    }
                    let message = from_wire(delivery.data.into(), None, headers);
                    Ok(Incoming {
                        message,
                        settle: Box::new(RabbitSettle {
                            acker: delivery.acker,
                            broker: broker.clone(),
                            queue: queue.clone(),
                        }),
                    })
                });
                Ok(Box::pin(stream) as IncomingStream)
            },
        ))
    }

    fn ensure_topic<'a>(
        &'a self,
        topic: &'a str,
        options: &'a TopicOptions,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(bounded(
            self.timeout(),
            move || format!("declaring {topic:?}"),
            async move {
                lock(&self.inner.queue_types).insert(topic.to_owned(), options.queue_type);
                lock(&self.inner.exchanges).remove(topic);
                self.ensure_exchange(topic).await
            },
        ))
    }

    fn ensure_group<'a>(&'a self, topic: &'a str, group: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(bounded(
            self.timeout(),
            move || format!("declaring group {group:?} of {topic:?}"),
            async move {
                let channel = self.admin_channel().await?;
                self.declare_group(&channel, topic, group).await?;
                let _ = channel.close(200, ShortString::from("done")).await;
                Ok(())
            },
        ))
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(bounded(
            self.timeout(),
            move || format!("deleting {topic:?}"),
            async move {
                let channel = self.admin_channel().await?;
                let groups: Vec<String> = lock(&self.inner.queues)
                    .iter()
                    .filter(|(t, _)| t == topic)
                    .map(|(_, g)| g.clone())
                    .collect();
                for group in groups {
                    channel
                        .queue_delete(
                            short(&queue_name(topic, &group))?,
                            QueueDeleteOptions::default(),
                        )
                        .await
                        .map_err(|e| amqp_error(e, "deleting a queue"))?;
                    lock(&self.inner.queues).remove(&(topic.to_owned(), group));
                }
                channel
                    .exchange_delete(short(topic)?, ExchangeDeleteOptions::default())
                    .await
                    .map_err(|e| amqp_error(e, "deleting an exchange"))?;
                lock(&self.inner.exchanges).remove(topic);
                let _ = channel.close(200, ShortString::from("done")).await;
                Ok(())
            },
        ))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        let status = self.inner.connection.status();
        let result = if status.connected() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "not connected to RabbitMQ ({})",
                    if status.reconnecting() {
                        "reconnecting"
                    } else {
                        "closed"
                    }
                ),
            ))
        };
        Box::pin(std::future::ready(result))
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(bounded(
            self.inner.builder.operation_timeout,
            || "closing the RabbitMQ connection".to_owned(),
            async {
                if !self.inner.connection.status().connected() {
                    return Ok(());
                }
                self.inner
                    .connection
                    .close(200, ShortString::from("closed by the application"))
                    .await
                    .map_err(|e| amqp_error(e, "closing the connection"))
            },
        ))
    }
}

struct RabbitSettle {
    acker: lapin::Acker,
    broker: RabbitMqBroker,
    queue: Arc<str>,
}

impl Settle for RabbitSettle {
    /// False once the channel it came on was lost: the broker delivers it again (after a
    /// recovery, its acknowledgement would do nothing), so handling it now would duplicate.
    fn start(&mut self) -> bool {
        self.acker.usable()
    }

    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            self.acker
                .ack(BasicAckOptions::default())
                .await
                .map(drop)
                .map_err(|e| amqp_error(e, "acknowledging"))
        })
    }

    fn retry(self: Box<Self>, message: Message, delay: Duration) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            // Unacknowledged while waiting: a crash now redelivers the original.
            tokio::time::sleep(delay).await;
            // The default exchange routes by queue name: this group only.
            self.broker
                .send("", &self.queue, &message, message.attempt)
                .await?;
            self.ack().await
        })
    }
}
