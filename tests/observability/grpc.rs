//! OTLP over gRPC: a tonic `TraceService` / `MetricsService` receiver in this process.

use crate::receiver::attr;
use corekit::config::EnvConfig;
use corekit::observability::{LogFormat, ObservabilityConfig, Telemetry};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::{Arc, Mutex};

/// A received trace export and its `x-api-key` metadata.
type Received = (ExportTraceServiceRequest, Option<String>);

#[derive(Clone, Default)]
struct Sink {
    traces: Arc<Mutex<Vec<Received>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let key = request
            .metadata()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.traces
            .lock()
            .unwrap()
            .push((request.into_inner(), key));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_with_headers_as_metadata() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = Sink::default();
    let server = tonic::transport::Server::builder()
        // The exporter gzips (OTEL_EXPORTER_OTLP_COMPRESSION): a collector must accept it.
        .add_service(
            TraceServiceServer::new(sink.clone())
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        )
        .add_service(
            MetricsServiceServer::new(sink.clone())
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
        )
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let config = ObservabilityConfig::from_vars(
        "OTEL_",
        [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=secret-123".to_string(),
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_string()),
            ("OTEL_SERVICE_NAME", "grpc-test".to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    let telemetry = Telemetry::builder_from(config)
        .log_format(LogFormat::None)
        .build()
        .unwrap();
    assert_eq!(telemetry.backend_name(), "otlp-grpc");
    telemetry
        .ping()
        .await
        .expect("the gRPC receiver accepts connections");
    {
        let _d = tracing::dispatcher::set_default(telemetry.dispatch());
        let _s = tracing::info_span!("over_grpc").entered();
    }
    telemetry
        .meter("grpc")
        .u64_counter("grpc.calls")
        .build()
        .add(5, &[]);
    telemetry.flush().unwrap();
    let traces = sink.traces.lock().unwrap().clone();
    let (request, key) = &traces[0];
    assert_eq!(
        key.as_deref(),
        Some("secret-123"),
        "OTEL_EXPORTER_OTLP_HEADERS sent as metadata"
    );
    let rs = &request.resource_spans[0];
    assert_eq!(
        attr(&rs.resource.as_ref().unwrap().attributes, "service.name"),
        Some("grpc-test")
    );
    assert_eq!(rs.scope_spans[0].spans[0].name, "over_grpc");
    let metrics = sink.metrics.lock().unwrap().clone();
    assert!(
        metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .any(|m| m.name == "grpc.calls")
    );
    telemetry.close().unwrap();
}
