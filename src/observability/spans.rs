//! Spans for code that does not use `tracing`'s macros, and the current trace id.

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The current span's trace id (32 hex digits), for error responses and logs; `None` outside a
/// sampled or unsampled OpenTelemetry span.
pub fn current_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
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
