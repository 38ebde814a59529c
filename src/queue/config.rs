//! `QUEUE_*` configuration.

use super::Broker;
use crate::config::{self as cfg, ConfigIssue, EnvConfig, Secret};
use crate::{Error, Result};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Which broker [`Queue::from_env`](super::Queue::from_env) connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// In-process (feature `queue-memory`).
    #[default]
    Memory,
    /// Kafka (feature `queue-kafka`).
    Kafka,
    /// RabbitMQ (feature `queue-rabbitmq`).
    Rabbitmq,
    /// NATS (feature `queue-nats`).
    Nats,
}

/// Queue settings; every field has the default listed in the [module docs](super).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct QueueConfig {
    /// `QUEUE_BACKEND`; when unset, [`url`](Self::url)'s scheme picks it, else `memory`. See
    /// [`backend()`](Self::backend).
    pub backend: Option<QueueBackend>,
    /// `QUEUE_URL`: `memory://`, `kafka://host:9092[,host:9092]`, `amqp://`/`amqps://`
    /// (RabbitMQ) or `nats://`/`tls://` (comma-separated for several servers). Its scheme picks
    /// the backend and it is that backend's address, in place of `QUEUE_KAFKA_BROKERS`,
    /// `QUEUE_AMQP_URL` or `QUEUE_NATS_URL`. A secret because it may carry a password.
    pub url: Option<Secret>,
    /// `QUEUE_KAFKA_BROKERS`.
    #[serde(with = "cfg::list")]
    pub kafka_brokers: Vec<String>,
    /// `QUEUE_KAFKA_PARTITIONS`.
    pub kafka_partitions: u32,
    /// `QUEUE_KAFKA_REPLICATION`.
    pub kafka_replication: u16,
    /// `QUEUE_NATS_REPLICAS`: replicas of the JetStream streams corekit creates (a clustered
    /// server; at most 5).
    pub nats_replicas: u16,
    /// `QUEUE_RETENTION`: how long a topic corekit creates keeps messages (unset: no limit).
    #[serde(with = "cfg::option_duration")]
    pub retention: Option<Duration>,
    /// `QUEUE_RETENTION_BYTES`: how many bytes it keeps (`10GiB`; Kafka: per partition).
    #[serde(with = "cfg::option_size")]
    pub retention_bytes: Option<u64>,
    /// `QUEUE_RETENTION_MESSAGES`: how many messages it keeps (NATS only).
    pub retention_messages: Option<u64>,
    /// `QUEUE_KAFKA_SESSION_TIMEOUT`.
    #[serde(with = "cfg::duration")]
    pub kafka_session_timeout: Duration,
    /// `QUEUE_RABBITMQ_QUEUE_TYPE`: `classic` or `quorum`.
    pub rabbitmq_queue_type: super::QueueType,
    /// `QUEUE_AMQP_URL`; a secret because it carries a password.
    pub amqp_url: Secret,
    /// `QUEUE_NATS_URL`; a secret because it may carry credentials.
    pub nats_url: Secret,
    /// `QUEUE_NATS_MODE`: `jetstream` or `core`.
    pub nats_mode: String,
    /// `QUEUE_MAX_PAYLOAD`.
    #[serde(with = "cfg::size")]
    pub max_payload: u64,
    /// `QUEUE_CONNECT_TIMEOUT`.
    #[serde(with = "cfg::duration")]
    pub connect_timeout: Duration,
    /// `QUEUE_OPERATION_TIMEOUT`.
    #[serde(with = "cfg::duration")]
    pub operation_timeout: Duration,
    /// `QUEUE_PREFETCH`.
    pub prefetch: u32,
    /// `QUEUE_ACK_WAIT`.
    #[serde(with = "cfg::duration")]
    pub ack_wait: Duration,
    /// `QUEUE_CONCURRENCY`.
    pub concurrency: usize,
    /// `QUEUE_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `QUEUE_RETRY_BACKOFF`.
    #[serde(with = "cfg::duration")]
    pub retry_backoff: Duration,
    /// `QUEUE_RETRY_BACKOFF_MAX` (formerly `QUEUE_RETRY_MAX_BACKOFF`, still read).
    #[serde(with = "cfg::duration", alias = "retry_max_backoff")]
    pub retry_backoff_max: Duration,
    /// `QUEUE_DLQ_SUFFIX`.
    pub dlq_suffix: String,
    /// `QUEUE_DELAY_TOPICS`: the prefix of delayed delivery's level topics.
    pub delay_topics: String,
    /// `QUEUE_DELAY_FORWARD`: whether each running consumer forwards delayed messages too.
    pub delay_forward: bool,
    /// `QUEUE_DEDUPE_URL`: where consumers keep handled message ids (`memory://` or a Redis
    /// URL; unset: no de-duplication). A secret because it may carry a password.
    pub dedupe_url: Option<Secret>,
    /// `QUEUE_DEDUPE_WINDOW`: how long a handled id is remembered.
    #[serde(with = "cfg::duration")]
    pub dedupe_window: Duration,
    /// `QUEUE_DEDUPE_LEASE`: how long a claimed id stays claimed while its handler runs.
    #[serde(with = "cfg::duration")]
    pub dedupe_lease: Duration,
    /// Which variable each setting came from (filled by the loader), for errors.
    #[serde(skip)]
    pub sources: cfg::Sources,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            backend: None,
            url: None,
            kafka_brokers: vec!["127.0.0.1:9092".into()],
            kafka_partitions: 1,
            kafka_replication: 1,
            nats_replicas: 1,
            retention: None,
            retention_bytes: None,
            retention_messages: None,
            kafka_session_timeout: Duration::from_secs(10),
            rabbitmq_queue_type: super::QueueType::Classic,
            amqp_url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            nats_url: Secret::new("nats://127.0.0.1:4222"),
            nats_mode: "jetstream".into(),
            max_payload: 1 << 20,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            prefetch: 64,
            ack_wait: Duration::from_secs(30),
            concurrency: 8,
            max_attempts: 5,
            retry_backoff: Duration::from_millis(200),
            retry_backoff_max: Duration::from_secs(30),
            dlq_suffix: ".dlq".into(),
            delay_topics: "corekit.delay".into(),
            delay_forward: true,
            dedupe_url: None,
            dedupe_window: Duration::from_secs(24 * 3600),
            dedupe_lease: Duration::from_secs(60),
            sources: cfg::Sources::default(),
        }
    }
}

