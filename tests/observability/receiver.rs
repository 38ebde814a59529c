//! An OTLP/HTTP receiver: `POST /v1/traces` and `/v1/metrics`, decoded with the OTLP protobuf
//! types.

use corekit::config::EnvConfig;
use corekit::observability::{LogFormat, ObservabilityConfig, Telemetry};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub struct Receiver {
    pub server: MockServer,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_with(ResponseTemplate::new(200)).await
    }

    pub async fn start_with(response: ResponseTemplate) -> Self {
        let server = MockServer::start().await;
        for p in ["/v1/traces", "/v1/metrics"] {
            Mock::given(method("POST"))
                .and(path(p))
                .respond_with(response.clone())
                .mount(&server)
                .await;
        }
        Self { server }
    }

    /// Telemetry exporting here, configured from these `OTEL_*` variables on top.
    pub fn telemetry(&self, vars: &[(&str, &str)]) -> Telemetry {
        let endpoint = self.server.uri();
        let mut all: Vec<(String, String)> = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL".into(), "60000".into()),
        ];
        for (k, v) in vars {
            all.retain(|(name, _)| name != k);
            all.push((k.to_string(), v.to_string()));
        }
        // `RUST_LOG` among `vars` sets the filter, as `Telemetry::from_env` does.
        let filter = vars
            .iter()
            .find(|(k, _)| *k == "RUST_LOG")
            .map_or("info", |(_, v)| *v);
        let config = ObservabilityConfig::from_vars("OTEL_", all).unwrap();
        Telemetry::builder_from(config)
            .log_format(LogFormat::None)
            .filter(filter)
            .build()
            .unwrap()
    }

    async fn bodies(&self, p: &str) -> Vec<Vec<u8>> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == p)
            .map(|r| r.body)
            .collect()
    }

    pub async fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.bodies("/v1/traces")
            .await
            .iter()
            .map(|b| ExportTraceServiceRequest::decode(&b[..]).expect("OTLP trace protobuf"))
            .collect()
    }

    pub async fn spans(&self) -> Vec<Span> {
        self.traces()
            .await
            .into_iter()
            .flat_map(|r| r.resource_spans)
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .collect()
    }

    pub async fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.bodies("/v1/metrics")
            .await
            .iter()
            .map(|b| ExportMetricsServiceRequest::decode(&b[..]).expect("OTLP metrics protobuf"))
            .collect()
    }
}

pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.as_str()),
            _ => None,
        })
}

pub fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(any_value::Value::IntValue(i)),
            }) => Some(*i),
            _ => None,
        })
}
