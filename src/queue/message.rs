//! Messages, their headers, and how corekit's own fields travel on brokers that lack them.

use crate::{Error, Result};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// Message headers: exact, ordered by name, string to string.
///
/// Every backend carries them unchanged (names are case-sensitive everywhere), so trace context
/// and application metadata survive the trip.
pub type Headers = BTreeMap<String, String>;

impl crate::instrument::Carrier for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_owned(), value);
    }
    fn keys(&self) -> Vec<&str> {
        BTreeMap::keys(self).map(String::as_str).collect()
    }
}

/// Header that carries [`Message::id`] on the wire.
pub const ID_HEADER: &str = "corekit-id";
/// Header that carries the delivery attempt on brokers that do not count deliveries.
pub const ATTEMPT_HEADER: &str = "corekit-attempt";
/// Header that carries [`Message::key`] on brokers without a native message key.
pub const KEY_HEADER: &str = "corekit-key";
/// Dead letters: why the message was dead-lettered.
pub const DLQ_REASON_HEADER: &str = "corekit-dlq-reason";
/// Dead letters: how many delivery attempts were made.
pub const DLQ_ATTEMPTS_HEADER: &str = "corekit-dlq-attempts";
/// Dead letters: the topic the message was consumed from.
pub const DLQ_TOPIC_HEADER: &str = "corekit-dlq-topic";
/// Dead letters: the consumer group that gave up on it.
pub const DLQ_GROUP_HEADER: &str = "corekit-dlq-group";
/// Set by [`Queue::redrive`](super::Queue::redrive): only this consumer group handles the
/// message; subscriptions of other groups acknowledge and skip it.
pub const FOR_GROUP_HEADER: &str = "corekit-for-group";

const RESERVED: [&str; 3] = [ID_HEADER, ATTEMPT_HEADER, KEY_HEADER];

/// One message: payload bytes, an optional key, headers and an id.
///
/// The key orders and partitions: messages with the same key go to the same Kafka partition, and
/// [`Consumer`](super::Consumer) handles them one at a time, in order, on every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The body.
    pub payload: Bytes,
    /// Ordering / partitioning key.
    pub key: Option<String>,
    /// Application headers (names starting `corekit-` other than the dead-letter ones are
    /// reserved).
    pub headers: Headers,
    /// Unique id: generated when the message is built, kept across retries and dead-lettering;
    /// NATS JetStream also uses it to drop duplicate publishes.
    pub id: String,
    /// Which delivery of this message this is (1 on the first); 0 on a message being published.
    pub attempt: u32,
}

impl Message {
    /// A message with this payload and a fresh id.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            key: None,
            headers: Headers::new(),
            id: new_id(),
            attempt: 0,
        }
    }

    /// A message whose payload is `value` as JSON.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) when `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        serde_json::to_vec(value)
            .map(Self::new)
            .map_err(|e| Error::invalid_input(format!("cannot encode message as JSON: {e}")))
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Replaces the generated id (e.g. with a business id, for JetStream de-duplication).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// The payload decoded from JSON.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) naming the message when it does not
    /// decode; [`Consumer`](super::Consumer) dead-letters such messages without retrying.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            Error::invalid_input(format!(
                "message {} does not decode as {}: {e}",
                self.id,
                std::any::type_name::<T>()
            ))
        })
    }

    /// The payload as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    /// Checks what every backend needs, before any network call.
    pub(crate) fn validate(&self, max_payload: usize) -> Result<()> {
        if self.payload.len() > max_payload {
            return Err(Error::invalid_input(format!(
                "message {} payload is {} bytes, over the {max_payload}-byte maximum",
                self.id,
                self.payload.len()
            )));
        }
        if self.id.is_empty() || !self.id.bytes().all(is_token_byte) {
            return Err(Error::invalid_input(format!(
                "message id {:?} must be non-empty printable ASCII without spaces",
                self.id
            )));
        }
        if let Some(key) = &self.key {
            check_value("message key", key)?;
        }
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(|b| is_token_byte(b) && b != b':') {
                return Err(Error::invalid_input(format!(
                    "header name {name:?} must be non-empty printable ASCII without spaces or ':'"
                )));
            }
            if RESERVED.contains(&name.as_str()) {
                return Err(Error::invalid_input(format!(
                    "header {name:?} is reserved by corekit; set Message::id / key instead"
                )));
            }
            check_value(name, value)?;
        }
        Ok(())
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic()
}

// NATS headers are line-based: a CR or LF would end the header early.
fn check_value(what: &str, value: &str) -> Result<()> {
    if value.contains(['\r', '\n', '\0']) {
        return Err(Error::invalid_input(format!(
            "{what} value {value:?} contains CR, LF or NUL"
        )));
    }
    Ok(())
}

/// A random 128-bit id as 32 hex digits.
pub(crate) fn new_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// Checks a topic name: what Kafka, RabbitMQ and NATS all accept.
pub(crate) fn validate_topic(topic: &str) -> Result<()> {
    check_name("topic", topic, 249, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
    })?;
    if topic.starts_with('.') || topic.ends_with('.') || topic.contains("..") {
        return Err(Error::invalid_input(format!(
            "topic {topic:?} has an empty '.'-separated segment"
        )));
    }
    Ok(())
}

/// Checks a consumer group name (no '.', which NATS consumer names refuse).
pub(crate) fn validate_group(group: &str) -> Result<()> {
    check_name("group", group, 200, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
    })
}

