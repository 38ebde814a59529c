//! NATS on async-nats: JetStream streams and durable pull consumers (acknowledged, durable), or
//! core NATS (fire-and-forget).

use super::message::{ID_HEADER, from_wire, wire_headers};
use super::{
    BoxFuture, Broker, Headers, Incoming, IncomingStream, Message, Settle, TopicOptions, bounded,
};
use crate::retry::Backoff;
use crate::{Error, ErrorKind, Result};
use async_nats::jetstream::{self, AckKind, consumer::pull, stream};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How [`NatsBroker`] moves messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NatsMode {
    /// JetStream: `publish` returns once the stream stored the message; consumers are durable
    /// and acknowledge; retries use JetStream's `Nak` with a delay.
    #[default]
    JetStream,
    /// Core NATS: `publish` returns once the message is handed to the client (no broker
    /// acknowledgement); only running subscribers receive it; groups are queue groups;
    /// settling is a no-op and retries are [`Unsupported`](ErrorKind::Unsupported). For
    /// telemetry-style traffic where losing a message is acceptable.
    Core,
}

/// Builds a [`NatsBroker`]; from [`NatsBroker::builder`].
#[derive(Clone)]
pub struct NatsBuilder {
    url: String,
    mode: NatsMode,
    operation_timeout: Duration,
    connect_timeout: Duration,
    ack_wait: Duration,
    topic_options: TopicOptions,
}

impl std::fmt::Debug for NatsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBuilder")
            .field("url", &crate::config::redact_url(&self.url))
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl NatsBuilder {
    /// JetStream (default) or core NATS.
    pub fn mode(mut self, mode: NatsMode) -> Self {
        self.mode = mode;
        self
    }

    /// Bound on one publish (ack included) or JetStream API call (default 30 s).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Bound on connecting (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// JetStream redelivers a message not settled within this (default 30 s).
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Replicas and retention of the streams corekit creates on first use of a topic
    /// ([`Queue::ensure_topic_with`](super::Queue::ensure_topic_with) sets them per topic).
    pub fn topic_options(mut self, options: TopicOptions) -> Self {
        self.topic_options = options;
        self
    }

    /// Connects. The client then reconnects by itself, for as long as the process runs.
    ///
    /// # Errors
    /// [`Unavailable`](ErrorKind::Unavailable) or [`Timeout`](ErrorKind::Timeout) when no
    /// server answers in time.
    pub async fn build(self) -> Result<NatsBroker> {
        let servers: Vec<&str> = self.url.split(',').map(str::trim).collect();
        // A malformed address is a configuration error, not a server that is away.
        for server in &servers {
            if let Err(e) = server.parse::<async_nats::ServerAddr>() {
                return Err(Error::config(format!(
                    "NATS URL {:?} is not valid: {}",
                    crate::config::redact_url(server),
                    crate::config::scrub(&e.to_string(), &self.url)
                ))
                .with_backend("nats"));
            }
        }
        let options = async_nats::ConnectOptions::new()
            .name("corekit")
            .connection_timeout(self.connect_timeout)
            .request_timeout(Some(self.operation_timeout))
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("nats: connected"),
                    async_nats::Event::Disconnected => tracing::warn!("nats: disconnected"),
                    other => tracing::debug!("nats: {other}"),
                }
            });
        let url = crate::config::redact_url(&self.url);
        let client = bounded(
            self.connect_timeout,
            || format!("connecting to {url}"),
            async {
                options.connect(servers).await.map_err(|e| {
                    let kind = match e.kind() {
                        async_nats::ConnectErrorKind::Authentication
                        | async_nats::ConnectErrorKind::AuthorizationViolation => {
                            ErrorKind::PermissionDenied
                        }
                        async_nats::ConnectErrorKind::TimedOut => ErrorKind::Timeout,
                        _ => ErrorKind::Unavailable,
                    };
                    // The client's message may quote the URL: scrub it, keep no source.
                    let text = crate::config::scrub(&e.to_string(), &self.url);
                    Error::new(kind, format!("connecting to {url}: {text}")).with_backend("nats")
                })
            },
        )
        .await?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(self.operation_timeout)
            .build(client.clone());
        Ok(NatsBroker {
            inner: Arc::new(Inner {
                client,
                jetstream,
                builder: self,
                streams: Mutex::new(HashSet::new()),
            }),
        })
    }
}

/// NATS through async-nats.
///
/// In [`NatsMode::JetStream`] topic `t` is stored in stream `t` with `.` replaced by `_`
/// (subject `t`, file storage, limits retention), group `g` is durable pull consumer `g` of
/// that stream, and [`Message::id`] is sent as `Nats-Msg-Id` so the server drops a duplicate
/// publish (a retried publish after a timeout) within its duplicate window.
#[derive(Clone)]
pub struct NatsBroker {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    builder: NatsBuilder,
    streams: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("builder", &self.inner.builder)
            .finish_non_exhaustive()
    }
}

