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
//! # Configuration
//!
//! [`init`] reads [`ObservabilityConfig`] from the variables of the OpenTelemetry SDK
//! specification, plus `RUST_LOG` (filter) and `LOG_FORMAT` for the log output:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OTEL_SERVICE_NAME` | executable name | `service.name` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | *(none)* | `key=value,...` resource attributes (values percent-decoded) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | `http://localhost:4318` (`:4317` for grpc) | base endpoint; `/v1/traces`, `/v1/metrics` appended for HTTP |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._METRICS_ENDPOINT` | *(from the base)* | per-signal endpoint, used as given |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` | or `grpc` |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | *(none)* | `key=value,...` sent with every export (secret: never printed) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` | `10000` | export timeout, milliseconds |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION` | `none` | or `gzip` |
//! | `OTEL_TRACES_SAMPLER` | `parentbased_always_on` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` |
//! | `OTEL_TRACES_SAMPLER_ARG` | `1.0` | the ratio for `*traceidratio` |
//! | `OTEL_TRACES_EXPORTER` | `otlp` | `otlp`, `console` (stdout) or `none` |
//! | `OTEL_METRICS_EXPORTER` | `otlp` | `otlp`, `console` or `none` |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | `60000` | metric export interval, milliseconds |
//! | `OTEL_BSP_SCHEDULE_DELAY` | `5000` | span batch delay, milliseconds |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | `2048` | spans waiting for export; beyond it spans are dropped (counted), never waited for |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | `512` | spans per export |
//! | `OTEL_BSP_EXPORT_TIMEOUT` | `30000` | validated; the SDK's thread-based batch processor bounds exports with the exporter timeout |
//! | `OTEL_PROPAGATORS` | `tracecontext,baggage` | W3C trace context and baggage (or `none`) |
//! | `OTEL_SDK_DISABLED` | `false` | `true`: no exporter at all (logs still work) |
//! | `RUST_LOG` | `info` | `tracing` filter for logs and spans |
//! | `LOG_FORMAT` | `pretty` | `pretty`, `compact`, `json` or `none` |
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
//! Errors carry `error.type`, the [`ErrorKind`](crate::ErrorKind). Memory-cache hits are not
//! measured (they answer without a backend call).
//!
//! # Export problems
//!
//! Spans go to a bounded queue exported by the SDK's own thread: a collector that is down or slow
//! never blocks instrumented code; spans beyond the queue are dropped. [`Telemetry::stats`] counts
//! spans ended, exported, and in failed exports, and failed metric exports; each failure is also
//! logged (target `corekit::observability`).

mod config;
mod stats;

pub use config::ObservabilityConfig;
pub use stats::ExportStats;

use crate::config::EnvConfig;
use crate::{Error, Result};
use opentelemetry::KeyValue;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use std::sync::Arc;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

pub use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};

/// How logs (and spans, as log lines) are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Multi-line, human-friendly (development).
    #[default]
    Pretty,
    /// One line per event.
    Compact,
    /// One JSON object per event, with the current span (production).
    Json,
    /// No log output; spans still export.
    None,
}

impl std::str::FromStr for LogFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "compact" => Ok(Self::Compact),
            "json" => Ok(Self::Json),
            "none" => Ok(Self::None),
            other => Err(Error::config(format!(
                "LOG_FORMAT={other:?}: expected pretty, compact, json or none"
            ))),
        }
    }
}

/// Builds [`Telemetry`]; from [`Telemetry::builder`] or [`Telemetry::from_env`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ObservabilityBuilder {
    config: ObservabilityConfig,
    log_format: LogFormat,
    filter: String,
}

/// Traces, metrics and logs, set up; [`install`](Telemetry::install) makes them global and
/// returns the [`Guard`] that flushes them on exit.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    dispatch: tracing::Dispatch,
    stats: Arc<ExportStats>,
    propagators: String,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