impl EnvConfig for QueueConfig {
    const PREFIX: &'static str = "QUEUE_";
    const SECRETS: &'static [&'static str] = &["url", "amqp_url", "nats_url", "dedupe_url"];
    fn sources_mut(&mut self) -> Option<&mut cfg::Sources> {
        Some(&mut self.sources)
    }

    const FALLBACKS: &'static [(&'static str, &'static [&'static str])] = &[
        ("amqp_url", &["AMQP_URL", "RABBITMQ_URL"]),
        ("nats_url", &["NATS_URL"]),
        ("kafka_brokers", &["KAFKA_BOOTSTRAP_SERVERS"]),
    ];

    fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        let positive: [(&'static str, u64); 7] = [
            ("kafka_partitions", u64::from(self.kafka_partitions)),
            ("kafka_replication", u64::from(self.kafka_replication)),
            ("max_payload", self.max_payload),
            ("prefetch", u64::from(self.prefetch)),
            ("concurrency", self.concurrency as u64),
            ("max_attempts", u64::from(self.max_attempts)),
            (
                "retry_backoff_max",
                self.retry_backoff_max.as_millis() as u64,
            ),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigIssue::new(field, "0", "a value above 0"));
        }
        cfg::check_retry(
            self.max_attempts,
            self.retry_backoff,
            self.retry_backoff_max,
        )?;
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("operation_timeout", self.operation_timeout),
            ("ack_wait", self.ack_wait),
            ("kafka_session_timeout", self.kafka_session_timeout),
            ("dedupe_window", self.dedupe_window),
            ("dedupe_lease", self.dedupe_lease),
        ] {
            if d.is_zero() {
                return Err(ConfigIssue::new(field, "0s", "a duration above zero"));
            }
        }
        let from_url = self.url_backend()?;
        cfg::check_backend_matches_url(
            self.backend.map(QueueBackend::as_str),
            from_url.map(QueueBackend::as_str),
            "QUEUE_URL",
            &[],
        )?;
        if self.backend() == QueueBackend::Kafka && self.kafka_list().is_empty() {
            return Err(ConfigIssue::new(
                "kafka_brokers",
                "",
                "host:port[,host:port...]",
            ));
        }
        let field = |own: &'static str| if from_url.is_some() { "url" } else { own };
        if self.backend() == QueueBackend::Rabbitmq {
            let url = self.amqp_address();
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                return Err(ConfigIssue::new(
                    field("amqp_url"),
                    url,
                    "a URL like amqp://user:password@host:5672/vhost or amqps://",
                ));
            }
        }
        if self.backend() == QueueBackend::Nats {
            let url = self.nats_address();
            if !url.split(',').all(|u| {
                ["nats://", "tls://", "ws://", "wss://"]
                    .iter()
                    .any(|s| u.trim().starts_with(s))
            }) {
                return Err(ConfigIssue::new(
                    field("nats_url"),
                    url,
                    "nats://host:4222 (comma-separated for several)",
                ));
            }
        }
        if !matches!(self.nats_mode.as_str(), "jetstream" | "core") {
            return Err(ConfigIssue::new(
                "nats_mode",
                self.nats_mode.clone(),
                "jetstream or core",
            ));
        }
        if super::message::validate_topic(&format!("t{}", self.dlq_suffix)).is_err() {
            return Err(ConfigIssue::new(
                "dlq_suffix",
                self.dlq_suffix.clone(),
                "characters valid in a topic name, e.g. .dlq",
            ));
        }
        if let Some(url) = &self.dedupe_url {
            super::dedupe::check_url(url.expose())?;
        }
        if super::message::validate_topic(&format!("{}.512s", self.delay_topics)).is_err() {
            return Err(ConfigIssue::new(
                "delay_topics",
                self.delay_topics.clone(),
                "a valid topic name, e.g. corekit.delay",
            ));
        }
        Ok(())
    }
}