fn nats_error(e: impl std::error::Error + Send + Sync + 'static, what: &str) -> Error {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    let kind = if lower.contains("timed out") || lower.contains("timeout") {
        ErrorKind::Timeout
    } else if lower.contains("not found")
        || lower.contains("no responders")
        || lower.contains("no stream found")
    {
        ErrorKind::NotFound
    } else if lower.contains("broken pipe")
        || lower.contains("disconnect")
        // A pull whose server went away (a clustered node died): the client pulls again.
        || lower.contains("missed idle heartbeat")
        // JetStream's 10008, e.g. a cluster electing its meta leader.
        || lower.contains("temporarily unavailable")
    {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Backend
    };
    Error::new(kind, format!("{what}: {text}"))
        .with_backend("nats")
        .with_source(e)
}

fn stream_name(topic: &str) -> String {
    topic.replace('.', "_")
}

fn to_header_map(headers: &Headers) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_str(k)
            .map_err(|e| Error::invalid_input(format!("header name {k:?}: {e}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|e| Error::invalid_input(format!("header {k:?} value: {e}")))?;
        map.insert(name, value);
    }
    Ok(map)
}

fn from_header_map(map: Option<&HeaderMap>) -> Headers {
    let mut headers = Headers::new();
    for (name, values) in map.into_iter().flat_map(HeaderMap::iter) {
        if let Some(v) = values.first() {
            headers.insert(name.to_string(), v.as_str().to_owned());
        }
    }
    headers.remove("Nats-Msg-Id");
    headers
}

impl NatsBroker {
    /// A builder for the server(s) at `url` (`nats://host:4222`, comma-separated for several).
    pub fn builder(url: impl Into<String>) -> NatsBuilder {
        NatsBuilder {
            url: url.into(),
            mode: NatsMode::JetStream,
            operation_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            ack_wait: Duration::from_secs(30),
            topic_options: TopicOptions::default(),
        }
    }

    /// The client, for calls corekit does not wrap.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.jetstream
    }

    fn timeout(&self) -> Duration {
        self.inner.builder.operation_timeout
    }

    fn streams(&self) -> MutexGuard<'_, HashSet<String>> {
        self.inner.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn jetstream_mode(&self) -> bool {
        self.inner.builder.mode == NatsMode::JetStream
    }

    async fn ensure_stream(&self, topic: &str) -> Result<stream::Stream> {
        let options = self.inner.builder.topic_options.clone();
        self.ensure_stream_with(topic, &options).await
    }

    async fn ensure_stream_with(
        &self,
        topic: &str,
        options: &TopicOptions,
    ) -> Result<stream::Stream> {
        let name = stream_name(topic);
        let limit = |n: Option<u64>| n.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![topic.to_owned()],
            storage: stream::StorageType::File,
            num_replicas: usize::from(options.replication.max(1)),
            max_age: options.retention.unwrap_or_default(),
            max_bytes: limit(options.retention_bytes),
            max_messages: limit(options.retention_messages),
            ..Default::default()
        };
        let (stream, info) = self
            .admin("creating a stream", || async {
                let mut stream = self
                    .inner
                    .jetstream
                    .get_or_create_stream(config.clone())
                    .await
                    .map_err(|e| nats_error(e, "creating a stream"))?;
                let info = stream
                    .info()
                    .await
                    .map_err(|e| nats_error(e, "reading stream info"))?
                    .clone();
                Ok((stream, info))
            })
            .await?;
        if !info.config.subjects.iter().any(|s| s == topic) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "stream {name:?} exists for subjects {:?}, not topic {topic:?} (topic names \
                     that differ only in '.' and '_' share a stream name)",
                    info.config.subjects
                ),
            ));
        }
        self.streams().insert(topic.to_owned());
        Ok(stream)
    }

    async fn ensure_known(&self, topic: &str) -> Result<()> {
        if self.jetstream_mode() && !self.streams().contains(topic) {
            self.ensure_stream(topic).await?;
        }
        Ok(())
    }

    async fn enqueue(
        &self,
        topic: &str,
        message: &Message,
    ) -> Result<Option<jetstream::context::PublishAckFuture>> {
        let mut headers = to_header_map(&wire_headers(message, 1, true))?;
        if !self.jetstream_mode() {
            self.inner
                .client
                .publish_with_headers(topic.to_owned(), headers, message.payload.clone())
                .await
                .map_err(|e| nats_error(e, "publishing"))?;
            return Ok(None);
        }
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            HeaderValue::from_str(&message.id)
                .map_err(|e| Error::invalid_input(format!("message id: {e}")))?,
        );
        self.inner
            .jetstream
            .publish_with_headers(topic.to_owned(), headers, message.payload.clone())
            .await
            .map(Some)
            .map_err(|e| nats_error(e, "publishing"))
    }

    async fn consumer(
        &self,
        topic: &str,
        group: &str,
        prefetch: u32,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>> {
        let stream = self.ensure_stream(topic).await?;
        let config = pull::Config {
            durable_name: Some(group.to_owned()),
            filter_subject: topic.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.inner.builder.ack_wait,
            max_ack_pending: i64::from(prefetch.max(1)),
            ..Default::default()
        };
        self.admin("creating a consumer", || async {
            stream
                .get_or_create_consumer(group, config.clone())
                .await
                .map_err(|e| nats_error(e, "creating a consumer"))
        })
        .await
    }

    /// Runs an idempotent JetStream API call (create or look up a stream or a consumer) again
    /// while it times out or JetStream is briefly unavailable. A clustered meta leader under
    /// load can leave one request unanswered (a stream create waited past 30 s in CI), where a
    /// new request may be answered: each attempt gets a quarter of the operation timeout, and
    /// the caller's bound (every caller has one) ends the retries.
    async fn admin<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let attempt_timeout = (self.timeout() / 4).max(Duration::from_secs(1));
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut retry = 0;
        loop {
            let error = match tokio::time::timeout(attempt_timeout, call()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Unavailable) => e,
                Ok(Err(e)) => return Err(e),
                Err(_) => Error::new(
                    ErrorKind::Timeout,
                    format!("{what}: no answer within {attempt_timeout:?}"),
                ),
            };
            retry += 1;
            tracing::debug!(error = %error, retry, "nats: {what}; asking again");
            tokio::time::sleep(backoff.delay(retry)).await;
        }
    }
}

