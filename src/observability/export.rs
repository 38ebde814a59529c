//! Where telemetry goes: the OTLP (HTTP or gRPC) and console exporters, the resource and the
//! sampler, and the tracer and meter providers built from them.

use super::ObservabilityConfig;
use super::config::parse_pairs;
use super::stats::{self, ExportStats};
use crate::{Error, ErrorKind, Result};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use std::sync::Arc;

pub(super) fn sampler(c: &ObservabilityConfig) -> Sampler {
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

pub(super) fn resource(c: &ObservabilityConfig) -> Result<Resource> {
    let attributes = parse_pairs(&c.resource_attributes)
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

fn headers(c: &ObservabilityConfig) -> Result<std::collections::HashMap<String, String>> {
    Ok(parse_pairs(c.exporter_otlp_headers.expose())
        .map_err(|_| Error::config("OTEL_EXPORTER_OTLP_HEADERS: expected key=value,..."))?
        .into_iter()
        .collect())
}

fn grpc_metadata(
    c: &ObservabilityConfig,
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers(c)? {
        let key = http::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| exporter_error("OTLP", format!("header {k:?}: {e}")))?;
        let value = http::header::HeaderValue::from_str(&v)
            .map_err(|e| exporter_error("OTLP", format!("header {k:?} value: {e}")))?;
        map.insert(key, value);
    }
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
}

/// tonic's channel runs on the Tokio runtime it is built in: without one it would panic.
fn check_runtime_for_grpc(signal: &str) -> Result<()> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::config(format!(
            "OTLP {signal} over gRPC needs a Tokio runtime: build the telemetry inside \
             #[tokio::main] (or export over http/protobuf)"
        )));
    }
    Ok(())
}

fn span_exporter(c: &ObservabilityConfig) -> Result<opentelemetry_otlp::SpanExporter> {
    let gzip = c.exporter_otlp_compression == "gzip";
    if c.traces_grpc() {
        check_runtime_for_grpc("traces")?;
        let mut b = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(c.traces_endpoint())
            .with_timeout(c.exporter_otlp_timeout)
            .with_metadata(grpc_metadata(c)?);
        if gzip {
            b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        b.build().map_err(|e| exporter_error("traces", e))
    } else {
        let mut b = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(c.traces_endpoint())
            .with_timeout(c.exporter_otlp_timeout)
            .with_headers(headers(c)?);
        if gzip {
            b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        b.build().map_err(|e| exporter_error("traces", e))
    }
}

fn metric_exporter(c: &ObservabilityConfig) -> Result<opentelemetry_otlp::MetricExporter> {
    let gzip = c.exporter_otlp_compression == "gzip";
    if c.metrics_grpc() {
        check_runtime_for_grpc("metrics")?;
        let mut b = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(c.metrics_endpoint())
            .with_timeout(c.exporter_otlp_timeout)
            .with_metadata(grpc_metadata(c)?);
        if gzip {
            b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        b.build().map_err(|e| exporter_error("metrics", e))
    } else {
        let mut b = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(c.metrics_endpoint())
            .with_timeout(c.exporter_otlp_timeout)
            .with_headers(headers(c)?);
        if gzip {
            b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        b.build().map_err(|e| exporter_error("metrics", e))
    }
}

/// The tracer provider `c` asks for (`None` when traces are off), its exports counted in
/// `stats`.
pub(super) fn tracer_provider(
    c: &ObservabilityConfig,
    resource: Resource,
    stats: &Arc<ExportStats>,
) -> Result<Option<SdkTracerProvider>> {
    if c.sdk_disabled || c.traces_exporter == "none" {
        return Ok(None);
    }
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(c.bsp_max_queue_size)
        .with_max_export_batch_size(c.bsp_max_export_batch_size)
        .with_scheduled_delay(c.bsp_schedule_delay)
        .build();
    let processor = if c.traces_exporter == "console" {
        BatchSpanProcessor::builder(stats::CountedSpans::new(
            opentelemetry_stdout::SpanExporter::default(),
            stats.clone(),
            "stdout".to_owned(),
        ))
        .with_batch_config(batch)
        .build()
    } else {
        BatchSpanProcessor::builder(stats::CountedSpans::new(
            span_exporter(c)?,
            stats.clone(),
            crate::config::redact_url(&c.traces_endpoint()),
        ))
        .with_batch_config(batch)
        .build()
    };
    Ok(Some(
        SdkTracerProvider::builder()
            .with_span_processor(stats::Ending::new(processor, stats.clone()))
            .with_sampler(sampler(c))
            .with_resource(resource)
            .build(),
    ))
}

/// The meter provider `c` asks for (`None` when metrics are off), its exports counted in
/// `stats`.
pub(super) fn meter_provider(
    c: &ObservabilityConfig,
    resource: Resource,
    stats: &Arc<ExportStats>,
) -> Result<Option<SdkMeterProvider>> {
    if c.sdk_disabled || c.metrics_exporter == "none" {
        return Ok(None);
    }
    let builder = SdkMeterProvider::builder().with_resource(resource);
    let builder = if c.metrics_exporter == "console" {
        builder.with_reader(
            PeriodicReader::builder(stats::CountedMetrics::new(
                opentelemetry_stdout::MetricExporter::default(),
                stats.clone(),
                "stdout".to_owned(),
            ))
            .with_interval(c.metric_export_interval)
            .build(),
        )
    } else {
        builder.with_reader(
            PeriodicReader::builder(stats::CountedMetrics::new(
                metric_exporter(c)?,
                stats.clone(),
                crate::config::redact_url(&c.metrics_endpoint()),
            ))
            .with_interval(c.metric_export_interval)
            .build(),
        )
    };
    Ok(Some(builder.build()))
}

/// Runs a provider call on a thread of its own: the SDK's shutdown waits for its export thread,
/// which can deadlock a single-threaded async runtime if done on it.
pub(super) fn off_thread(
    f: impl FnOnce() -> std::result::Result<(), opentelemetry_sdk::error::OTelSdkError> + Send + 'static,
) -> Result<()> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| Error::new(ErrorKind::Backend, "telemetry shutdown panicked"))?
        .map_err(|e| {
            Error::new(ErrorKind::Unavailable, format!("telemetry export: {e}"))
                .with_backend("otlp")
        })
}
