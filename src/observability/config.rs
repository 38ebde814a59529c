//! The OpenTelemetry SDK's standard `OTEL_*` variables.

use crate::config::{ConfigIssue, EnvConfig, Secret};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Durations the OpenTelemetry spec gives in milliseconds (`5000`); `5s`-style values are
/// accepted too.
mod millis {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        use serde::de::Error as _;
        let s = String::deserialize(d)?;
        let s = s.trim();
        if let Ok(ms) = s.parse::<u64>() {
            return Ok(Duration::from_millis(ms));
        }
        crate::config::parse_duration(s).map_err(|_| {
            D::Error::custom("expected milliseconds like 5000 (or a duration like 5s)")
        })
    }
}

/// Observability settings, read from the standard `OTEL_*` variables (see the
/// [module docs](super) for the table and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ObservabilityConfig {
    /// `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,key=value` (values percent-decoded).
    pub resource_attributes: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub exporter_otlp_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
    pub exporter_otlp_traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`.
    pub exporter_otlp_metrics_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` or `grpc`.
    pub exporter_otlp_protocol: String,
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`: the traces' own, else the one above.
    pub exporter_otlp_traces_protocol: Option<String>,
    /// `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`: the metrics' own, else the one above.
    pub exporter_otlp_metrics_protocol: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,...`; a secret (API keys live here).
    pub exporter_otlp_headers: Secret,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds).
    #[serde(with = "millis")]
    pub exporter_otlp_timeout: Duration,
    /// `OTEL_EXPORTER_OTLP_COMPRESSION`: `gzip` or `none`.
    pub exporter_otlp_compression: String,
    /// `OTEL_TRACES_SAMPLER`.
    pub traces_sampler: String,
    /// `OTEL_TRACES_SAMPLER_ARG`.
    pub traces_sampler_arg: Option<f64>,
    /// `OTEL_TRACES_EXPORTER`: `otlp`, `console` or `none`.
    pub traces_exporter: String,
    /// `OTEL_METRICS_EXPORTER`: `otlp`, `console` or `none`.
    pub metrics_exporter: String,
    /// `OTEL_LOGS_EXPORTER`: only `none` (or unset) is honoured; logs are written to stdout
    /// (`LOG_FORMAT`), and any other value is reported at start-up instead of ignored.
    pub logs_exporter: Option<String>,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds).
    #[serde(with = "millis")]
    pub metric_export_interval: Duration,
    /// `OTEL_BSP_SCHEDULE_DELAY` (milliseconds).
    #[serde(with = "millis")]
    pub bsp_schedule_delay: Duration,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`.
    pub bsp_max_queue_size: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
    pub bsp_max_export_batch_size: usize,
    /// `OTEL_BSP_EXPORT_TIMEOUT` (milliseconds).
    #[serde(with = "millis")]
    pub bsp_export_timeout: Duration,
    /// `OTEL_PROPAGATORS`: comma-separated `tracecontext`, `baggage`, `none`.
    pub propagators: String,
    /// `OTEL_SDK_DISABLED`: `true` turns every exporter off (spans still reach the log layer).
    pub sdk_disabled: bool,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        Self {
            service_name: None,
            resource_attributes: String::new(),
            exporter_otlp_endpoint: None,
            exporter_otlp_traces_endpoint: None,
            exporter_otlp_metrics_endpoint: None,
            exporter_otlp_protocol: "http/protobuf".into(),
            exporter_otlp_traces_protocol: None,
            exporter_otlp_metrics_protocol: None,
            exporter_otlp_headers: Secret::new(""),
            exporter_otlp_timeout: Duration::from_secs(10),
            exporter_otlp_compression: "none".into(),
            traces_sampler: "parentbased_always_on".into(),
            traces_sampler_arg: None,
            traces_exporter: "otlp".into(),
            metrics_exporter: "otlp".into(),
            logs_exporter: None,
            metric_export_interval: Duration::from_secs(60),
            bsp_schedule_delay: Duration::from_secs(5),
            bsp_max_queue_size: 2048,
            bsp_max_export_batch_size: 512,
            bsp_export_timeout: Duration::from_secs(30),
            propagators: "tracecontext,baggage".into(),
            sdk_disabled: false,
        }
    }
}

/// `key=value,key=value` with percent-encoded values (the spec's format for resource attributes
/// and headers).
pub(crate) fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("{p:?} is not key=value"))?;
            let k = k.trim();
            if k.is_empty() {
                return Err(format!("{p:?} has an empty key"));
            }
            Ok((k.to_owned(), crate::config::percent_decode(v.trim())))
        })
        .collect()
}

impl EnvConfig for ObservabilityConfig {
    const PREFIX: &'static str = "OTEL_";
    const SECRETS: &'static [&'static str] = &["exporter_otlp_headers"];

    fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        for (field, value) in [
            ("exporter_otlp_protocol", Some(&self.exporter_otlp_protocol)),
            (
                "exporter_otlp_traces_protocol",
                self.exporter_otlp_traces_protocol.as_ref(),
            ),
            (
                "exporter_otlp_metrics_protocol",
                self.exporter_otlp_metrics_protocol.as_ref(),
            ),
        ] {
            if let Some(value) = value
                && !matches!(value.as_str(), "http/protobuf" | "grpc")
            {
                return Err(ConfigIssue::new(
                    field,
                    value.clone(),
                    "http/protobuf or grpc",
                ));
            }
        }
        if !matches!(
            self.exporter_otlp_compression.as_str(),
            "gzip" | "none" | ""
        ) {
            return Err(ConfigIssue::new(
                "exporter_otlp_compression",
                self.exporter_otlp_compression.clone(),
                "gzip or none",
            ));
        }
        for (field, value) in [
            ("traces_exporter", &self.traces_exporter),
            ("metrics_exporter", &self.metrics_exporter),
        ] {
            if !matches!(value.as_str(), "otlp" | "console" | "none") {
                return Err(ConfigIssue::new(
                    field,
                    value.clone(),
                    "otlp, console or none",
                ));
            }
        }
        let samplers = [
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        ];
        if !samplers.contains(&self.traces_sampler.as_str()) {
            return Err(ConfigIssue::new(
                "traces_sampler",
                self.traces_sampler.clone(),
                samplers.join(", "),
            ));
        }
        if let Some(arg) = self.traces_sampler_arg
            && !(0.0..=1.0).contains(&arg)
        {
            return Err(ConfigIssue::new(
                "traces_sampler_arg",
                arg.to_string(),
                "a ratio from 0 to 1",
            ));
        }
        for p in self
            .propagators
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if !matches!(p, "tracecontext" | "baggage" | "none") {
                return Err(ConfigIssue::new(
                    "propagators",
                    self.propagators.clone(),
                    "a list of tracecontext, baggage, none",
                ));
            }
        }
        if let Err(e) = parse_pairs(&self.resource_attributes) {
            return Err(ConfigIssue::new(
                "resource_attributes",
                self.resource_attributes.clone(),
                format!("key=value,key=value ({e})"),
            ));
        }
        if parse_pairs(self.exporter_otlp_headers.expose()).is_err() {
            return Err(ConfigIssue::new(
                "exporter_otlp_headers",
                "***",
                "key=value,key=value",
            ));
        }
        for (field, url) in [
            ("exporter_otlp_endpoint", &self.exporter_otlp_endpoint),
            (
                "exporter_otlp_traces_endpoint",
                &self.exporter_otlp_traces_endpoint,
            ),
            (
                "exporter_otlp_metrics_endpoint",
                &self.exporter_otlp_metrics_endpoint,
            ),
        ] {
            if let Some(url) = url
                && (!(url.starts_with("http://") || url.starts_with("https://"))
                    || super::collector::host_port(url).is_none())
            {
                return Err(ConfigIssue::new(
                    field,
                    url.clone(),
                    "an http:// or https:// URL with a host (and a numeric port, if any)",
                ));
            }
        }
        if self.bsp_max_queue_size == 0 || self.bsp_max_export_batch_size == 0 {
            return Err(ConfigIssue::new(
                if self.bsp_max_queue_size == 0 {
                    "bsp_max_queue_size"
                } else {
                    "bsp_max_export_batch_size"
                },
                "0",
                "a number above 0",
            ));
        }
        if self.metric_export_interval.is_zero() {
            return Err(ConfigIssue::new(
                "metric_export_interval",
                "0",
                "milliseconds above 0",
            ));
        }
        Ok(())
    }
}

impl ObservabilityConfig {
    /// The traces endpoint: the per-signal one as given, else the base one plus `/v1/traces`
    /// for HTTP (the spec's rule), else the protocol's default on localhost.
    pub fn traces_endpoint(&self) -> String {
        self.signal_endpoint(
            &self.exporter_otlp_traces_endpoint,
            self.traces_grpc(),
            "v1/traces",
        )
    }

    /// The metrics endpoint, by the same rule as [`traces_endpoint`](Self::traces_endpoint).
    pub fn metrics_endpoint(&self) -> String {
        self.signal_endpoint(
            &self.exporter_otlp_metrics_endpoint,
            self.metrics_grpc(),
            "v1/metrics",
        )
    }

    /// Whether traces go over gRPC (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else the shared one).
    pub fn traces_grpc(&self) -> bool {
        self.exporter_otlp_traces_protocol
            .as_ref()
            .unwrap_or(&self.exporter_otlp_protocol)
            == "grpc"
    }

    /// Whether metrics go over gRPC, by the same rule.
    pub fn metrics_grpc(&self) -> bool {
        self.exporter_otlp_metrics_protocol
            .as_ref()
            .unwrap_or(&self.exporter_otlp_protocol)
            == "grpc"
    }

    fn signal_endpoint(&self, specific: &Option<String>, grpc: bool, path: &str) -> String {
        if let Some(url) = specific {
            return url.clone();
        }
        let base = self.exporter_otlp_endpoint.clone().unwrap_or_else(|| {
            if grpc {
                "http://localhost:4317".into()
            } else {
                "http://localhost:4318".into()
            }
        });
        if grpc {
            base
        } else {
            format!("{}/{path}", base.trim_end_matches('/'))
        }
    }

    /// The sampler ratio: `OTEL_TRACES_SAMPLER_ARG`, 1.0 when unset.
    pub(crate) fn ratio(&self) -> f64 {
        self.traces_sampler_arg.unwrap_or(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> crate::Result<ObservabilityConfig> {
        ObservabilityConfig::from_vars(
            "OTEL_",
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn standard_variables_load() {
        let c = load(&[
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,team=a%2Cb",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .unwrap();
        assert_eq!(c.service_name.as_deref(), Some("checkout"));
        assert_eq!(
            parse_pairs(&c.resource_attributes).unwrap(),
            [
                ("deployment.environment".into(), "prod".into()),
                ("team".into(), "a,b".into())
            ]
        );
        assert_eq!(c.traces_endpoint(), "http://collector:4318/v1/traces");
        assert_eq!(c.metrics_endpoint(), "http://collector:4318/v1/metrics");
        assert_eq!(c.exporter_otlp_timeout, Duration::from_millis(2500));
        assert_eq!(c.ratio(), 0.25);
        assert!(c.sdk_disabled);
        let grpc = load(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap();
        assert_eq!(grpc.traces_endpoint(), "http://localhost:4317");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_PROPAGATORS", "b3"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://collector:otlp/v1/metrics",
            ),
        ] {
            let e = load(&[(var, value)]).unwrap_err();
            assert!(e.to_string().contains(var), "{var}: {e}");
        }
        let e = load(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key")]).unwrap_err();
        assert!(
            !e.to_string().contains("api-key"),
            "header value leaked: {e}"
        );
    }
}
