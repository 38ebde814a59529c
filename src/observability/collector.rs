//! The collector a config exports to: its name ([`Telemetry::backend_name`]) and whether it
//! accepts connections ([`Telemetry::ping`]).
//!
//! [`Telemetry::backend_name`]: super::Telemetry::backend_name
//! [`Telemetry::ping`]: super::Telemetry::ping

use super::ObservabilityConfig;
use crate::{Error, ErrorKind, Result};
use std::time::Duration;

/// The OTLP endpoints a config exports to, one per distinct `host:port`, and the exporter's
/// name.
#[derive(Debug, Clone)]
pub(super) struct Collector {
    backend: &'static str,
    /// One per distinct `host:port`, with the signals exported there.
    targets: Vec<Target>,
    timeout: Duration,
}

#[derive(Debug, Clone)]
struct Target {
    signals: String,
    /// `scheme://host:port`: no user-info, path or query, so nothing secret is printed.
    shown: String,
    /// `host:port` to connect to.
    addr: String,
}

impl Collector {
    /// # Errors
    /// [`Config`](ErrorKind::Config) for an OTLP endpoint without a host (the config's
    /// validation refuses those first).
    pub(super) fn new(c: &ObservabilityConfig) -> Result<Self> {
        let mut targets: Vec<Target> = Vec::new();
        if !c.sdk_disabled {
            for (signal, exporter, url) in [
                ("traces", &c.traces_exporter, c.traces_endpoint()),
                ("metrics", &c.metrics_exporter, c.metrics_endpoint()),
            ] {
                if exporter != "otlp" {
                    continue;
                }
                let (shown, addr) = host_port(&url).ok_or_else(|| {
                    Error::config(format!(
                        "OTLP {signal} endpoint {:?}: expected http(s)://host[:port]",
                        crate::config::redact_url(&url)
                    ))
                })?;
                match targets.iter_mut().find(|t| t.addr == addr) {
                    Some(t) => t.signals = format!("{} and {signal}", t.signals),
                    None => targets.push(Target {
                        signals: signal.to_owned(),
                        shown,
                        addr,
                    }),
                }
            }
        }
        let console =
            !c.sdk_disabled && (c.traces_exporter == "console" || c.metrics_exporter == "console");
        // The protocols of the signals exported over OTLP (each may have its own).
        let grpc: Vec<bool> = [
            (&c.traces_exporter, c.traces_grpc()),
            (&c.metrics_exporter, c.metrics_grpc()),
        ]
        .into_iter()
        .filter(|(exporter, _)| !c.sdk_disabled && *exporter == "otlp")
        .map(|(_, grpc)| grpc)
        .collect();
        let backend = if grpc.is_empty() {
            if console { "console" } else { "none" }
        } else if grpc.iter().all(|g| *g) {
            "otlp-grpc"
        } else if grpc.iter().all(|g| !g) {
            "otlp-http"
        } else {
            "otlp"
        };
        Ok(Self {
            backend,
            targets,
            timeout: c.exporter_otlp_timeout,
        })
    }

    pub(super) fn backend_name(&self) -> &'static str {
        self.backend
    }

    /// Opens (and closes) a TCP connection to every OTLP endpoint at once, all within the export
    /// timeout. The connects run on threads of their own, so a slow name lookup cannot hold up
    /// the runtime, and the wait is a Tokio timer.
    pub(super) async fn ping(&self) -> Result<()> {
        let mut probes = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (addr, timeout) = (target.addr.clone(), self.timeout);
            std::thread::Builder::new()
                .name("corekit-otlp-ping".into())
                .spawn(move || {
                    let _ = tx.send(connect(&addr, timeout));
                })
                .map_err(|e| {
                    Error::new(ErrorKind::Backend, "could not start a thread to connect")
                        .with_backend(self.backend)
                        .with_operation("ping")
                        .with_source(e)
                })?;
            probes.push((target, rx));
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        for (target, rx) in probes {
            let cause = match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(e))) => e,
                Ok(Err(_)) => {
                    std::io::Error::other("the connecting thread ended without an answer")
                }
                Err(_) => timed_out(self.timeout),
            };
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("OTLP {} endpoint {}", target.signals, target.shown),
            )
            .with_backend(self.backend)
            .with_operation("ping")
            .with_source(cause));
        }
        Ok(())
    }
}

fn timed_out(timeout: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no connection within {timeout:?} (OTEL_EXPORTER_OTLP_TIMEOUT)"),
    )
}

/// Connects to `addr` (`host:port`), trying each address it resolves to until one accepts or
/// `timeout` is spent.
fn connect(addr: &str, timeout: Duration) -> std::io::Result<()> {
    use std::net::ToSocketAddrs as _;
    let deadline = std::time::Instant::now() + timeout;
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "the host name resolved to no address",
    );
    for a in addr.to_socket_addrs()? {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(timed_out(timeout));
        }
        match std::net::TcpStream::connect_timeout(&a, left) {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `(scheme://host:port, host:port)` of an `http://` or `https://` URL, the port defaulting to
/// the scheme's; `None` without a host or with a port that is not a number.
pub(super) fn host_port(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port: u16 = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (format!("[{h}]"), port)
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (host_port.to_owned(), default_port),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    Some((
        format!("{scheme}://{host}:{port}"),
        format!("{host}:{port}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_host_and_port_without_secrets() {
        let cases = [
            (
                "http://collector:4318/v1/traces",
                Some(("http://collector:4318", "collector:4318")),
            ),
            (
                "https://otlp.example.com",
                Some(("https://otlp.example.com:443", "otlp.example.com:443")),
            ),
            (
                "http://[::1]:4317",
                Some(("http://[::1]:4317", "[::1]:4317")),
            ),
            (
                "http://[::1]/v1/traces",
                Some(("http://[::1]:80", "[::1]:80")),
            ),
            (
                "https://user:token@host:9000/x?api_key=k",
                Some(("https://host:9000", "host:9000")),
            ),
            ("http://", None),
            ("http://host:port", None),
            ("grpc://host:4317", None),
        ];
        for (url, want) in cases {
            let got = host_port(url);
            assert_eq!(
                got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                want,
                "{url}"
            );
        }
    }

    #[test]
    fn the_backend_name_follows_the_config() {
        let mut c = ObservabilityConfig::default();
        assert_eq!(Collector::new(&c).unwrap().backend_name(), "otlp-http");
        c.exporter_otlp_protocol = "grpc".into();
        assert_eq!(Collector::new(&c).unwrap().backend_name(), "otlp-grpc");
        c.traces_exporter = "console".into();
        c.metrics_exporter = "none".into();
        let console = Collector::new(&c).unwrap();
        assert_eq!(console.backend_name(), "console");
        assert!(console.targets.is_empty());
        c.traces_exporter = "otlp".into();
        c.sdk_disabled = true;
        assert_eq!(Collector::new(&c).unwrap().backend_name(), "none");
    }

    #[test]
    fn one_probe_per_host_and_port() {
        let mut c = ObservabilityConfig {
            exporter_otlp_endpoint: Some("http://collector:4318".into()),
            ..Default::default()
        };
        let both = Collector::new(&c).unwrap();
        assert_eq!(both.targets.len(), 1);
        assert_eq!(both.targets[0].signals, "traces and metrics");
        c.exporter_otlp_metrics_endpoint = Some("http://metrics:9090/v1/metrics".into());
        assert_eq!(Collector::new(&c).unwrap().targets.len(), 2);
    }
}
