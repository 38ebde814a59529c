//! The handle: [`Telemetry`], its builder, the [`Guard`] that flushes on exit, and [`init`].

use super::collector::Collector;
use super::export;
use super::metrics::ModuleMetrics;
use super::propagation::{OtelPropagator, make_propagator};
use super::{ExportStats, ObservabilityConfig};
use crate::config::EnvConfig as _;
use crate::{Error, Result};
use opentelemetry::metrics::Meter;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::Arc;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

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

    /// Builds the providers and the `tracing` subscriber without installing anything globally
    /// (tests use [`Telemetry::dispatch`] with `tracing::dispatcher::set_default`).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) for an exporter that cannot be built or a bad filter.
    pub fn build(self) -> Result<Telemetry> {
        let c = &self.config;
        let collector = Collector::new(c)?;
        let stats = Arc::new(ExportStats::default());
        let resource = export::resource(c)?;
        let tracer = export::tracer_provider(c, resource.clone(), &stats)?;
        let meter = export::meter_provider(c, resource, &stats)?;
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
            collector,
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
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    dispatch: tracing::Dispatch,
    stats: Arc<ExportStats>,
    propagators: String,
    collector: Collector,
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

    /// What the config exports to: `"otlp-http"`, `"otlp-grpc"`, `"console"` (stdout only) or
    /// `"none"` (no exporter).
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

    /// Flushes and shuts down the providers; later spans are not exported.
    ///
    /// # Errors
    /// When an exporter failed to flush.
    pub fn shutdown(&self) -> Result<()> {
        let (tracer, meter) = (self.tracer.clone(), self.meter.clone());
        export::off_thread(move || {
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