impl NatsBroker {
    /// Runs `publish` (which stores on `topic`'s stream), again while JetStream answers that no
    /// stream takes the subject: on a cluster that is a stream whose leader is being elected
    /// after a node died (seen in the cluster fault test), and a stream deleted meanwhile is
    /// created again. The caller's bound ends the retries; message ids make them harmless.
    async fn storing<F, Fut>(&self, topic: &str, publish: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        loop {
            let attempt = async {
                self.ensure_known(topic).await?;
                publish().await
            };
            match attempt.await {
                Err(e) if e.kind() == ErrorKind::NotFound && self.jetstream_mode() => {
                    tracing::debug!(%topic, error = %e, "nats: no stream answered; retrying");
                    self.streams().remove(topic);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }
}

async fn await_ack(ack: Option<jetstream::context::PublishAckFuture>) -> Result<()> {
    if let Some(ack) = ack {
        ack.await
            .map_err(|e| nats_error(e, "awaiting the publish ack"))?;
    }
    Ok(())
}

impl Broker for NatsBroker {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn topic_options(&self) -> TopicOptions {
        self.inner.builder.topic_options.clone()
    }

    fn publish<'a>(&'a self, topic: &'a str, message: Message) -> BoxFuture<'a, Result<()>> {
        // The client queues publishes while disconnected and would wait for ever once its
        // queue is full: the bound turns that into a retryable timeout.
        Box::pin(bounded(
            self.timeout(),
            move || format!("publishing to {topic:?}"),
            async move {
                let message = &message;
                self.storing(topic, || async {
                    await_ack(self.enqueue(topic, message).await?).await
                })
                .await
            },
        ))
    }

    fn publish_batch<'a>(
        &'a self,
        topic: &'a str,
        messages: Vec<Message>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(bounded(
            self.timeout(),
            move || format!("publishing a batch to {topic:?}"),
            async move {
                let messages = &messages;
                self.storing(topic, || async {
                    let mut acks = Vec::with_capacity(messages.len());
                    for m in messages {
                        acks.push(self.enqueue(topic, m).await?);
                    }
                    futures_util::future::try_join_all(acks.into_iter().map(await_ack))
                        .await
                        .map(drop)
                })
                .await
            },
        ))
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
                if !self.jetstream_mode() {
                    let subscriber = self
                        .inner
                        .client
                        .queue_subscribe(topic.to_owned(), group.to_owned())
                        .await
                        .map_err(|e| nats_error(e, "subscribing"))?;
                    let stream = subscriber.map(|m| {
                        Ok(Incoming {
                            message: from_wire(
                                m.payload,
                                None,
                                from_header_map(m.headers.as_ref()),
                            ),
                            settle: Box::new(CoreSettle),
                        })
                    });
                    return Ok(Box::pin(stream) as IncomingStream);
                }
                let consumer = self.consumer(topic, group, prefetch).await?;
                // Well inside the ack wait, so a held message is never redelivered meanwhile.
                let keep_alive_every =
                    (consumer.cached_info().config.ack_wait / 3).max(Duration::from_millis(100));
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(prefetch.max(1) as usize)
                    .heartbeat(Duration::from_secs(5))
                    .expires(Duration::from_secs(15))
                    .messages()
                    .await
                    .map_err(|e| nats_error(e, "starting to pull"))?;
                let stream = messages.map(move |item| {
                    let m = item.map_err(|e| nats_error(e, "receiving"))?;
                    let attempt = m
                        .info()
                        .map(|i| u32::try_from(i.delivered).unwrap_or(u32::MAX))
                        .unwrap_or(1);
                    let mut headers = from_header_map(m.headers.as_ref());
                    if let Some(id) = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    {
                        headers
                            .entry(ID_HEADER.to_owned())
                            .or_insert_with(|| id.as_str().to_owned());
                    }
                    let mut message = from_wire(m.payload.clone(), None, headers);
                    message.attempt = attempt.max(1);
                    Ok(Incoming {
                        message,
                        settle: Box::new(JetStreamSettle {
                            message: Some(m),
                            keep_alive_every,
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
            move || format!("creating {topic:?}"),
            async move {
                if self.jetstream_mode() {
                    self.ensure_stream_with(topic, options).await?;
                }
                Ok(())
            },
        ))
    }

    fn ensure_group<'a>(&'a self, topic: &'a str, group: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(bounded(
            self.timeout(),
            move || format!("creating group {group:?} of {topic:?}"),
            async move {
                if self.jetstream_mode() {
                    self.consumer(topic, group, 64).await?;
                }
                Ok(())
            },
        ))
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(bounded(
            self.timeout(),
            move || format!("deleting {topic:?}"),
            async move {
                self.streams().remove(topic);
                if self.jetstream_mode() {
                    self.inner
                        .jetstream
                        .delete_stream(stream_name(topic))
                        .await
                        .map_err(|e| nats_error(e, "deleting a stream"))?;
                }
                Ok(())
            },
        ))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.inner.client.connection_state() != async_nats::connection::State::Connected {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "not connected to NATS ({})",
                        self.inner.client.connection_state()
                    ),
                ));
            }
            bounded(
                self.timeout(),
                || "flushing the NATS connection".to_owned(),
                async {
                    self.inner
                        .client
                        .flush()
                        .await
                        .map_err(|e| nats_error(e, "flushing"))
                },
            )
            .await
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        // Drain: subscriptions stop, what was published is flushed, then the client closes.
        Box::pin(bounded(
            self.timeout(),
            || "draining the NATS connection".to_owned(),
            async {
                self.inner
                    .client
                    .drain()
                    .await
                    .map_err(|e| nats_error(e, "draining"))
            },
        ))
    }
}

