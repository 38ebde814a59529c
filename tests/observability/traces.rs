use crate::receiver::{Receiver, attr, int_attr};
use corekit::observability::{current_trace_id, extract_http, inject_http, start_span};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use std::time::Duration;

#[tokio::test]
async fn spans_arrive_with_resource_parentage_and_attributes() {
    let rx = Receiver::start().await;
    let telemetry = rx.telemetry(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,team=pay%2Cments",
        ),
    ]);
    {
        let _default = tracing::dispatcher::set_default(telemetry.dispatch());
        let parent = tracing::info_span!("handle_request", http.route = "/orders");
        let _p = parent.enter();
        let child = tracing::info_span!("load_order", order.id = 42i64);
        let _c = child.enter();
        assert_eq!(current_trace_id().map(|t| t.len()), Some(32));
        tracing::info!("inside");
    }
    assert_eq!(current_trace_id(), None, "outside any span");
    telemetry.flush().unwrap();
    let traces = rx.traces().await;
    let resource = traces[0].resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(attr(&resource.attributes, "service.name"), Some("checkout"));
    assert_eq!(
        attr(&resource.attributes, "deployment.environment"),
        Some("test")
    );
    assert_eq!(attr(&resource.attributes, "team"), Some("pay,ments"));
    let spans = rx.spans().await;
    let parent = spans
        .iter()
        .find(|s| s.name == "handle_request")
        .expect("parent span");
    let child = spans
        .iter()
        .find(|s| s.name == "load_order")
        .expect("child span");
    assert_eq!(child.trace_id, parent.trace_id, "one trace");
    assert_eq!(child.parent_span_id, parent.span_id, "child of the parent");
    assert!(parent.parent_span_id.is_empty(), "the parent is a root");
    assert_eq!(attr(&parent.attributes, "http.route"), Some("/orders"));
    assert_eq!(int_attr(&child.attributes, "order.id"), Some(42));
    assert_eq!(parent.kind, 1, "internal");
    assert_eq!(telemetry.stats().spans_exported(), 2);
    telemetry.close().unwrap();
}

#[tokio::test]
async fn the_brief_style_span_helpers_work() {
    let rx = Receiver::start().await;
    let telemetry = rx.telemetry(&[]);
    {
        let _default = tracing::dispatcher::set_default(telemetry.dispatch());
        let span = start_span("charge_card");
        span.set_attribute("amount", 1250i64);
        span.record_error(&std::io::Error::other("card declined"));
        span.end();
    }
    telemetry.flush().unwrap();
    let spans = rx.spans().await;
    let s = spans
        .iter()
        .find(|s| s.name == "charge_card")
        .expect("span");
    assert_eq!(int_attr(&s.attributes, "amount"), Some(1250));
    let status = s.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "card declined"));
}

#[tokio::test]
async fn metrics_arrive_with_their_values() {
    let rx = Receiver::start().await;
    let telemetry = rx.telemetry(&[("OTEL_SERVICE_NAME", "metrics-test")]);
    let meter = telemetry.meter("test");
    let orders = meter.u64_counter("orders.placed").build();
    let latency = meter.f64_histogram("checkout.duration").build();
    let inflight = meter.i64_up_down_counter("requests.inflight").build();
    orders.add(2, &[opentelemetry::KeyValue::new("region", "eu")]);
    orders.add(1, &[opentelemetry::KeyValue::new("region", "eu")]);
    latency.record(0.25, &[]);
    latency.record(0.75, &[]);
    inflight.add(3, &[]);
    inflight.add(-1, &[]);
    telemetry.flush().unwrap();
    let all: Vec<_> = rx
        .metrics()
        .await
        .into_iter()
        .flat_map(|r| r.resource_metrics)
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .collect();
    let find = |name: &str| {
        all.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    match &find("orders.placed").data {
        Some(metric::Data::Sum(sum)) => {
            let p = &sum.data_points[0];
            assert_eq!(p.value, Some(number_data_point::Value::AsInt(3)));
            assert_eq!(attr(&p.attributes, "region"), Some("eu"));
            assert!(sum.is_monotonic);
        }
        other => panic!("counter exported as {other:?}"),
    }
    match &find("checkout.duration").data {
        Some(metric::Data::Histogram(h)) => {
            assert_eq!(h.data_points[0].count, 2);
            assert_eq!(h.data_points[0].sum, Some(1.0));
        }
        other => panic!("histogram exported as {other:?}"),
    }
    match &find("requests.inflight").data {
        Some(metric::Data::Sum(sum)) => {
            assert_eq!(
                sum.data_points[0].value,
                Some(number_data_point::Value::AsInt(2))
            );
            assert!(!sum.is_monotonic);
        }
        other => panic!("up-down counter exported as {other:?}"),
    }
    assert!(telemetry.stats().metric_exports() >= 1);
}

fn root_spans(telemetry: &corekit::observability::Telemetry, n: usize) {
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    for i in 0..n {
        let _s = tracing::info_span!("root", i).entered();
    }
}

#[tokio::test]
async fn samplers_are_honoured() {
    let rx = Receiver::start().await;
    let off = rx.telemetry(&[("OTEL_TRACES_SAMPLER", "always_off")]);
    root_spans(&off, 50);
    off.flush().unwrap();
    assert!(rx.spans().await.is_empty(), "always_off exports nothing");

    let rx = Receiver::start().await;
    let half = rx.telemetry(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
    ]);
    root_spans(&half, 400);
    half.flush().unwrap();
    let n = rx.spans().await.len();
    // Binomial(400, 0.5): outside 120..=280 has probability below 1e-15.
    assert!((120..=280).contains(&n), "{n} of 400 sampled at 0.5");
}