fn sampler(c: &ObservabilityConfig) -> Sampler {
    let ratio = c.ratio();
    let base = match c.traces_sampler.as_str() {
        "always_off" | "parentbased_always_off" => Sampler::AlwaysOff,
        "traceidratio" | "parentbased_traceidratio" => Sampler::TraceIdRatioBased(ratio),
        _ => Sampler::AlwaysOn,
    };
    if c.traces_sampler.starts_with("parentbased_") {
        Sampler::ParentBased(Box::new(base))
    } else {
        base
    }
}

fn resource(c: &ObservabilityConfig) -> Result<Resource> {
    let attributes = config::parse_pairs(&c.resource_attributes)
        .map_err(|e| Error::config(format!("OTEL_RESOURCE_ATTRIBUTES: {e}")))?;
    let service = c
        .service_name
        .clone()
        .or_else(|| {
            attributes
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .map_or_else(
                    || "unknown_service".to_owned(),
                    |n| format!("unknown_service:{n}"),
                )
        });
    Ok(Resource::builder_empty()
        .with_attributes(attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .with_service_name(service)
        .with_attribute(KeyValue::new("telemetry.sdk.language", "rust"))
        .with_attribute(KeyValue::new("telemetry.sdk.name", "opentelemetry"))
        .build())
}

fn exporter_error(signal: &str, e: impl std::fmt::Display) -> Error {
    Error::config(format!("OTLP {signal} exporter: {e}"))
}

impl ObservabilityBuilder {
    /// Logs as `format`.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// The `tracing` filter (`RUST_LOG` syntax), e.g. `info,corekit=debug`.
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = directives.into();
        self
    }

    /// The service name (overrides `OTEL_SERVICE_NAME`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = Some(name.into());
        self
    }

    /// The config the rest comes from.
    pub fn config(&self) -> &ObservabilityConfig {
        &self.config
    }

    fn headers(&self) -> Result<std::collections::HashMap<String, String>> {
        Ok(
            config::parse_pairs(self.config.exporter_otlp_headers.expose())
                .map_err(|_| Error::config("OTEL_EXPORTER_OTLP_HEADERS: expected key=value,..."))?
                .into_iter()
                .collect(),
        )
    }

    fn grpc_metadata(&self) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap> {
        let mut headers = http::HeaderMap::new();
        for (k, v) in self.headers()? {
            let key = http::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| exporter_error("OTLP", format!("header {k:?}: {e}")))?;
            let value = http::header::HeaderValue::from_str(&v)
                .map_err(|e| exporter_error("OTLP", format!("header {k:?} value: {e}")))?;
            headers.insert(key, value);
        }
        Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers))
    }

    fn span_exporter(&self) -> Result<opentelemetry_otlp::SpanExporter> {
        let c = &self.config;
        let gzip = c.exporter_otlp_compression == "gzip";
        if c.exporter_otlp_protocol == "grpc" {
            let metadata = self.grpc_metadata()?;
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(c.traces_endpoint())
                .with_timeout(c.exporter_otlp_timeout)
                .with_metadata(metadata);
            if gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.build().map_err(|e| exporter_error("traces", e))
        } else {
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(c.traces_endpoint())
                .with_timeout(c.exporter_otlp_timeout)
                .with_headers(self.headers()?);
            if gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.build().map_err(|e| exporter_error("traces", e))
        }
    }

    fn metric_exporter(&self) -> Result<opentelemetry_otlp::MetricExporter> {
        let c = &self.config;
        let gzip = c.exporter_otlp_compression == "gzip";
        if c.exporter_otlp_protocol == "grpc" {
            let mut b = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(c.metrics_endpoint())
                .with_timeout(c.exporter_otlp_timeout)
                .with_metadata(self.grpc_metadata()?);
            if gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.build().map_err(|e| exporter_error("metrics", e))
        } else {
            let mut b = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_endpoint(c.metrics_endpoint())
                .with_timeout(c.exporter_otlp_timeout)
                .with_headers(self.headers()?);
            if gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.build().map_err(|e| exporter_error("metrics", e))
        }
    }

    /// Builds the providers and the `tracing` subscriber without installing anything globally
    /// (tests use [`Telemetry::dispatch`] with `tracing::dispatcher::set_default`).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) for an exporter that cannot be built or a bad filter.
    pub fn build(self) -> Result<Telemetry> {
        let c = &self.config;
        let stats = Arc::new(ExportStats::default());
        let resource = resource(c)?;
        let tracer = if c.sdk_disabled || c.traces_exporter == "none" {
            None
        } else {
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(c.bsp_max_queue_size)
                .with_max_export_batch_size(c.bsp_max_export_batch_size)
                .with_scheduled_delay(c.bsp_schedule_delay)
                .build();
            let processor = if c.traces_exporter == "console" {
                BatchSpanProcessor::builder(stats::CountedSpans::new(
                    opentelemetry_stdout::SpanExporter::default(),
                    stats.clone(),
                ))
                .with_batch_config(batch)
                .build()
            } else {
                BatchSpanProcessor::builder(stats::CountedSpans::new(
                    self.span_exporter()?,
                    stats.clone(),
                ))
                .with_batch_config(batch)
                .build()
            };
            Some(
                SdkTracerProvider::builder()
                    .with_span_processor(stats::Ending::new(processor, stats.clone()))
                    .with_sampler(sampler(c))
                    .with_resource(resource.clone())
                    .build(),
            )
        };
        let meter = if c.sdk_disabled || c.metrics_exporter == "none" {
            None
        } else {
            let builder = SdkMeterProvider::builder().with_resource(resource);
            let builder = if c.metrics_exporter == "console" {
                builder.with_reader(
                    PeriodicReader::builder(stats::CountedMetrics::new(
                        opentelemetry_stdout::MetricExporter::default(),
                        stats.clone(),
                    ))
                    .with_interval(c.metric_export_interval)
                    .build(),
                )
            } else {
                builder.with_reader(
                    PeriodicReader::builder(stats::CountedMetrics::new(
                        self.metric_exporter()?,
                        stats.clone(),
                    ))
                    .with_interval(c.metric_export_interval)
                    .build(),
                )
            };
            Some(builder.build())
        };
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .map_err(|e| Error::config(format!("RUST_LOG={:?}: {e}", self.filter)))?;
        let fmt = match self.log_format {
            LogFormat::Pretty => Some(tracing_subscriber::fmt::layer().pretty().boxed()),
            LogFormat::Compact => Some(tracing_subscriber::fmt::layer().compact().boxed()),
            LogFormat::Json => Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .boxed(),
            ),
            LogFormat::None => None,
        };
        let otel = tracer
            .as_ref()
            .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("corekit")));
        let subscriber = tracing_subscriber::registry()
            .with(fmt)
            .with(otel)
            .with(filter);
        Ok(Telemetry {
            tracer,
            meter,
            dispatch: tracing::Dispatch::new(subscriber),
            stats,
            propagators: self.config.propagators.clone(),
        })
    }

    /// [`build`](Self::build), then [`install`](Telemetry::install).
    ///
    /// # Errors
    /// As `build`, and when a global `tracing` subscriber is already set.
    pub fn init(self) -> Result<Guard> {
        self.build()?.install()
    }
}