struct JetStreamSettle {
    // Some until settled: a drop with it still here naks it for prompt redelivery.
    message: Option<jetstream::Message>,
    keep_alive_every: Duration,
}

impl JetStreamSettle {
    fn send(mut self: Box<Self>, kind: AckKind) -> BoxFuture<'static, Result<()>> {
        let message = self.message.take();
        Box::pin(async move {
            match message {
                Some(m) => m
                    .ack_with(kind)
                    .await
                    .map_err(|e| nats_error(BoxedError(e), "settling")),
                None => Ok(()),
            }
        })
    }
}

impl Settle for JetStreamSettle {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        self.send(AckKind::Ack)
    }

    fn retry(self: Box<Self>, _: Message, delay: Duration) -> BoxFuture<'static, Result<()>> {
        // JetStream counts deliveries itself; the next one reports attempt + 1.
        self.send(AckKind::Nak((!delay.is_zero()).then_some(delay)))
    }

    fn keep_alive_every(&self) -> Option<Duration> {
        Some(self.keep_alive_every)
    }

    fn keep_alive(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match &self.message {
                Some(m) => m
                    .ack_with(AckKind::Progress)
                    .await
                    .map_err(|e| nats_error(BoxedError(e), "extending the ack wait")),
                None => Ok(()),
            }
        })
    }
}

impl Drop for JetStreamSettle {
    fn drop(&mut self) {
        if let (Some(m), Ok(rt)) = (self.message.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = m.ack_with(AckKind::Nak(None)).await;
            });
        }
    }
}

/// async-nats's boxed error as a concrete error type (for `with_source`).
#[derive(Debug)]
struct BoxedError(async_nats::Error);

impl std::fmt::Display for BoxedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BoxedError {}

struct CoreSettle;

impl Settle for CoreSettle {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn retry(self: Box<Self>, _: Message, _: Duration) -> BoxFuture<'static, Result<()>> {
        Box::pin(std::future::ready(Err(Error::unsupported(
            "nats",
            "retry",
            "core NATS has no redelivery; use NatsMode::JetStream",
        ))))
    }
}
