//! # corekit
//!
//! The building blocks almost every production backend service needs, behind one crate and
//! cargo features: **cache**, **queue**, **storage**, **email**, **observability** and
//! **scheduler**. Every module is configured from environment variables with documented defaults
//! (or a builder in code), returns the one [`Error`] type, and is independent of the others:
//! enabling one backend pulls in only that backend's client.
//!
//! ## Install
//!
//! The package is `corekit-backend` (the name `corekit` on crates.io is an unrelated crate); the
//! library it adds is `corekit`, so code reads `use corekit::cache`:
//!
//! ```sh
//! cargo add corekit-backend --features cache-redis,queue-nats
//! ```
//!
//! ## Feature flags
//!
//! | feature | enables | talks to |
//! |---|---|---|
//! | *(always)* | [`Error`], [`config`], [`instrument`] (the one span/metrics/trace-context layer every module's calls go through) | |
//! | any module | [`shutdown_signal`] (SIGINT/SIGTERM, for consumers and schedulers to drain on) and [`health`] (one readiness check over the handles' `ping`) | |
//! | `cache-memory` *(default)* | `cache` with `MemoryStore` (quick_cache, bounded, per-entry TTL) | nothing: in-process |
//! | `cache-redis` | `cache` with `RedisStore` (fred, auto-pipelined) | Redis 6+ |
//! | `cache-redis-tls` | `rediss://` for `RedisStore` (rustls, ring) | Redis with TLS |
//! | `cache-memory` + `cache-redis` | `cache::TieredStore`: memory in front of Redis, invalidated across instances by pub/sub | Redis |
//! | `cache` | both cache backends | |
//! | `queue-memory` *(default)* | `queue` with `MemoryBroker` (in-process, same semantics as the brokers) | nothing: in-process |
//! | `queue-kafka` | `queue::KafkaBroker` (rdkafka, bundled librdkafka; idempotent `acks=all` producer, commits only settled offsets) | Kafka 2.8+ or compatible (Tansu, Redpanda) |
//! | `queue-rabbitmq` | `queue::RabbitMqBroker` (lapin; publisher confirms, durable queues, automatic connection recovery) | RabbitMQ 3.x |
//! | `queue-rabbitmq-tls` | `amqps://` for `RabbitMqBroker` (rustls, ring) | RabbitMQ with TLS |
//! | `queue-nats` | `queue::NatsBroker` (async-nats; JetStream streams and durable pull consumers, or fire-and-forget core NATS) | NATS 2.9+ with JetStream |
//! | `queue-dedupe-redis` | `queue::RedisDedupe`: consumers' window of handled message ids in Redis ([`Consumer::dedupe`](queue::Consumer::dedupe), effectively-once processing) | Redis 6+ |
//! | `queue` | every queue backend | |
//! | `storage-memory` *(default)*, `storage-local` *(default)* | `storage`: `ObjectPath` keys, `Storage` handle (put/get/ranges/head/delete/list/list_with_delimiter/copy/rename, conditional puts and gets, streaming get, streaming put with multipart, presigned URLs, retries with attempt timeout and deadline, prefix scoping, `from_env`), `MemoryStorage`, `LocalStorage` | nothing / a directory |
//! | `storage-s3` | `storage::S3Storage` (aws-sdk-s3; ETag versions, conditional puts, multipart, SigV4 presigning) | S3 and S3-compatible stores |
//! | `storage-gcs` | `storage::GcsStorage` (gcloud-storage JSON API; generations, resumable uploads, V4 presigning) | Google Cloud Storage |
//! | `storage-azure` | `storage::AzureStorage` (azure_storage_blob; account key, SAS, connection string or Entra ID; staged blocks, SAS presigning) | Azure Blob Storage |
//! | `storage` | every storage backend | |
//! | `email-memory` *(default)* | `email`: `Email` builder, `Mailer` (retries, failover), `MemoryTransport` outbox and `FileTransport` (`.eml`) | nothing: in-process |
//! | `email-smtp` | `email::SmtpTransport` (lettre; own pool with TCP_NODELAY, STARTTLS, implicit TLS, PLAIN/LOGIN) | any SMTP server |
//! | `email-sendgrid` | `email::SendGridTransport` (reqwest, v3 `mail/send`) | SendGrid |
//! | `email-ses` | `email::SesTransport` (aws-sdk-sesv2, raw MIME, AWS credential chain) | Amazon SES |
//! | `email-templates` | `email::Templates` (Tera: subject, HTML, text; layouts; auto-escaping) | |
//! | `email-queue` | `email::EmailQueue`: enqueue emails on a `queue` topic, a worker sends them | the queue's broker |
//! | `email` | every email transport, templates and the queue integration | |
//! | `observability` | `observability`: OpenTelemetry traces and metrics over OTLP (HTTP or gRPC) or console from the standard `OTEL_*` variables, `tracing` layer stack, flush-on-drop guard, export counters, HTTP propagation; plugs into [`instrument`], so every enabled module's calls are measured and queue messages carry trace context | an OTLP collector |
//! | `scheduler` | `scheduler`: cron (5/6 fields, aliases, time zones, DST-correct), fluent intervals, one-shots, overlap/misfire policies, panic isolation, graceful shutdown, in-process background jobs with retries | nothing: in-process |
//! | `scheduler-redis` | `scheduler::RedisTickLock` (`single_instance` jobs run once per tick across a fleet) and `scheduler::RedisJobStore` (durable background jobs shared by instances, behind `scheduler::JobQueue`) | Redis |
//! | `testing` | public conformance suites for third-party backends: `cache::conformance`, `queue::conformance`, `storage::conformance`, `email::conformance`, `scheduler::conformance` (see [below](#writing-your-own-backend)) | |
//! | `full` | every module and backend | |
//!
//! Modules land one at a time; this table lists what exists in this version. The
//! [`CHANGELOG`](https://github.com/corekit-rs/corekit/blob/main/CHANGELOG.md) says what each
//! release added.
//!
//! ## Errors
//!
//! Every fallible call returns [`Error`]. Match on [`Error::kind`] ([`ErrorKind::NotFound`],
//! [`ErrorKind::Timeout`], ...) and use [`Error::is_retryable`] to decide whether to try again.
//!
//! ## Configuration
//!
//! Each module's config struct implements [`config::EnvConfig`]: `from_env()` reads variables
//! under the module's prefix, `from_env_prefixed()` under another one, and invalid values fail
//! at startup naming the variable, the value and what was expected. Secrets are
//! [`config::Secret`] and never printed.
//!
//! ## Writing your own backend
//!
//! Each module's backend trait is public, so a backend can live in another crate: a
//! [`CacheStore`](cache::CacheStore), a queue [`Broker`](queue::Broker), a storage
//! [`Backend`](storage::Backend), an email [`Transport`](email::Transport) or a
//! scheduler [`JobStore`](scheduler::JobStore). What every backend must do is written once, as
//! public async functions behind the `testing` feature, and corekit's own backends run the same
//! functions in their tests. A backend is done when its module's `run_all` passes:
//!
//! | module | suite | takes |
//! |---|---|---|
//! | cache | [`cache::conformance`] | the store, and whether it keeps expired entries until purged |
//! | queue | [`queue::conformance`] | a [`Queue`](queue::Queue) over the broker |
//! | storage | [`storage::conformance`] | a [`Storage`](storage::Storage) over the store, a key prefix, and an HTTP client for presigned URLs |
//! | email | [`email::conformance`] | the transport, and an *inbox* that fetches what it delivered |
//! | scheduler | [`scheduler::conformance`] | the job store |
//!
//! Each check panics with a message naming what broke, and uses names (keys, topics,
//! prefixes, subjects) no other call uses, so checks can share one server and run at once.
//! Call them one by one, one test each, to see in the test report which behaviour fails.
//!
//! Enable the feature for your tests only:
//!
//! ```toml
//! [dev-dependencies]
//! corekit-backend = { version = "0.1", features = ["cache-memory", "testing"] }
//! ```
//!
//! Then, say for a cache store in your crate (`MyStore`, implementing
//! [`CacheStore`](cache::CacheStore) and `Clone`):
//!
//! ```no_run
//! # #[cfg(all(feature = "cache-memory", feature = "testing"))]
//! # mod example {
//! # use corekit::cache::MemoryStore as MyStore;
//! use corekit::cache::conformance;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn my_store_conforms() {
//!     let store = MyStore::new(10_000);
//!     // `true`: the store keeps expired entries until `delete_expired` purges them;
//!     // a store whose server expires keys itself (as Redis does) passes `false`.
//!     conformance::run_all(store, true).await;
//! }
//!
//! // Or one test per check, so the report names the behaviour that broke:
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn my_store_counters() {
//!     conformance::counters(MyStore::new(10_000)).await;
//! }
//! # }
//! # fn main() {}
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

pub mod config;
pub mod error;
pub mod instrument;
#[cfg(any(
    feature = "cache-redis",
    feature = "scheduler-redis",
    feature = "queue-dedupe-redis"
))]
mod redis;
pub mod retry;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use error::{BoxError, Error, ErrorKind, Result};