#[tokio::test]
async fn sdk_disabled_exports_nothing() {
    let rx = Receiver::start().await;
    let t = rx.telemetry(&[("OTEL_SDK_DISABLED", "true")]);
    root_spans(&t, 10);
    t.meter("x").u64_counter("c").build().add(1, &[]);
    t.flush().unwrap();
    t.close().unwrap();
    assert!(rx.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn dropping_the_guard_flushes_what_is_buffered() {
    let rx = Receiver::start().await;
    // A batch delay far beyond the test: only the guard's shutdown can export these.
    let t = rx.telemetry(&[("OTEL_BSP_SCHEDULE_DELAY", "600000")]);
    root_spans(&t, 5);
    assert!(
        rx.spans().await.is_empty(),
        "nothing exported before the guard drops"
    );
    drop(t.into_guard());
    assert_eq!(rx.spans().await.len(), 5);
}

#[tokio::test]
async fn a_dead_or_stalled_collector_never_blocks_and_is_counted() {
    // Nothing listens on this port.
    let port = crate::support::free_port();
    let config = corekit::observability::ObservabilityConfig::from_vars(
        "OTEL_",
        [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT".to_string(), "500".to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "50".to_string()),
            ("OTEL_BSP_MAX_QUEUE_SIZE".to_string(), "256".to_string()),
        ],
    )
    .unwrap();
    use corekit::config::EnvConfig as _;
    let dead = corekit::observability::Telemetry::builder_from(config)
        .log_format(corekit::observability::LogFormat::None)
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    root_spans(&dead, 5000);
    let spent = start.elapsed();
    // 5000 spans against a 500 ms export timeout: if span creation waited on the exporter it
    // would take many timeouts; it takes only the time to build the spans.
    assert!(
        spent < Duration::from_secs(5),
        "instrumented code was slowed: {spent:?}"
    );
    let _ = dead.close();
    let s = dead.stats();
    assert_eq!(s.spans_ended(), 5000);
    assert!(s.span_export_failures() >= 1, "failures are counted");
    assert!(s.spans_exported() == 0);
    let lost = s.spans_ended() - s.spans_exported() - s.spans_failed();
    assert!(lost > 0, "the bounded queue (256) dropped the rest: {lost}");

    let stalled = Receiver::start_with(
        wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(30)),
    )
    .await;
    let t = stalled.telemetry(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "300")]);
    let start = std::time::Instant::now();
    root_spans(&t, 2000);
    assert!(start.elapsed() < Duration::from_secs(5));
    let _ = t.close();
    assert!(t.stats().span_export_failures() >= 1);
}

#[tokio::test]
async fn http_headers_carry_the_trace_to_the_next_service() {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let rx = Receiver::start().await;
    let t = rx.telemetry(&[]);
    let _default = tracing::dispatcher::set_default(t.dispatch());
    let mut headers = http::HeaderMap::new();
    let caller_trace = {
        let _s = tracing::info_span!("client_call").entered();
        inject_http(&mut headers);
        current_trace_id().unwrap()
    };
    let traceparent = headers.get("traceparent").unwrap().to_str().unwrap();
    assert!(traceparent.contains(&caller_trace), "{traceparent}");
    let server = tracing::info_span!("server_handle");
    extract_http(&headers, &server);
    let _e = server.enter();
    assert_eq!(current_trace_id().as_deref(), Some(caller_trace.as_str()));
}

