//! The handle: [`Telemetry`], its builder, the [`Guard`] that flushes on exit, and [`init`].

use super::collector::Collector;
use super::export;
use super::metrics::ModuleMetrics;
use super::propagation::{OtelPropagator, make_propagator};
use super::{ExportStats, ObservabilityConfig};
use crate::config::EnvConfig;
use crate::{Error, Result};
use opentelemetry::metrics::Meter;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// How logs (and spans, as log lines) are printed. The default is [`Pretty`](Self::Pretty)
/// when stdout is a terminal and [`Json`](Self::Json) otherwise (a container, a pipe, a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Multi-line, human-friendly (development); colours only on a terminal.
    Pretty,
    /// One line per event.
    Compact,
    /// One JSON object per event, with the current span (production).
    Json,
    /// No log output; spans still export.
    None,
}

impl Default for LogFormat {
    fn default() -> Self {
        use std::io::IsTerminal as _;
        if std::io::stdout().is_terminal() {
            Self::Pretty
        } else {
            Self::Json
        }
    }
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

/// Builds [`Telemetry`]: from [`Telemetry::builder`] (defaults), [`Telemetry::builder_from`]
/// (a loaded config) or [`Telemetry::builder_from_env`] (the environment).
///
/// ```
/// use corekit::observability::{LogFormat, Telemetry};
/// let telemetry = Telemetry::builder()
///     .service_name("checkout")
///     .log_format(LogFormat::Json)
///     .filter("info,corekit=debug")
///     .build()?;
/// assert_eq!(telemetry.backend_name(), "otlp-http");
/// # Ok::<(), corekit::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ObservabilityBuilder {
    config: ObservabilityConfig,
    log_format: LogFormat,
    filter: String,
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