/// Items that need the Tokio runtime, which every module but the core brings.
macro_rules! with_runtime {
    ($($item:item)*) => {$(
        #[cfg(any(
            feature = "_cache",
            feature = "_queue",
            feature = "_storage",
            feature = "_email",
            feature = "observability",
            feature = "scheduler"
        ))]
        $item
    )*};
}

with_runtime! {
    pub mod health;
    mod shutdown;
    pub use shutdown::shutdown_signal;
}

#[cfg(any(feature = "cache-memory", feature = "cache-redis"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "cache-memory", feature = "cache-redis")))
)]
pub mod cache;

#[cfg(any(
    feature = "queue-memory",
    feature = "queue-kafka",
    feature = "queue-rabbitmq",
    feature = "queue-nats",
    feature = "queue-dedupe-redis"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "queue-memory",
        feature = "queue-kafka",
        feature = "queue-rabbitmq",
        feature = "queue-nats",
        feature = "queue-dedupe-redis"
    )))
)]
pub mod queue;

#[cfg(feature = "_storage")]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "storage-memory",
        feature = "storage-local",
        feature = "storage-s3",
        feature = "storage-gcs",
        feature = "storage-azure"
    )))
)]
pub mod storage;

#[cfg(feature = "_email")]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "email-memory",
        feature = "email-smtp",
        feature = "email-sendgrid",
        feature = "email-ses",
        feature = "email-templates"
    )))
)]
pub mod email;

#[cfg(feature = "observability")]
#[cfg_attr(docsrs, doc(cfg(feature = "observability")))]
pub mod observability;

#[cfg(feature = "scheduler")]
#[cfg_attr(docsrs, doc(cfg(feature = "scheduler")))]
pub mod scheduler;