impl Telemetry {
    /// A builder with the defaults (no variables read).
    pub fn builder() -> ObservabilityBuilder {
        Self::builder_from(ObservabilityConfig::default())
    }

    /// A builder from a loaded config.
    pub fn builder_from(config: ObservabilityConfig) -> ObservabilityBuilder {
        ObservabilityBuilder {
            config,
            log_format: LogFormat::default(),
            filter: "info".into(),
        }
    }

    /// A builder from `OTEL_*`, `RUST_LOG` and `LOG_FORMAT`.
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the variable.
    pub fn from_env() -> Result<ObservabilityBuilder> {
        let mut b = Self::builder_from(ObservabilityConfig::from_env()?);
        if let Ok(filter) = std::env::var("RUST_LOG") {
            b = b.filter(filter);
        }
        if let Ok(format) = std::env::var("LOG_FORMAT") {
            b = b.log_format(format.parse()?);
        }
        Ok(b)
    }

    /// The `tracing` dispatcher (subscriber) this set up.
    pub fn dispatch(&self) -> &tracing::Dispatch {
        &self.dispatch
    }

    /// A meter of this telemetry's provider (a no-op meter when metrics are off).
    pub fn meter(&self, name: &'static str) -> Meter {
        use opentelemetry::metrics::MeterProvider as _;
        match &self.meter {
            Some(p) => p.meter(name),
            // A provider with no reader records nothing.
            None => SdkMeterProvider::builder().build().meter(name),
        }
    }

