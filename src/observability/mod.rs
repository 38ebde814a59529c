//! One-call OpenTelemetry: traces and metrics over OTLP, configured by the standard `OTEL_*`
//! variables, with `tracing` spans as OpenTelemetry spans and a guard that flushes on exit.
//!
//! ```no_run
//! # async fn run() -> corekit::Result<()> {
//! let _telemetry = corekit::observability::init()?; // flushes and shuts down when dropped
//! let orders = corekit::observability::counter("orders.placed");
//! let span = tracing::info_span!("place_order", order.id = 7);
//! let _entered = span.enter();
//! orders.add(1, &[]);
//! tracing::info!(trace_id = ?corekit::observability::current_trace_id(), "placed");
//! # Ok(()) }
//! ```
//!
//! # The handle
//!
//! [`init`] is `Telemetry::from_env()?.install()`. [`Telemetry`] is made like every corekit
//! handle, so a service can check the collector at start-up or change a setting first:
//!
//! ```no_run
//! # async fn run() -> corekit::Result<()> {
//! use corekit::observability::{LogFormat, Telemetry};
//! // Or Telemetry::from_env()?, Telemetry::from_config(&config)?, Telemetry::builder().
//! let telemetry = Telemetry::builder_from_env()?
//!     .log_format(LogFormat::Json)
//!     .build()?; // validated; nothing connects yet
//! telemetry.ping().await?; // the OTLP collector accepts connections
//! tracing::info!(exporter = telemetry.backend_name(), "telemetry ready");
//! let guard = telemetry.install()?; // global; flushes and closes when dropped
//! # drop(guard);
//! # Ok(()) }
//! ```
//!
//! # Configuration
//!
//! [`init`] and [`Telemetry::from_env`] read [`ObservabilityConfig`] from the variables of the
//! OpenTelemetry SDK specification, plus `RUST_LOG` (filter) and `LOG_FORMAT` for the log
//! output:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OTEL_SERVICE_NAME` | executable name | `service.name` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | *(none)* | `key=value,...` resource attributes (values percent-decoded) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `http://localhost:4318` (`:4317` for grpc) | base endpoint; `/v1/traces`, `/v1/metrics` appended for HTTP |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._METRICS_ENDPOINT` | *(from the base)* | per-signal endpoint, used as given |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` | or `grpc` |
//! | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` | the one above | one signal's own protocol |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | *(none)* | `key=value,...` sent with every export (secret: never printed) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` | `10000` | export timeout, milliseconds |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION` | `none` | or `gzip` |
//! | `OTEL_TRACES_SAMPLER` | `parentbased_always_on` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` |
//! | `OTEL_TRACES_SAMPLER_ARG` | `1.0` | the ratio for `*traceidratio` |
//! | `OTEL_TRACES_EXPORTER` | `otlp` | `otlp`, `console` (stdout) or `none` |
//! | `OTEL_METRICS_EXPORTER` | `otlp` | `otlp`, `console` or `none` |
//! | `OTEL_LOGS_EXPORTER` | *(none)* | only `none`: logs go to stdout; any other value is reported at start-up (`warn`) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | `60000` | metric export interval, milliseconds |
//! | `OTEL_BSP_SCHEDULE_DELAY` | `5000` | span batch delay, milliseconds |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | `2048` | spans waiting for export; beyond it spans are dropped (counted), never waited for |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | `512` | spans per export |
//! | `OTEL_BSP_EXPORT_TIMEOUT` | `30000` | validated; the SDK's thread-based batch processor bounds exports with the exporter timeout |
//! | `OTEL_PROPAGATORS` | `tracecontext,baggage` | W3C trace context and baggage (or `none`) |
//! | `OTEL_SDK_DISABLED` | `false` | `true`: no exporter at all (logs still work) |
//! | `RUST_LOG` | `info` | `tracing` filter for logs and spans |
//! | `LOG_FORMAT` | `pretty` on a terminal, else `json` | `pretty`, `compact`, `json` or `none`; colours only on a terminal |
//!
//! # What corekit's modules emit
//!
//! Every backend call of every module runs in a `tracing` span (level `DEBUG`, so
//! `RUST_LOG=corekit=debug` shows them) named after its module, with `otel.name` the operation:
//!
//! | span | `otel.name` | attributes |
//! |---|---|---|
//! | `cache` | `get`, `set`, `delete`, ... | `db.system` (`memory`, `redis`), `db.operation` |
//! | `queue` | `publish`, `publish_batch`, `subscribe`, `ensure_topic`, ... | `messaging.system`, `messaging.destination.name`, `messaging.operation` |
//! | `queue` (`INFO`) | `process` (each handler run by `Consumer`) | `messaging.system`, `messaging.destination.name`, `messaging.consumer.group.name`, `messaging.message.id`, `attempt` |
//! | `email` (`INFO`) | `send` (each attempt) | `email.transport`, `email.recipients`, `attempt` |
//! | `storage` | `put`, `get`, `list`, `put_stream`, ... (retries included) | `storage.system`, `storage.key` |
//!
//! The spans come from the crate's one instrumentation layer, [`crate::instrument`];
//! [`Telemetry::install`] plugs this module into its hooks. `Queue::publish` then writes the
//! current W3C trace context into the message headers (inside the `publish` span, after the
//! message is validated) and `Consumer` continues it, so a consumer's spans join the publisher's
//! trace. [`inject`] and [`extract`] do the same for any other
//! [`Carrier`](crate::instrument::Carrier).
//!
//! # Standard metrics, no code
//!
//! Once [`install`](Telemetry::install)ed (as [`init`] does), every backend call of every
//! enabled module is measured; no extra feature is needed:
//!
//! | module | histogram (seconds) | error counter | attributes |
//! |---|---|---|---|
//! | cache | `db.client.operation.duration` | `corekit.db.errors` | `db.system`, `db.operation.name` |
//! | queue | `messaging.client.operation.duration` | `corekit.messaging.errors` | `messaging.system`, `messaging.operation.name` |
//! | storage | `corekit.storage.operation.duration` | `corekit.storage.errors` | `storage.system`, `storage.operation.name` |
//! | email | `corekit.email.send.duration` (each attempt) | `corekit.email.errors` | `email.system`, `email.operation.name` |
//! | scheduler | `corekit.scheduler.operation.duration` | `corekit.scheduler.errors` | `scheduler.system`, `scheduler.operation.name` |
//!
//! Errors carry `error.type`, the [`ErrorKind`](crate::ErrorKind). Gets and sets the memory
//! store (or the two-tier store's near tier, for hits) answers in process are not measured:
//! they make no backend call (they are counted in `CacheStats`).
//!
//! # Export problems
//!
//! Spans go to a bounded queue exported by the SDK's own thread: a collector that is down or slow
//! never blocks instrumented code; spans beyond the queue are dropped. [`Telemetry::stats`] counts
//! spans ended, exported, and in failed exports, and failed metric exports; each failure is also
//! logged (target `corekit::observability`).

mod collector;
mod config;
mod export;
mod metrics;
mod propagation;
mod spans;
mod stats;
mod telemetry;

pub use config::ObservabilityConfig;
pub use metrics::{counter, gauge, histogram, up_down_counter};
/// A metric attribute (`KeyValue::new("route", "/orders")`), as the instruments take it.
pub use opentelemetry::KeyValue;
pub use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};
pub use propagation::{OtelPropagator, extract, extract_http, inject, inject_http};
pub use spans::{SpanGuard, current_trace_id, start_span};
pub use stats::ExportStats;
pub use telemetry::{Guard, LogFormat, ObservabilityBuilder, Telemetry, init};
/// The OpenTelemetry crates corekit is built on, at the versions it pins: use these paths so
/// your own instruments, propagators or exporters match corekit's.
#[doc(no_inline)]
pub use {opentelemetry, opentelemetry_otlp, opentelemetry_sdk, tracing_opentelemetry};
