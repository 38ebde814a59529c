//! OpenTelemetry in one call: spans from `tracing`, a counter and a histogram, trace context
//! through a queue hop, printed by the console exporter (no collector needed).
//!
//! ```sh
//! cargo run --example observability --features observability,queue-memory
//! # against a collector instead:
//! OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!   cargo run --example observability --features observability,queue-memory
//! ```

use corekit::observability::{self, Telemetry, current_trace_id};
use corekit::queue::{MemoryBroker, Message, Queue};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> corekit::Result<()> {
    // Console exporters unless the environment says otherwise.
    for (var, value) in [
        ("OTEL_SERVICE_NAME", "observability-example"),
        ("OTEL_TRACES_EXPORTER", "console"),
        ("OTEL_METRICS_EXPORTER", "console"),
        ("LOG_FORMAT", "compact"),
    ] {
        if std::env::var_os(var).is_none() {
            // Single-threaded at this point: nothing else reads the environment yet.
            unsafe { std::env::set_var(var, value) };
        }
    }
    // `observability::init()` does this in one call; step by step, the collector is checked
    // before anything is installed.
    let telemetry = Telemetry::from_env()?;
    telemetry.ping().await?; // the OTLP collector accepts connections (console: nothing to reach)
    println!("exporting to {}", telemetry.backend_name());
    let guard = telemetry.install()?;

    let orders = observability::counter("orders.placed");
    let latency = observability::histogram("order.duration");
    let queue = Queue::new(MemoryBroker::new());
    queue.ensure_group("orders", "fulfilment").await?;

    {
        let span = tracing::info_span!("place_order", order.id = 7);
        let _entered = span.enter();
        let start = Instant::now();
        // The publish carries this trace in the message headers.
        queue.publish("orders", Message::json(&7)?).await?;
        orders.add(1, &[opentelemetry::KeyValue::new("channel", "web")]);
        latency.record(start.elapsed().as_secs_f64(), &[]);
        tracing::info!(trace_id = ?current_trace_id(), "order placed");
    }

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    queue
        .consumer("orders", "fulfilment")
        .run(
            move |message: Message| {
                let flag = flag.clone();
                async move {
                    let id: u64 = message.decode()?;
                    // Same trace id as place_order: the consumer continues the publisher's trace.
                    tracing::info!(order = id, trace_id = ?current_trace_id(), "fulfilling");
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                    Ok::<(), corekit::Error>(())
                }
            },
            async move {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        )
        .await?;

    // Flushes every span and metric before exit.
    guard.shutdown()
}