    /// Export counters.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Exports what is buffered now (spans and metrics); waits for it.
    ///
    /// # Errors
    /// When an exporter failed.
    pub fn flush(&self) -> Result<()> {
        let (tracer, meter) = (self.tracer.clone(), self.meter.clone());
        off_thread(move || {
            let t = tracer.map(|p| p.force_flush()).transpose();
            let m = meter.map(|p| p.force_flush()).transpose();
            t.and(m).map(drop)
        })
    }

    /// Flushes and shuts down the providers; later spans are not exported.
    ///
    /// # Errors
    /// When an exporter failed to flush.
    pub fn shutdown(&self) -> Result<()> {
        let (tracer, meter) = (self.tracer.clone(), self.meter.clone());
        off_thread(move || {
            let t = tracer.map(|p| p.shutdown()).transpose();
            let m = meter.map(|p| p.shutdown()).transpose();
            t.and(m).map(drop)
        })
    }

    /// A guard that flushes and shuts down on drop, without installing anything globally.
    pub fn into_guard(self) -> Guard {
        Guard {
            telemetry: Some(self),
        }
    }

    /// Makes this the global `tracing` subscriber, OpenTelemetry tracer and meter provider and
    /// propagator.
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) when a global subscriber was already set.
    pub fn install(self) -> Result<Guard> {
        tracing::dispatcher::set_global_default(self.dispatch.clone()).map_err(|e| {
            Error::config(format!("a global tracing subscriber is already set: {e}"))
        })?;
        if let Some(p) = &self.tracer {
            opentelemetry::global::set_tracer_provider(p.clone());
        }
        if let Some(p) = &self.meter {
            opentelemetry::global::set_meter_provider(p.clone());
            use opentelemetry::metrics::MeterProvider as _;
            // The first installed telemetry's meter keeps recording module calls.
            crate::instrument::set_recorder(Box::new(ModuleMetrics::new(&p.meter("corekit"))));
        }
        opentelemetry::global::set_text_map_propagator(make_propagator(&self.propagators));
        crate::instrument::set_propagator(Box::new(OtelPropagator));
        Ok(Guard {
            telemetry: Some(self),
        })
    }
}

fn make_propagator(names: &str) -> TextMapCompositePropagator {
    let mut list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    for p in names.split(',').map(str::trim) {
        match p {
            "tracecontext" => list.push(Box::new(TraceContextPropagator::new())),
            "baggage" => list.push(Box::new(BaggagePropagator::new())),
            _ => {}
        }
    }
    TextMapCompositePropagator::new(list)
}

/// Runs a provider call on a thread of its own: the SDK's shutdown waits for its export thread,
/// which can deadlock a single-threaded async runtime if done on it.
fn off_thread(
    f: impl FnOnce() -> std::result::Result<(), opentelemetry_sdk::error::OTelSdkError> + Send + 'static,
) -> Result<()> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| Error::new(crate::ErrorKind::Backend, "telemetry shutdown panicked"))?
        .map_err(|e| {
            Error::new(
                crate::ErrorKind::Unavailable,
                format!("telemetry export: {e}"),
            )
            .with_backend("otlp")
        })
}