fn check_name(what: &str, name: &str, max: usize, ok: impl Fn(u8) -> bool) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_input(format!("{what} name is empty")));
    }
    if name.len() > max {
        return Err(Error::invalid_input(format!(
            "{what} name {name:?} is {} bytes, over {max}",
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii() || !ok(*c as u8)) {
        return Err(Error::invalid_input(format!(
            "{what} name {name:?} contains {c:?}; use ASCII letters, digits, '_', '-'{}",
            if what == "topic" { " and '.'" } else { "" }
        )));
    }
    Ok(())
}

/// corekit's fields as headers, for brokers that carry only headers: what goes on the wire,
/// as (name, value) pairs without copying the message's own (corekit's names are reserved:
/// a message header of the same name is left out).
#[cfg_attr(
    not(any(
        feature = "queue-kafka",
        feature = "queue-rabbitmq",
        feature = "queue-nats"
    )),
    allow(dead_code)
)]
pub(crate) fn wire_pairs(
    message: &Message,
    attempt: u32,
    key_in_header: bool,
) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
    use std::borrow::Cow;
    let key = message.key.as_deref().filter(|_| key_in_header);
    let reserved =
        move |k: &str| k == ID_HEADER || k == ATTEMPT_HEADER || (key.is_some() && k == KEY_HEADER);
    message
        .headers
        .iter()
        .filter(move |(k, _)| !reserved(k))
        .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
        .chain(std::iter::once((
            ID_HEADER,
            Cow::Borrowed(message.id.as_str()),
        )))
        .chain((attempt > 1).then(|| (ATTEMPT_HEADER, Cow::Owned(attempt.to_string()))))
        .chain(key.map(|k| (KEY_HEADER, Cow::Borrowed(k))))
}

/// [`wire_pairs`] as a map.
#[cfg_attr(
    not(any(feature = "queue-rabbitmq", feature = "queue-nats")),
    allow(dead_code)
)]
pub(crate) fn wire_headers(message: &Message, attempt: u32, key_in_header: bool) -> Headers {
    wire_pairs(message, attempt, key_in_header)
        .map(|(k, v)| (k.to_owned(), v.into_owned()))
        .collect()
}

/// The reverse of [`wire_headers`]: a message, and the attempt the headers recorded (1 when
/// none). A message published by something other than corekit gets a fresh id.
#[cfg_attr(
    not(any(
        feature = "queue-kafka",
        feature = "queue-rabbitmq",
        feature = "queue-nats"
    )),
    allow(dead_code)
)]
pub(crate) fn from_wire(payload: Bytes, key: Option<String>, mut headers: Headers) -> Message {
    let id = headers.remove(ID_HEADER).unwrap_or_else(new_id);
    let attempt = headers
        .remove(ATTEMPT_HEADER)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let key = key.or_else(|| headers.remove(KEY_HEADER));
    headers.remove(KEY_HEADER);
    Message {
        payload,
        key,
        headers,
        id,
        attempt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_is_exact() {
        let m = Message::new("x")
            .with_key("k")
            .with_header("traceparent", "00-1-2-01")
            .with_header("Case", "Kept");
        let back = from_wire(m.payload.clone(), None, wire_headers(&m, 3, true));
        assert_eq!(back.headers, m.headers);
        assert_eq!(back.key.as_deref(), Some("k"));
        assert_eq!(back.id, m.id);
        assert_eq!(back.attempt, 3);
        let first = from_wire(m.payload.clone(), None, wire_headers(&m, 1, false));
        assert_eq!((first.attempt, first.key), (1, None));
    }

    #[test]
    fn names_and_headers_are_checked() {
        assert!(validate_topic("orders.created-v1_x").is_ok());
        for bad in ["", "a b", "a..b", ".a", "a.", "a*", "a>", "é"] {
            assert!(validate_topic(bad).is_err(), "{bad:?}");
        }
        assert!(validate_topic(&"a".repeat(250)).is_err());
        assert!(validate_group("workers_1-a").is_ok());
        assert!(validate_group("a.b").is_err());
        let ok = Message::new("x").with_header("a", "b");
        assert!(ok.validate(10).is_ok());
        assert!(ok.validate(0).is_err());
        for m in [
            Message::new("x").with_header("a b", "v"),
            Message::new("x").with_header("a:b", "v"),
            Message::new("x").with_header("", "v"),
            Message::new("x").with_header("a", "line\nbreak"),
            Message::new("x").with_header(ID_HEADER, "v"),
            Message::new("x").with_key("k\r"),
            Message::new("x").with_id("has space"),
        ] {
            let e = m.validate(10).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{m:?}");
        }
        // Dead-letter headers are readable and may be republished (replaying a DLQ).
        assert!(
            Message::new("x")
                .with_header(DLQ_REASON_HEADER, "boom")
                .validate(10)
                .is_ok()
        );
    }

    #[test]
    fn decode_errors_name_the_message() {
        let m = Message::json(&serde_json::json!({"a": 1})).unwrap();
        #[derive(serde::Deserialize, Debug)]
        struct A {
            #[allow(dead_code)]
            a: u32,
        }
        assert!(m.decode::<A>().is_ok());
        let e = Message::new("nope").decode::<A>().unwrap_err();
        assert!(e.message().contains("does not decode"), "{e}");
    }
}