impl QueueBackend {
    /// The name `QUEUE_BACKEND` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueBackend::Memory => "memory",
            QueueBackend::Kafka => "kafka",
            QueueBackend::Rabbitmq => "rabbitmq",
            QueueBackend::Nats => "nats",
        }
    }
}

impl QueueConfig {
    /// The broker [`Queue::from_config`](super::Queue::from_config) connects to:
    /// `QUEUE_BACKEND`, else the one `QUEUE_URL`'s scheme names, else memory.
    pub fn backend(&self) -> QueueBackend {
        self.backend
            .or_else(|| self.url_backend().ok().flatten())
            .unwrap_or_default()
    }

    /// The backend `QUEUE_URL`'s scheme names, when it is set.
    fn url_backend(&self) -> std::result::Result<Option<QueueBackend>, ConfigIssue> {
        let Some(url) = self.url.as_ref().map(Secret::expose) else {
            return Ok(None);
        };
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        Ok(Some(match scheme.as_deref() {
            Some("memory") => QueueBackend::Memory,
            Some("kafka") => QueueBackend::Kafka,
            Some("amqp" | "amqps") => QueueBackend::Rabbitmq,
            Some("nats" | "tls" | "ws" | "wss") => QueueBackend::Nats,
            _ => {
                return Err(ConfigIssue::new(
                    "url",
                    url,
                    "memory://, kafka://host:9092[,host:9092], amqp://user:password@host:5672/vhost \
                     or nats://host:4222",
                ));
            }
        }))
    }

    /// `QUEUE_URL` when it names `backend`.
    fn url_for(&self, backend: QueueBackend) -> Option<&str> {
        let url = self.url.as_ref()?.expose();
        (self.url_backend().ok().flatten() == Some(backend)).then_some(url)
    }

    /// The Kafka bootstrap servers: `QUEUE_URL` (`kafka://a:9092,b:9092`), else
    /// `QUEUE_KAFKA_BROKERS`.
    pub fn kafka_list(&self) -> Vec<String> {
        match self.url_for(QueueBackend::Kafka) {
            Some(url) => url
                .split(',')
                .map(|b| {
                    b.trim()
                        .trim_start_matches("kafka://")
                        .trim_end_matches('/')
                })
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect(),
            None => self.kafka_brokers.clone(),
        }
    }

