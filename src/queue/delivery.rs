//! A received message and how it is settled.

use super::message::{
    DLQ_ATTEMPTS_HEADER, DLQ_GROUP_HEADER, DLQ_REASON_HEADER, DLQ_TOPIC_HEADER, FOR_GROUP_HEADER,
    Message,
};
use super::{BoxFuture, Broker};
use crate::Result;
use std::sync::Arc;
use std::time::Duration;

/// How a backend settles one delivery. Implemented by each backend; applications use
/// [`Delivery`].
///
/// Dropping a `Settle` without calling either method leaves the message unacknowledged: the
/// broker delivers it again (memory: at once; RabbitMQ: when the channel closes; NATS: after the
/// ack wait; Kafka: to the next consumer of the partition, since its offset is never committed).
pub trait Settle: Send + 'static {
    /// The message was handled: the broker may forget it.
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>>;
    /// Deliver the message again to this consumer group (only), as attempt + 1, after `delay`.
    fn retry(self: Box<Self>, message: Message, delay: Duration) -> BoxFuture<'static, Result<()>>;
    /// How often [`keep_alive`](Self::keep_alive) must be called for a message held unsettled
    /// not to be delivered again (NATS: a third of the ack wait); `None` (the default) when the
    /// broker never redelivers a message its consumer still holds.
    fn keep_alive_every(&self) -> Option<Duration> {
        None
    }
    /// The message is still being worked on: a broker that redelivers what stays unsettled
    /// for a while (NATS's ack wait) must wait longer. Nothing to do by default.
    fn keep_alive(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// The message waits for a handler (a consumer's prefetch): the backend need not treat it
    /// as being worked on (Kafka: a rebalance does not wait for it). Nothing by default.
    fn park(&mut self) {}
    /// A handler is about to start the message: false when it is no longer this consumer's to
    /// handle (Kafka: its partition moved to another consumer, which reads it again; RabbitMQ:
    /// the channel it came on was lost, so the broker delivers it again); the caller then drops
    /// it unhandled. Always true by default.
    fn start(&mut self) -> bool {
        true
    }
}

/// What a backend's subscription yields: the message (with its attempt) and how to settle it.
pub struct Incoming {
    /// The message, [`attempt`](Message::attempt) filled in.
    pub message: Message,
    /// The backend's settle handle.
    pub settle: Box<dyn Settle>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// Where rejected and exhausted messages go.
#[derive(Clone)]
pub(crate) struct DeadLetter {
    pub broker: Arc<dyn Broker>,
    pub topic: String,
}

/// A message received from a subscription, to be settled exactly once: [`ack`](Self::ack),
/// [`nack`](Self::nack), [`retry_after`](Self::retry_after) or [`reject`](Self::reject).
///
/// A delivery dropped unsettled is delivered again (see [`Settle`]); nothing is lost.
pub struct Delivery {
    message: Message,
    topic: Arc<str>,
    group: Arc<str>,
    settle: Box<dyn Settle>,
    dead_letter: DeadLetter,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub(crate) fn new(
        incoming: Incoming,
        topic: Arc<str>,
        group: Arc<str>,
        dead_letter: DeadLetter,
    ) -> Self {
        Self {
            message: incoming.message,
            topic,
            group,
            settle: incoming.settle,
            dead_letter,
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The topic it was consumed from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The consumer group it was delivered to.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Which delivery this is: 1 the first time, higher after retries.
    pub fn attempt(&self) -> u32 {
        self.message.attempt
    }

    /// Tells the broker the message is still being worked on (NATS: extends the ack wait), so
    /// holding it a while does not get it delivered to someone else meanwhile.
    ///
    /// # Errors
    /// When the broker cannot be told.
    pub async fn keep_alive(&mut self) -> Result<()> {
        self.settle.keep_alive().await
    }

    /// How often [`keep_alive`](Self::keep_alive) must be called while the message is held;
    /// `None` when the broker does not need it.
    pub fn keep_alive_every(&self) -> Option<Duration> {
        self.settle.keep_alive_every()
    }

    /// See [`Settle::park`].
    pub(crate) fn park(&mut self) {
        self.settle.park();
    }

    /// See [`Settle::start`].
    pub(crate) fn start(&mut self) -> bool {
        self.settle.start()
    }

    /// Acknowledges: the message was handled.
    ///
    /// # Errors
    /// When the broker cannot be told (the message will then be delivered again).
    pub async fn ack(self) -> Result<()> {
        self.settle.ack().await
    }

    /// Negative acknowledgement: with `requeue`, delivered again to this group at once (as the
    /// next attempt); without, dead-lettered like [`reject`](Self::reject).
    ///
    /// # Errors
    /// When the broker cannot be told (the message will then be delivered again).
    pub async fn nack(self, requeue: bool) -> Result<()> {
        if requeue {
            self.retry_after(Duration::ZERO).await
        } else {
            self.reject("nacked without requeue").await
        }
    }

    /// Delivered again to this group, as the next attempt, after `delay` (the backoff of a
    /// failed attempt).
    ///
    /// # Errors
    /// When the broker cannot be told (the message will then be delivered again).
    pub async fn retry_after(self, delay: Duration) -> Result<()> {
        let mut message = self.message;
        message.attempt = message.attempt.saturating_add(1);
        self.settle.retry(message, delay).await
    }

    /// Permanent failure: the message goes to the dead-letter topic (`<topic>.dlq` unless
    /// configured) with the reason, attempt count, source topic and group in its
    /// `corekit-dlq-*` headers, and is then acknowledged here. If publishing the dead letter
    /// fails, the message is not acknowledged, so it is not lost.
    ///
    /// # Errors
    /// When the dead letter cannot be published or the original acknowledged.
    pub async fn reject(self, reason: &str) -> Result<()> {
        let mut letter = self.message;
        let attempts = letter.attempt.to_string();
        // Keep the reason on one header line.
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(1024)
            .collect();
        // Meant for this group only: not for whoever reads the dead letters.
        letter.headers.remove(FOR_GROUP_HEADER);
        letter.headers.insert(DLQ_REASON_HEADER.into(), reason);
        letter.headers.insert(DLQ_ATTEMPTS_HEADER.into(), attempts);
        letter
            .headers
            .insert(DLQ_TOPIC_HEADER.into(), self.topic.to_string());
        letter
            .headers
            .insert(DLQ_GROUP_HEADER.into(), self.group.to_string());
        letter.attempt = 0;
        let dlq = &self.dead_letter;
        tracing::debug!(topic = %self.topic, dlq = %dlq.topic, id = %letter.id, "dead-lettering");
        dlq.broker.publish(&dlq.topic, letter).await?;
        self.settle.ack().await
    }
}