#[tokio::test]
async fn a_trace_survives_publish_and_consume() {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    // What `Telemetry::install` does; this test keeps its subscriber local instead.
    corekit::instrument::set_propagator(Box::new(corekit::observability::OtelPropagator));
    for queue in [
        corekit::queue::Queue::new(corekit::queue::MemoryBroker::new()),
        corekit::queue::Queue::new(
            corekit::queue::NatsBroker::builder(crate::support::NATS.require())
                .build()
                .await
                .unwrap(),
        ),
    ] {
        let rx = Receiver::start().await;
        let t = rx.telemetry(&[("RUST_LOG", "info,corekit=debug")]);
        let _default = tracing::dispatcher::set_default(t.dispatch());
        let topic = crate::support::unique("traced").replace('-', "_");
        queue.ensure_group(&topic, "g").await.unwrap();
        let publisher_trace = {
            let _s = tracing::info_span!("place_order").entered();
            queue
                .publish(&topic, corekit::queue::Message::new("order"))
                .await
                .unwrap();
            current_trace_id().unwrap()
        };
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let s2 = seen.clone();
        queue
            .consumer(&topic, "g")
            .run(
                move |_m| {
                    let s2 = s2.clone();
                    async move {
                        *s2.lock().unwrap() = current_trace_id();
                        Ok::<(), corekit::Error>(())
                    }
                },
                {
                    let seen = seen.clone();
                    async move {
                        while seen.lock().unwrap().is_none() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                },
            )
            .await
            .unwrap();
        assert_eq!(
            seen.lock().unwrap().as_deref(),
            Some(publisher_trace.as_str()),
            "{}: the consumer's span continues the publisher's trace",
            queue.backend_name()
        );
        t.flush().unwrap();
        let spans = rx.spans().await;
        let publish = spans.iter().find(|s| s.name == "place_order").unwrap();
        let process = spans
            .iter()
            .find(|s| {
                attr(&s.attributes, "messaging.destination.name") == Some(topic.as_str())
                    && s.name == "process"
            })
            .unwrap_or_else(|| {
                panic!(
                    "process span in {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            });
        assert_eq!(process.trace_id, publish.trace_id);
        // Injected inside the publish span: the handler's span is its child.
        let publish_call = spans
            .iter()
            .find(|s| {
                attr(&s.attributes, "messaging.destination.name") == Some(topic.as_str())
                    && s.name == "publish"
            })
            .expect("the publish span (corekit=debug)");
        assert_eq!(publish_call.parent_span_id, publish.span_id);
        assert_eq!(
            process.parent_span_id, publish_call.span_id,
            "child of publish"
        );
        let _ = queue.delete_topic(&topic).await;
    }
}

/// The only test in this binary that installs telemetry globally (a process can do it once).
#[tokio::test]
async fn module_calls_are_measured_without_code() {
    let rx = Receiver::start().await;
    let guard = rx.telemetry(&[]).install().unwrap();
    let queue = corekit::queue::Queue::new(corekit::queue::MemoryBroker::new());
    for _ in 0..3 {
        queue
            .publish("measured", corekit::queue::Message::new("x"))
            .await
            .unwrap();
    }
    let cache = corekit::cache::Cache::new(corekit::cache::MemoryStore::new(10));
    // Memory-store gets and sets answer in process, unmeasured; incr is a store call.
    cache.set("a", &1).await.unwrap();
    cache.incr("n", 1).await.unwrap();
    cache.incr("n", 1).await.unwrap();
    let outbox = corekit::email::MemoryTransport::new();
    outbox.fail_next(1, true);
    let mailer = corekit::email::Mailer::builder(outbox)
        .retry(corekit::email::Retry::new(2, Duration::from_millis(1)))
        .build();
    let email = corekit::email::Email::builder()
        .from("a@example.com")
        .to("b@example.com")
        .text("x")
        .build()
        .unwrap();
    mailer.send(email).await.unwrap();
    guard.telemetry().unwrap().flush().unwrap();
    let metrics: Vec<_> = rx
        .metrics()
        .await
        .into_iter()
        .flat_map(|r| r.resource_metrics)
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .collect();
    let histogram_count = |name: &str, key: &str, op: &str| -> u64 {
        let m = metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        match &m.data {
            Some(metric::Data::Histogram(h)) => h
                .data_points
                .iter()
                .filter(|p| attr(&p.attributes, key) == Some(op))
                .map(|p| p.count)
                .sum(),
            other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(
        histogram_count(
            "messaging.client.operation.duration",
            "messaging.operation.name",
            "publish"
        ),
        3
    );
    assert_eq!(
        histogram_count("db.client.operation.duration", "db.operation.name", "incr"),
        2
    );
    assert_eq!(
        histogram_count("db.client.operation.duration", "db.operation.name", "set"),
        0,
        "in-process writes are not measured"
    );
    assert_eq!(
        histogram_count(
            "corekit.email.send.duration",
            "email.operation.name",
            "send"
        ),
        2,
        "each attempt"
    );
    let errors = metrics
        .iter()
        .find(|m| m.name == "corekit.email.errors")
        .expect("email errors");
    match &errors.data {
        Some(metric::Data::Sum(sum)) => {
            assert_eq!(
                sum.data_points[0].value,
                Some(number_data_point::Value::AsInt(1))
            );
            assert_eq!(
                attr(&sum.data_points[0].attributes, "error.type"),
                Some("Unavailable")
            );
        }
        other => panic!("{other:?}"),
    }
    guard.shutdown().unwrap();
}
