//! Counting what the exporters did, so export problems are never silent.

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the exporters did since start-up.
///
/// Spans ended but neither exported nor failed were dropped (queue full) or are still queued;
/// after shutdown, `spans_ended - spans_exported - spans_failed` is the number dropped.
#[derive(Debug, Default)]
pub struct ExportStats {
    spans_ended: AtomicU64,
    spans_exported: AtomicU64,
    spans_failed: AtomicU64,
    span_export_failures: AtomicU64,
    metric_exports: AtomicU64,
    metric_export_failures: AtomicU64,
}

impl ExportStats {
    /// Sampled spans that ended (and were handed to the exporter's queue).
    pub fn spans_ended(&self) -> u64 {
        self.spans_ended.load(Ordering::Relaxed)
    }
    /// Spans in successful exports.
    pub fn spans_exported(&self) -> u64 {
        self.spans_exported.load(Ordering::Relaxed)
    }
    /// Spans in failed exports (lost).
    pub fn spans_failed(&self) -> u64 {
        self.spans_failed.load(Ordering::Relaxed)
    }
    /// Failed span exports.
    pub fn span_export_failures(&self) -> u64 {
        self.span_export_failures.load(Ordering::Relaxed)
    }
    /// Successful metric exports.
    pub fn metric_exports(&self) -> u64 {
        self.metric_exports.load(Ordering::Relaxed)
    }
    /// Failed metric exports.
    pub fn metric_export_failures(&self) -> u64 {
        self.metric_export_failures.load(Ordering::Relaxed)
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Counts spans as they end, in front of the batch processor.
#[derive(Debug)]
pub(crate) struct Ending<P> {
    inner: P,
    stats: Arc<ExportStats>,
}

impl<P> Ending<P> {
    pub(crate) fn new(inner: P, stats: Arc<ExportStats>) -> Self {
        Self { inner, stats }
    }
}

impl<P: SpanProcessor> SpanProcessor for Ending<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        bump(&self.stats.spans_ended, 1);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts span exports and their failures, logging each failure.
#[derive(Debug)]
pub(crate) struct CountedSpans<E> {
    inner: E,
    stats: Arc<ExportStats>,
    /// Where the spans go (password-redacted), for the failure log.
    destination: String,
}

impl<E> CountedSpans<E> {
    pub(crate) fn new(inner: E, stats: Arc<ExportStats>, destination: String) -> Self {
        Self {
            inner,
            stats,
            destination,
        }
    }
}

impl<E: SpanExporter> SpanExporter for CountedSpans<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => bump(&self.stats.spans_exported, n),
            Err(e) => {
                bump(&self.stats.spans_failed, n);
                bump(&self.stats.span_export_failures, 1);
                tracing::warn!(
                    target: "corekit::observability",
                    error = %e,
                    spans = n,
                    endpoint = %self.destination,
                    "span export to {} failed; spans lost (OTEL_TRACES_EXPORTER=none stops \
                     exporting traces)",
                    self.destination
                );
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts metric exports and their failures.
#[derive(Debug)]
pub(crate) struct CountedMetrics<E> {
    inner: E,
    stats: Arc<ExportStats>,
    /// Where the metrics go (password-redacted), for the failure log.
    destination: String,
}

impl<E> CountedMetrics<E> {
    pub(crate) fn new(inner: E, stats: Arc<ExportStats>, destination: String) -> Self {
        Self {
            inner,
            stats,
            destination,
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for CountedMetrics<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        match &result {
            Ok(()) => bump(&self.stats.metric_exports, 1),
            Err(e) => {
                bump(&self.stats.metric_export_failures, 1);
                tracing::warn!(
                    target: "corekit::observability",
                    error = %e,
                    endpoint = %self.destination,
                    "metric export to {} failed (OTEL_METRICS_EXPORTER=none stops exporting \
                     metrics)",
                    self.destination
                );
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