/// Keeps telemetry installed; dropping it (or [`shutdown`](Guard::shutdown)) flushes every
/// span and metric and shuts the exporters down, so nothing is lost on exit.
#[derive(Debug)]
pub struct Guard {
    telemetry: Option<Telemetry>,
}

impl Guard {
    /// The telemetry.
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_ref()
    }

    /// Flushes and shuts down now, reporting failures (drop only logs them).
    ///
    /// # Errors
    /// When an exporter failed to flush.
    pub fn shutdown(mut self) -> Result<()> {
        match self.telemetry.take() {
            Some(t) => t.shutdown(),
            None => Ok(()),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(t) = self.telemetry.take()
            && let Err(e) = t.shutdown()
        {
            eprintln!("corekit observability: shutdown: {e}");
        }
    }
}

/// Sets up telemetry from the environment and installs it globally; keep the guard alive for
/// the life of the process.
///
/// # Errors
/// [`Config`](crate::ErrorKind::Config) naming the variable that is wrong, or when a global
/// subscriber is already set.
pub fn init() -> Result<Guard> {
    Telemetry::from_env()?.init()
}

/// The current span's trace id (32 hex digits), for error responses and logs; `None` outside a
/// sampled or unsampled OpenTelemetry span.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// A counter on the global meter `corekit` (installed by [`init`]).
pub fn counter(name: &'static str) -> Counter<u64> {
    opentelemetry::global::meter("corekit")
        .u64_counter(name)
        .build()
}

/// An up-down counter on the global meter.
pub fn up_down_counter(name: &'static str) -> UpDownCounter<i64> {
    opentelemetry::global::meter("corekit")
        .i64_up_down_counter(name)
        .build()
}

/// A histogram on the global meter.
pub fn histogram(name: &'static str) -> Histogram<f64> {
    opentelemetry::global::meter("corekit")
        .f64_histogram(name)
        .build()
}

/// A gauge on the global meter.
pub fn gauge(name: &'static str) -> Gauge<f64> {
    opentelemetry::global::meter("corekit")
        .f64_gauge(name)
        .build()
}

/// A span for code that does not use `tracing` macros (the brief's `StartSpan`/`EndSpan`):
/// entered until dropped or [`end`](SpanGuard::end)ed.
#[derive(Debug)]
pub struct SpanGuard {
    span: Option<tracing::span::EnteredSpan>,
}

impl SpanGuard {
    /// Adds an attribute.
    pub fn set_attribute(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(s) = &self.span {
            s.set_attribute(key, value);
        }
    }

    /// Marks the span as failed with `error`'s message.
    pub fn record_error(&self, error: &dyn std::error::Error) {
        if let Some(s) = &self.span {
            s.set_status(opentelemetry::trace::Status::error(error.to_string()));
        }
    }

    /// Ends the span.
    pub fn end(mut self) {
        self.span.take();
    }
}

/// Starts (and enters) an `INFO` span named `name` under the current one.
pub fn start_span(name: &'static str) -> SpanGuard {
    let span = tracing::info_span!("span", otel.name = name);
    SpanGuard {
        span: Some(span.entered()),
    }
}

struct HeaderMapInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderMapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::header::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Writes the current trace context (W3C `traceparent`, `tracestate`, `baggage`) into outgoing
/// HTTP headers, with the globally installed propagators.
pub fn inject_http(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut HeaderMapInjector(headers));
    });
}

/// Makes `span` a child of the trace context in incoming HTTP `headers` (call before entering
/// it).
pub fn extract_http(headers: &http::HeaderMap, span: &tracing::Span) {
    let cx = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    let _ = span.set_parent(cx);
}

/// The metrics every instrumented call of corekit's modules records into, made once from the
/// meter provider [`Telemetry::install`] installs: one histogram and error counter per module.
struct ModuleMetrics {
    instruments: Vec<(crate::instrument::Module, Histogram<f64>, Counter<u64>)>,
}

