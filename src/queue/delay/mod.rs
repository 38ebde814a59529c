//! Delayed delivery ([`Queue::publish_at`](super::Queue::publish_at)), written once over
//! [`Broker`](super::Broker) so every backend gets the same semantics.
//!
//! A delayed message waits in one of four *level* topics (`<prefix>.1s`, `.8s`, `.64s`,
//! `.512s`). A level holds a message for at most its own length, so each level topic is close to
//! first-in first-out by the time its messages are due, and no broker holds one longer than
//! 512 s (under RabbitMQ's 30-minute `consumer_timeout`). The [forwarder](DelayForwarder)
//! reads every level as group [`DELAY_GROUP`], holds each message until its hop ends, then
//! publishes it to the largest level that still fits what is left, or to its own topic once due.
//! A message takes one hop per 512 s of its delay and at most seven per shorter level: a delay
//! of 10 s takes 3 hops, one of an hour 9, one of a day 174-188.

mod forwarder;

pub(crate) use forwarder::background;
pub use forwarder::{DelayForwarder, ForwardReport};

use super::Message;
use crate::{Error, Result};
use std::sync::{Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest id a delayed message may have: its per-hop id adds up to 12 bytes.
const MAX_ID: usize = 240;

/// The longest delay [`Queue::publish_after`](super::Queue::publish_after) accepts: 366 days.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// The consumer group the forwarder reads the level topics as.
pub const DELAY_GROUP: &str = "corekit-delay";

/// The level lengths, shortest first.
pub(crate) const LEVELS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(8),
    Duration::from_secs(64),
    Duration::from_secs(512),
];

/// When the message is due (Unix milliseconds).
pub(crate) const DUE_HEADER: &str = "corekit-due";
/// When its current hop ends (Unix milliseconds).
const HOP_HEADER: &str = "corekit-delay-hop";
/// The topic it is for.
const TOPIC_HEADER: &str = "corekit-delay-topic";
/// Its own id: on a level topic it travels under a per-hop id, as NATS JetStream drops a second
/// publish of one id to one stream (a message may pass a level twice).
const ID_HEADER: &str = "corekit-delay-id";
/// Hops taken so far (makes the per-hop id).
const HOPS_HEADER: &str = "corekit-delay-hops";

/// The headers delayed delivery reserves; a message carrying one is refused.
pub(crate) const RESERVED: [&str; 5] =
    [DUE_HEADER, HOP_HEADER, TOPIC_HEADER, ID_HEADER, HOPS_HEADER];

/// Per-queue state: the level topics' names, which of them were provisioned, the background
/// forwarder.
pub(crate) struct DelayState {
    topics: [String; 4],
    ensured: [tokio::sync::OnceCell<()>; 4],
    forwarder: Mutex<Weak<forwarder::Running>>,
}

impl std::fmt::Debug for DelayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayState")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl DelayState {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            topics: LEVELS.map(|l| format!("{prefix}.{}s", l.as_secs())),
            ensured: Default::default(),
            forwarder: Mutex::new(Weak::new()),
        }
    }

    /// The level topics, shortest level first.
    pub(crate) fn topics(&self) -> &[String; 4] {
        &self.topics
    }
}

/// Where a delayed message goes next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Due: to its topic.
    Deliver,
    /// To level `level`, whose hop ends at `hop` (Unix ms).
    Wait { level: usize, hop: u64 },
}

/// The next step for a message due at `due`, at `now` (both Unix ms): the largest level not
/// longer than what is left (the shortest when less than a second is left), for at most what is
/// left.
pub(crate) fn route(due: u64, now: u64) -> Route {
    let left = due.saturating_sub(now);
    if left == 0 {
        return Route::Deliver;
    }
    let level = LEVELS
        .iter()
        .rposition(|l| l.as_millis() as u64 <= left)
        .unwrap_or(0);
    let hop = now + (LEVELS[level].as_millis() as u64).min(left);
    Route::Wait { level, hop }
}

/// Unix milliseconds of `t` (0 before the epoch).
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `when` as Unix ms, refusing one further than [`MAX_DELAY`] ahead.
pub(crate) fn due_at(when: SystemTime) -> Result<u64> {
    let now = SystemTime::now();
    if when.duration_since(now).is_ok_and(|d| d > MAX_DELAY) {
        return Err(Error::invalid_input(format!(
            "delivery time is more than {} days ahead (the most a delay may be)",
            MAX_DELAY.as_secs() / 86_400
        )));
    }
    Ok(unix_ms(when))
}

