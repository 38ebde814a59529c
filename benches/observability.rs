//! Span cost through corekit's setup next to the raw `tracing` + `tracing-opentelemetry` stack
//! with the same OTLP exporter, and what instrumentation adds to a cache `set`.
//!
//! ```sh
//! cargo bench --bench observability --features observability,cache-memory
//! ```
//!
//! Both stacks export over OTLP/HTTP to an in-process receiver on loopback (batching on the
//! SDK's thread), so the figure is what instrumented code pays per span.

use corekit::cache::{Cache, MemoryStore};
use corekit::config::EnvConfig;
use corekit::observability::{LogFormat, ObservabilityConfig, Telemetry};
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn corekit_telemetry(endpoint: &str, filter: &str) -> Telemetry {
    let config = ObservabilityConfig::from_vars(
        "OTEL_",
        [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                endpoint.to_string(),
            ),
            ("OTEL_METRICS_EXPORTER".to_string(), "none".to_string()),
        ],
    )
    .unwrap();
    Telemetry::builder_from(config)
        .log_format(LogFormat::None)
        .filter(filter)
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&server)
            .await;
        server
    });
    let endpoint = server.uri();

    let mut g = c.benchmark_group("observability/span");
    let corekit = corekit_telemetry(&endpoint, "info");
    g.bench_function("corekit", |b| {
        tracing::dispatcher::with_default(corekit.dispatch(), || {
            b.iter(|| {
                let span = tracing::info_span!("work", item = 7);
                let _e = span.enter();
            })
        })
    });
    let raw_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{endpoint}/v1/traces"))
                .build()
                .unwrap(),
        )
        .build();
    let raw = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(raw_provider.tracer("raw")))
            .with(tracing_subscriber::EnvFilter::new("info")),
    );
    g.bench_function("raw_tracing_opentelemetry", |b| {
        tracing::dispatcher::with_default(&raw, || {
            b.iter(|| {
                let span = tracing::info_span!("work", item = 7);
                let _e = span.enter();
            })
        })
    });
    g.finish();

    let cache = Cache::builder(MemoryStore::new(10_000)).build().unwrap();
    rt.block_on(cache.set("k", &"v")).unwrap();
    // A memory-store hit answers without a span by design (see `Cache::get_bytes`), so the
    // cost of instrumentation shows on `set`, which runs in a `cache` span.
    let mut g = c.benchmark_group("observability/cache_set");
    g.bench_function("uninstrumented", |b| {
        b.iter(|| rt.block_on(cache.set("k", &"v")).unwrap())
    });
    let traced = corekit_telemetry(&endpoint, "info,corekit=debug");
    g.bench_function("traced_debug_spans", |b| {
        tracing::dispatcher::with_default(traced.dispatch(), || {
            b.iter(|| rt.block_on(cache.set("k", &"v")).unwrap())
        })
    });
    g.finish();
    let _ = corekit.close();
    let _ = traced.close();
    std::thread::spawn(move || raw_provider.shutdown())
        .join()
        .ok();
}

criterion_group!(observability_benches, benches);
criterion_main!(observability_benches);