impl ModuleMetrics {
    fn new(meter: &Meter) -> Self {
        use crate::instrument::Module;
        let modules = [
            Module::Cache,
            Module::Queue,
            Module::Storage,
            Module::Email,
            Module::Scheduler,
        ];
        let instruments = modules
            .into_iter()
            .map(|m| {
                let (duration, errors, _, _) = metric_names(m);
                (
                    m,
                    meter.f64_histogram(duration).with_unit("s").build(),
                    meter.u64_counter(errors).build(),
                )
            })
            .collect();
        Self { instruments }
    }
}

/// The names a module's calls are recorded under: duration histogram, error counter, and the
/// attribute keys for the backend and the operation (OpenTelemetry's semantic conventions
/// where one exists).
fn metric_names(
    module: crate::instrument::Module,
) -> (&'static str, &'static str, &'static str, &'static str) {
    use crate::instrument::Module;
    match module {
        Module::Cache => (
            "db.client.operation.duration",
            "corekit.db.errors",
            "db.system",
            "db.operation.name",
        ),
        Module::Queue => (
            "messaging.client.operation.duration",
            "corekit.messaging.errors",
            "messaging.system",
            "messaging.operation.name",
        ),
        Module::Email => (
            "corekit.email.send.duration",
            "corekit.email.errors",
            "email.system",
            "email.operation.name",
        ),
        Module::Storage => (
            "corekit.storage.operation.duration",
            "corekit.storage.errors",
            "storage.system",
            "storage.operation.name",
        ),
        _ => (
            "corekit.scheduler.operation.duration",
            "corekit.scheduler.errors",
            "scheduler.system",
            "scheduler.operation.name",
        ),
    }
}

impl crate::instrument::Recorder for ModuleMetrics {
    fn record(
        &self,
        call: &crate::instrument::Call,
        elapsed: std::time::Duration,
        error: Option<&Error>,
    ) {
        let (_, _, system_key, op_key) = metric_names(call.module);
        let Some((_, duration, errors)) = self.instruments.iter().find(|i| i.0 == call.module)
        else {
            return;
        };
        let attrs = [
            KeyValue::new(system_key, call.system),
            KeyValue::new(op_key, call.operation),
        ];
        duration.record(elapsed.as_secs_f64(), &attrs);
        if let Some(e) = error {
            let [a, b] = attrs;
            errors.add(
                1,
                &[a, b, KeyValue::new("error.type", format!("{:?}", e.kind()))],
            );
        }
    }
}

/// Carries trace context through [`Carrier`](crate::instrument::Carrier)s (queue message
/// headers) with the globally installed OpenTelemetry propagator. [`Telemetry::install`]
/// installs it; a service that sets up `tracing` and OpenTelemetry itself installs it with
/// [`instrument::set_propagator`](crate::instrument::set_propagator).
#[derive(Debug, Clone, Copy, Default)]
pub struct OtelPropagator;

struct CarrierInjector<'a>(&'a mut dyn crate::instrument::Carrier);

impl Injector for CarrierInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set(key, value);
    }
}

struct CarrierExtractor<'a>(&'a dyn crate::instrument::Carrier);

impl Extractor for CarrierExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
}

impl crate::instrument::Propagator for OtelPropagator {
    fn inject(&self, carrier: &mut dyn crate::instrument::Carrier) {
        let cx = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut CarrierInjector(carrier));
        });
    }

    fn extract(&self, carrier: &dyn crate::instrument::Carrier, span: &tracing::Span) {
        let cx = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&CarrierExtractor(carrier))
        });
        let _ = span.set_parent(cx);
    }
}

/// Writes the current trace context into `carrier` (a queue message's headers, say).
pub fn inject(carrier: &mut dyn crate::instrument::Carrier) {
    crate::instrument::Propagator::inject(&OtelPropagator, carrier);
}

/// Makes `span` a child of the trace context `carrier` holds (call before entering it).
pub fn extract(carrier: &dyn crate::instrument::Carrier, span: &tracing::Span) {
    crate::instrument::Propagator::extract(&OtelPropagator, carrier, span);
}