/// `message` (for `topic`, due at `due`) prepared for level hop number `hops`: its own id
/// kept in a header, a per-hop id in its place.
fn to_level(mut message: Message, topic: &str, due: u64, hop: u64) -> Message {
    let own = message
        .headers
        .remove(ID_HEADER)
        .unwrap_or_else(|| message.id.clone());
    let hops = message
        .headers
        .get(HOPS_HEADER)
        .and_then(|h| h.parse::<u32>().ok())
        .map_or(0, |h| h.saturating_add(1));
    message.id = format!("{own}.d{hops}");
    let h = &mut message.headers;
    h.insert(ID_HEADER.into(), own);
    h.insert(HOPS_HEADER.into(), hops.to_string());
    h.insert(DUE_HEADER.into(), due.to_string());
    h.insert(HOP_HEADER.into(), hop.to_string());
    h.insert(TOPIC_HEADER.into(), topic.to_owned());
    message.attempt = 0;
    message
}

/// `message` as it was published, for its topic: delay headers gone, its own id back.
fn to_topic(mut message: Message) -> Message {
    if let Some(own) = message.headers.remove(ID_HEADER) {
        message.id = own;
    }
    for h in [DUE_HEADER, HOP_HEADER, TOPIC_HEADER, HOPS_HEADER] {
        message.headers.remove(h);
    }
    message.attempt = 0;
    message
}

/// What a message read from a level topic says about itself.
#[derive(Debug)]
pub(crate) struct Waiting {
    topic: String,
    due: u64,
    hop: u64,
}

impl Waiting {
    /// Reads the delay headers; `None` when they are missing or malformed.
    fn of(message: &Message) -> Option<Self> {
        let get = |h: &str| message.headers.get(h);
        Some(Self {
            topic: get(TOPIC_HEADER)?.clone(),
            due: get(DUE_HEADER)?.parse().ok()?,
            hop: get(HOP_HEADER)?.parse().ok()?,
        })
    }
}

impl super::Queue {
    /// Publishes `message` to be delivered to every group of `topic` at `when`: no earlier,
    /// and in normal operation within the bound the [module docs](super#delayed-delivery)
    /// give per broker. A time in the past publishes at once. The id, key, headers and trace
    /// context are kept. Delivery needs a [`DelayForwarder`] running against the broker: every
    /// [`Consumer`](super::Consumer) runs one.
    ///
    /// ```no_run
    /// # #[cfg(feature = "queue-memory")]
    /// # async fn run() -> corekit::Result<()> {
    /// use corekit::queue::{Message, Queue};
    /// use std::time::Duration;
    ///
    /// let queue = Queue::from_env().await?;
    /// queue.ensure_group("reminders", "mailer").await?;
    /// queue
    ///     .publish_after("reminders", Message::new("cart 7 still open"), Duration::from_secs(15 * 60))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) for what [`publish`](Self::publish)
    /// refuses, a `corekit-delay-*`/`corekit-due` header, or `when` more than [`MAX_DELAY`]
    /// ahead, all before any call; the backend's errors otherwise.
    pub async fn publish_at(&self, topic: &str, message: Message, when: SystemTime) -> Result<()> {
        self.publish_batch_at(topic, vec![message], when).await
    }

    /// Publishes `message` to be delivered after `delay`; see [`publish_at`](Self::publish_at).
    ///
    /// # Errors
    /// As [`publish_at`](Self::publish_at).
    pub async fn publish_after(
        &self,
        topic: &str,
        message: Message,
        delay: Duration,
    ) -> Result<()> {
        self.publish_batch_at(topic, vec![message], after(delay)?)
            .await
    }

    /// Publishes many messages to be delivered at `when`, pipelining the broker's
    /// acknowledgements; see [`publish_at`](Self::publish_at).
    ///
    /// # Errors
    /// As [`publish_at`](Self::publish_at); every message is checked before any is sent.
    pub async fn publish_batch_at(
        &self,
        topic: &str,
        messages: Vec<Message>,
        when: SystemTime,
    ) -> Result<()> {
        super::message::validate_topic(topic)?;
        for m in &messages {
            m.validate(self.settings.max_payload)?;
            // Room for the per-hop suffix within every broker's id limit (AMQP's 255 bytes).
            if m.id.len() > MAX_ID {
                return Err(Error::invalid_input(format!(
                    "message id {:?} is {} bytes; a delayed message's id may be {MAX_ID} at most",
                    m.id,
                    m.id.len()
                )));
            }
            if let Some(h) = RESERVED.iter().find(|h| m.headers.contains_key(**h)) {
                return Err(Error::invalid_input(format!(
                    "header {h:?} is reserved by corekit's delayed delivery"
                )));
            }
        }
        let due = due_at(when)?;
        match route(due, unix_ms(SystemTime::now())) {
            Route::Deliver => self.publish_batch(topic, messages).await,
            Route::Wait { level, hop } => {
                if messages.is_empty() {
                    return Ok(());
                }
                self.call("publish_delayed", topic, async {
                    let messages = messages.into_iter().map(super::traced).collect();
                    self.wait(topic, messages, due, level, hop).await
                })
                .await
            }
        }
    }