    /// Validates the config and builds the providers and the `tracing` subscriber, without
    /// installing anything globally (tests use [`Telemetry::dispatch`] with
    /// `tracing::dispatcher::set_default`). Nothing connects yet: exporters connect on their
    /// first export, and [`Telemetry::ping`] checks the collector.
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the `OTEL_*` variable of a bad setting, for
    /// an exporter that cannot be built, or a bad filter (`RUST_LOG`).
    pub fn build(self) -> Result<Telemetry> {
        let c = &self.config;
        c.validate().map_err(|issue| {
            issue.into_error(ObservabilityConfig::PREFIX, ObservabilityConfig::SECRETS)
        })?;
        let collector = Collector::new(c)?;
        let stats = Arc::new(ExportStats::default());
        let resource = export::resource(c)?;
        let tracer = export::tracer_provider(c, resource.clone(), &stats)?;
        let meter = export::meter_provider(c, resource, &stats)?;
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .map_err(|e| Error::config(format!("RUST_LOG={:?}: {e}", self.filter)))?;
        // Escape codes only where a terminal will read them.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let fmt = match self.log_format {
            LogFormat::Pretty => Some(
                tracing_subscriber::fmt::layer()
                    .pretty()
                    .with_ansi(ansi)
                    .boxed(),
            ),
            LogFormat::Compact => Some(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_ansi(ansi)
                    .boxed(),
            ),
            LogFormat::Json => Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
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
        let dispatch = tracing::Dispatch::new(subscriber);
        if let Some(logs) = c.logs_exporter.as_deref().filter(|v| *v != "none") {
            // Said through the logs being set up, so it lands where the user looks.
            tracing::dispatcher::with_default(&dispatch, || {
                tracing::warn!(
                    "OTEL_LOGS_EXPORTER={logs:?} is not supported: logs are written to stdout \
                     (LOG_FORMAT) and not exported; unset it or set it to none"
                );
            });
        }
        Ok(Telemetry {
            tracer,
            meter,
            dispatch,
            stats,
            propagators: self.config.propagators.clone(),
            collector,
            closed: AtomicBool::new(false),
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

/// Traces, metrics and logs, set up; [`install`](Telemetry::install) makes them global and
/// returns the [`Guard`] that flushes them on exit.
///
/// Made like every corekit handle: [`from_env`](Self::from_env),
/// [`from_config`](Self::from_config) or [`builder`](Self::builder), all validating;
/// [`ping`](Self::ping) checks the collector, [`backend_name`](Self::backend_name) names the
/// exporter, [`close`](Self::close) flushes and shuts down.
///
/// ```no_run
/// # async fn run() -> corekit::Result<()> {
/// use corekit::observability::Telemetry;
/// let telemetry = Telemetry::from_env()?; // OTEL_*, RUST_LOG, LOG_FORMAT; validated
/// telemetry.ping().await?; // the collector accepts connections
/// let guard = telemetry.install()?; // global now; flushes and closes when dropped
/// # drop(guard);
/// # Ok(()) }
/// ```
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    dispatch: tracing::Dispatch,
    stats: Arc<ExportStats>,
    propagators: String,
    collector: Collector,
    closed: AtomicBool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("backend", &self.collector.backend_name())
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Telemetry {
    /// A builder with the defaults (no variables read).
    pub fn builder() -> ObservabilityBuilder {
        Self::builder_from(ObservabilityConfig::default())
    }

    /// A builder from a loaded config, to change a setting or two before
    /// [`build`](ObservabilityBuilder::build).
    pub fn builder_from(config: ObservabilityConfig) -> ObservabilityBuilder {
        ObservabilityBuilder {
            config,
            log_format: LogFormat::default(),
            filter: "info".into(),
        }
    }

    /// A builder from `OTEL_*`, `RUST_LOG` and `LOG_FORMAT`, to change a setting or two before
    /// [`build`](ObservabilityBuilder::build).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the variable.
    pub fn builder_from_env() -> Result<ObservabilityBuilder> {
        let mut b = Self::builder_from(ObservabilityConfig::from_env()?);
        if let Ok(filter) = std::env::var("RUST_LOG") {
            b = b.filter(filter);
        }
        if let Ok(format) = std::env::var("LOG_FORMAT") {
            b = b.log_format(format.parse()?);
        }
        Ok(b)
    }

    /// Telemetry from `OTEL_*`, `RUST_LOG` and `LOG_FORMAT` (see the [module docs](super)),
    /// validated and built; [`install`](Self::install) makes it global.
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the variable that is wrong.
    pub fn from_env() -> Result<Self> {
        Self::builder_from_env()?.build()
    }

    /// Telemetry from a loaded config, validated like the environment. Logs use the builder's
    /// defaults (pretty, filter `info`): `RUST_LOG` and `LOG_FORMAT` are read only by
    /// [`from_env`](Self::from_env).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the `OTEL_*` variable of a bad setting.
    pub fn from_config(config: &ObservabilityConfig) -> Result<Self> {
        Self::builder_from(config.clone()).build()
    }

    /// Checks that the OTLP collector accepts connections: a TCP connect to the host and port of
    /// the traces endpoint and of the metrics endpoint (once when they are the same), all
    /// within `OTEL_EXPORTER_OTLP_TIMEOUT`. It sends no telemetry and no headers.
    ///
    /// With no OTLP exporter (`OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER` and
    /// `OTEL_METRICS_EXPORTER` both `console` or `none`) there is nothing to reach, and it
    /// answers `Ok`. Must be awaited inside a Tokio runtime; dropping the future stops the
    /// wait (a connect already started ends on its own within the timeout).
    ///
    /// # Errors
    /// [`Unavailable`](crate::ErrorKind::Unavailable) (retryable) naming the endpoint that
    /// refused, timed out or did not resolve.
    pub async fn ping(&self) -> Result<()> {
        self.collector.ping().await
    }

    /// What the config exports to: `"otlp-http"`, `"otlp-grpc"`, `"otlp"` (traces and metrics
    /// over different protocols), `"console"` (stdout only) or `"none"` (no exporter).
    pub fn backend_name(&self) -> &'static str {
        self.collector.backend_name()
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
        export::off_thread(move || {
            let t = tracer.map(|p| p.force_flush()).transpose();
            let m = meter.map(|p| p.force_flush()).transpose();
            t.and(m).map(drop)
        })
    }

    /// Flushes what is buffered and shuts the exporters down; later spans and metrics are not
    /// exported. Blocks until the last export ends (bounded by the export timeout). Closing
    /// again does nothing.
    ///
    /// # Errors
    /// [`Unavailable`](crate::ErrorKind::Unavailable) when an exporter failed to flush.
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let (tracer, meter) = (self.tracer.clone(), self.meter.clone());
        export::off_thread(move || {
            let t = tracer.map(|p| p.shutdown()).transpose();
            let m = meter.map(|p| p.shutdown()).transpose();
            t.and(m).map(drop)
        })
    }

    /// The former name of [`close`](Self::close).
    ///
    /// # Errors
    /// As `close`.
    #[deprecated(since = "0.1.0", note = "renamed `close`")]
    pub fn shutdown(&self) -> Result<()> {
        self.close()
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

/// Keeps telemetry installed; dropping it (or [`shutdown`](Guard::shutdown)) flushes every
/// span and metric and shuts the exporters down, so nothing is lost on exit.
///
/// ```no_run
/// let guard = corekit::observability::init()?;
/// // ... the service runs ...
/// guard.shutdown()?; // or let it drop: failures are then only printed
/// # Ok::<(), corekit::Error>(())
/// ```
#[derive(Debug)]
pub struct Guard {
    telemetry: Option<Telemetry>,
}

impl Guard {
    /// The telemetry.
    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_ref()
    }

    /// [`Telemetry::close`]s now, reporting failures (drop only prints them).
    ///
    /// # Errors
    /// When an exporter failed to flush.
    pub fn shutdown(mut self) -> Result<()> {
        match self.telemetry.take() {
            Some(t) => t.close(),
            None => Ok(()),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(t) = self.telemetry.take()
            && let Err(e) = t.close()
        {
            eprintln!("corekit observability: close: {e}");
        }
    }
}

/// Sets up telemetry from the environment and installs it globally; keep the guard alive for
/// the life of the process. The same as `Telemetry::from_env()?.install()`.
///
/// # Errors
/// [`Config`](crate::ErrorKind::Config) naming the variable that is wrong, or when a global
/// subscriber is already set.
pub fn init() -> Result<Guard> {
    Telemetry::from_env()?.install()
}
