//! Trace context across process boundaries: W3C `traceparent`/`tracestate`/`baggage` through
//! HTTP headers and through any [`Carrier`] (queue message headers).

use crate::instrument::{Carrier, Propagator};
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The propagators `OTEL_PROPAGATORS` names (`tracecontext`, `baggage`; `none` or anything
/// else adds nothing).
pub(super) fn make_propagator(names: &str) -> TextMapCompositePropagator {
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

/// Carries trace context through [`Carrier`]s (queue message headers) with the globally
/// installed OpenTelemetry propagator. [`Telemetry::install`](super::Telemetry::install)
/// installs it; a service that sets up `tracing` and OpenTelemetry itself installs it with
/// [`instrument::set_propagator`](crate::instrument::set_propagator).
#[derive(Debug, Clone, Copy, Default)]
pub struct OtelPropagator;

struct CarrierInjector<'a>(&'a mut dyn Carrier);

impl Injector for CarrierInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set(key, value);
    }
}

struct CarrierExtractor<'a>(&'a dyn Carrier);

impl Extractor for CarrierExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
}

impl Propagator for OtelPropagator {
    fn inject(&self, carrier: &mut dyn Carrier) {
        let cx = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut CarrierInjector(carrier));
        });
    }

    fn extract(&self, carrier: &dyn Carrier, span: &tracing::Span) {
        let cx = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&CarrierExtractor(carrier))
        });
        let _ = span.set_parent(cx);
    }
}

/// Writes the current trace context into `carrier` (a queue message's headers, say).
pub fn inject(carrier: &mut dyn Carrier) {
    Propagator::inject(&OtelPropagator, carrier);
}

/// Makes `span` a child of the trace context `carrier` holds (call before entering it).
pub fn extract(carrier: &dyn Carrier, span: &tracing::Span) {
    Propagator::extract(&OtelPropagator, carrier, span);
}