    /// The RabbitMQ URL: `QUEUE_URL` when it is an AMQP URL, else `QUEUE_AMQP_URL`.
    pub fn amqp_address(&self) -> &str {
        self.url_for(QueueBackend::Rabbitmq)
            .unwrap_or(self.amqp_url.expose())
    }

    /// The NATS server(s): `QUEUE_URL` when it is a NATS URL, else `QUEUE_NATS_URL`.
    pub fn nats_address(&self) -> &str {
        self.url_for(QueueBackend::Nats)
            .unwrap_or(self.nats_url.expose())
    }

    /// The options of the topics the `backend` creates (replicas are per broker).
    pub fn topic_options(&self, backend: QueueBackend) -> super::TopicOptions {
        super::TopicOptions {
            partitions: self.kafka_partitions,
            replication: if backend == QueueBackend::Nats {
                self.nats_replicas
            } else {
                self.kafka_replication
            },
            retention: self.retention,
            retention_bytes: self.retention_bytes,
            retention_messages: self.retention_messages,
            queue_type: self.rabbitmq_queue_type,
        }
    }

    /// Connects the configured broker.
    pub(super) async fn connect(&self) -> Result<Arc<dyn Broker>> {
        let backend = self.backend();
        // Say which variable the address came from, or which one to set.
        let field = match backend {
            _ if self.url_for(backend).is_some() => "url",
            QueueBackend::Kafka => "kafka_brokers",
            QueueBackend::Rabbitmq => "amqp_url",
            _ => "nats_url",
        };
        self.connect_broker(backend).await.map_err(|e| {
            if e.kind() == crate::ErrorKind::Config || backend == QueueBackend::Memory {
                return e;
            }
            e.with_context(self.sources.describe(field))
        })
    }

    async fn connect_broker(&self, backend: QueueBackend) -> Result<Arc<dyn Broker>> {
        let address = match backend {
            QueueBackend::Memory => "in-process".to_owned(),
            QueueBackend::Kafka => crate::config::redact_url(&self.kafka_list().join(",")),
            QueueBackend::Rabbitmq => crate::config::redact_url(self.amqp_address()),
            QueueBackend::Nats => crate::config::redact_url(self.nats_address()),
        };
        tracing::info!(backend = backend.as_str(), %address, "queue: connecting");
        match backend {
            #[cfg(feature = "queue-memory")]
            QueueBackend::Memory => Ok(Arc::new(super::MemoryBroker::new())),
            #[cfg(feature = "queue-kafka")]
            QueueBackend::Kafka => Ok(Arc::new(
                super::KafkaBroker::builder(self.kafka_list().join(","))
                    .operation_timeout(self.operation_timeout)
                    .connect_timeout(self.connect_timeout)
                    .session_timeout(self.kafka_session_timeout)
                    .topic_options(self.topic_options(QueueBackend::Kafka))
                    .build()
                    .await?,
            )),
            #[cfg(feature = "queue-rabbitmq")]
            QueueBackend::Rabbitmq => Ok(Arc::new(
                super::RabbitMqBroker::builder(self.amqp_address())
                    .operation_timeout(self.operation_timeout)
                    .connect_timeout(self.connect_timeout)
                    .topic_options(self.topic_options(QueueBackend::Rabbitmq))
                    .build()
                    .await?,
            )),
            #[cfg(feature = "queue-nats")]
            QueueBackend::Nats => Ok(Arc::new(
                super::NatsBroker::builder(self.nats_address())
                    .mode(if self.nats_mode == "core" {
                        super::NatsMode::Core
                    } else {
                        super::NatsMode::JetStream
                    })
                    .operation_timeout(self.operation_timeout)
                    .connect_timeout(self.connect_timeout)
                    .ack_wait(self.ack_wait)
                    .topic_options(self.topic_options(QueueBackend::Nats))
                    .build()
                    .await?,
            )),
            #[allow(unreachable_patterns)]
            other => Err(Error::config(format!(
                "QUEUE_BACKEND={} needs the cargo feature queue-{}",
                format!("{other:?}").to_lowercase(),
                format!("{other:?}").to_lowercase()
            ))),
        }
    }
}