    /// Publishes many messages to be delivered after `delay`; see
    /// [`publish_at`](Self::publish_at).
    ///
    /// # Errors
    /// As [`publish_at`](Self::publish_at).
    pub async fn publish_batch_after(
        &self,
        topic: &str,
        messages: Vec<Message>,
        delay: Duration,
    ) -> Result<()> {
        self.publish_batch_at(topic, messages, after(delay)?).await
    }

    /// This queue over the same broker connection, with its delayed messages on the level
    /// topics `prefix.1s`, `.8s`, ... (see [`QueueBuilder::delay_topics`](super::QueueBuilder::delay_topics)):
    /// separate delay namespaces for services, or tests, sharing a broker.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) when `prefix` makes invalid topic names.
    pub fn with_delay_topics(&self, prefix: &str) -> Result<Self> {
        super::message::validate_topic(&format!("{prefix}.512s"))
            .map_err(|e| Error::invalid_input(format!("delay topics: {}", e.message())))?;
        let mut settings = (*self.settings).clone();
        settings.delay_topics = prefix.to_owned();
        Ok(Self::assemble(self.broker.clone(), settings))
    }

    /// A forwarder of this queue's delayed messages, to run where no
    /// [`Consumer`](super::Consumer) does.
    pub fn delay_forwarder(&self) -> DelayForwarder {
        DelayForwarder::new(self.clone())
    }

    /// Puts messages for `topic` on level `level` until `hop`, provisioning the level's group
    /// first so none is published before the forwarder's group exists.
    pub(crate) async fn wait(
        &self,
        topic: &str,
        messages: Vec<Message>,
        due: u64,
        level: usize,
        hop: u64,
    ) -> Result<()> {
        let level_topic = &self.delay.topics[level];
        // Once per level and queue; concurrent first publishes wait for the one call, and a
        // failed call is made again by the next publish.
        self.delay.ensured[level]
            .get_or_try_init(|| self.broker.ensure_group(level_topic, DELAY_GROUP))
            .await?;
        let messages = messages
            .into_iter()
            .map(|m| to_level(m, topic, due, hop))
            .collect();
        self.broker.publish_batch(level_topic, messages).await
    }
}

/// `delay` from now, refusing one over [`MAX_DELAY`].
fn after(delay: Duration) -> Result<SystemTime> {
    if delay > MAX_DELAY {
        return Err(Error::invalid_input(format!(
            "delay of {delay:?} is over the most a delay may be ({} days)",
            MAX_DELAY.as_secs() / 86_400
        )));
    }
    Ok(SystemTime::now() + delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_to_the_largest_level_that_fits() {
        let now = 1_000_000;
        assert_eq!(route(now, now), Route::Deliver);
        assert_eq!(route(now - 5, now), Route::Deliver);
        assert_eq!(
            route(now + 300, now),
            Route::Wait {
                level: 0,
                hop: now + 300
            }
        );
        assert_eq!(
            route(now + 1_500, now),
            Route::Wait {
                level: 0,
                hop: now + 1_000
            }
        );
        assert_eq!(
            route(now + 63_999, now),
            Route::Wait {
                level: 1,
                hop: now + 8_000
            }
        );
        assert_eq!(
            route(now + 86_400_000, now),
            Route::Wait {
                level: 3,
                hop: now + 512_000
            }
        );
    }

    #[test]
    fn every_delay_ends_delivered_never_early() {
        for delay in [1, 999, 1_000, 1_001, 7_999, 65_000, 600_000, 86_400_000] {
            let (start, mut now, mut hops) = (5_000_000u64, 5_000_000u64, 0);
            let due = start + delay;
            while let Route::Wait { hop, .. } = route(due, now) {
                assert!(hop <= due, "a hop never ends after the due time");
                assert!(hop > now);
                now = hop;
                hops += 1;
            }
            assert_eq!(now, due, "delivered when due, for {delay} ms");
            assert!(hops <= delay / 512_000 + 22, "{delay}: {hops} hops");
        }
    }

    #[test]
    fn the_message_comes_back_as_published() {
        let m = Message::new("x")
            .with_key("k")
            .with_header("a", "b")
            .with_id("own");
        let on_level = to_level(m.clone(), "orders", 9, 5);
        assert_eq!(on_level.id, "own.d0");
        let again = to_level(on_level, "orders", 9, 7);
        assert_eq!(again.id, "own.d1", "a second hop gets another id");
        let w = Waiting::of(&again).expect("delay headers");
        assert_eq!((w.topic.as_str(), w.due, w.hop), ("orders", 9, 7));
        assert_eq!(to_topic(again), m);
    }
}
