//! Instructions per span on the calling thread, corekit's telemetry stack vs the raw
//! `tracing-subscriber` + `tracing-opentelemetry` stack with the same OTLP/HTTP batch exporter,
//! for `valgrind --tool=callgrind --separate-threads=yes` (instruction counts are repeatable on a
//! noisy machine where times are not). Not a criterion bench: a plain `main` making N spans.
//!
//! ```sh
//! cargo bench --bench span_instructions --features observability --no-run   # prints the binary
//! valgrind --tool=callgrind --separate-threads=yes BINARY corekit 100000   # then 200000;
//! valgrind --tool=callgrind --separate-threads=yes BINARY raw 100000       # main thread's
//! ```
//! difference / 100,000 is what one `info_span!` create + enter + exit + drop costs the
//! instrumented code (export happens on the SDK's own thread, counted apart).
//!
//! Both stacks export to the same closed loopback port, so neither exporter's thread does
//! different work; exporting fails the same way in both.

use corekit::config::EnvConfig;
use corekit::observability::{LogFormat, ObservabilityConfig, Telemetry};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use std::hint::black_box;
use tracing_subscriber::layer::SubscriberExt as _;

const ENDPOINT: &str = "http://127.0.0.1:9";

fn spans(n: usize) {
    for i in 0..n {
        let span = tracing::info_span!("work", item = 7);
        let _e = span.enter();
        black_box(i);
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let which = args.next().unwrap_or_else(|| "corekit".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = rt.enter();
    match which.as_str() {
        "corekit" => {
            let config = ObservabilityConfig::from_vars(
                "OTEL_",
                [
                    (
                        "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                        ENDPOINT.to_string(),
                    ),
                    ("OTEL_METRICS_EXPORTER".to_string(), "none".to_string()),
                ],
            )
            .expect("config");
            let telemetry = Telemetry::builder_from(config)
                .log_format(LogFormat::None)
                .filter("info")
                .build()
                .expect("telemetry");
            tracing::dispatcher::with_default(telemetry.dispatch(), || spans(n));
        }
        "raw" => {
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(
                    opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_endpoint(format!("{ENDPOINT}/v1/traces"))
                        .build()
                        .expect("exporter"),
                )
                .build();
            let raw = tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("raw")))
                    .with(tracing_subscriber::EnvFilter::new("info")),
            );
            tracing::dispatcher::with_default(&raw, || spans(n));
        }
        other => panic!("unknown target {other:?}: corekit or raw"),
    }
    println!("{which}: {n} spans");
}
