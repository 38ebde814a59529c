//! The handle's vocabulary: `from_env` and `from_config` validate and return the handle, `ping`
//! reaches the collector, `backend_name` says what the config exports to.

use crate::receiver::Receiver;
use corekit::ErrorKind;
use corekit::config::EnvConfig;
use corekit::observability::{ObservabilityConfig, Telemetry};
use std::time::{Duration, Instant};

/// Set in the environment of the child process that runs [`from_env_child`].
const CHILD: &str = "COREKIT_OBSERVABILITY_FROM_ENV_CHILD";

/// Runs `Telemetry::from_env()` in a fresh process of this test binary whose only `OTEL_*`,
/// `RUST_LOG` and `LOG_FORMAT` variables are `vars`. The variables are given at spawn, so no
/// test mutates the environment this process's parallel tests (and the SDK) read. Returns the
/// child's `from_env ...` report line.
fn from_env_in_a_child(vars: &[(&str, &str)]) -> String {
    let stdout = child_output(vars);
    // The harness prints the test's name on the line the report starts.
    stdout
        .lines()
        .find_map(|l| l.find("from_env ").map(|at| l[at..].to_owned()))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"))
}

/// Everything the `from_env` child printed (its logs included).
fn child_output(vars: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "handle::from_env_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("OTEL_") || n == "RUST_LOG" || n == "LOG_FORMAT" {
            cmd.env_remove(&name);
        }
    }
    cmd.env(CHILD, "1").envs(vars.iter().copied());
    let out = cmd.output().expect("run the test binary as a child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The child half of the `from_env` tests; does nothing unless spawned by them.
#[test]
fn from_env_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    // As in a service: inside `#[tokio::main]` (gRPC exporters need the runtime).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _inside = rt.enter();
    match Telemetry::from_env() {
        Ok(t) => println!("from_env ok {}", t.backend_name()),
        Err(e) => println!("from_env err {:?} {e}", e.kind()),
    }
}

#[test]
fn from_env_returns_the_handle() {
    let port = crate::support::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let report = from_env_in_a_child(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("RUST_LOG", "warn,corekit=debug"),
        ("LOG_FORMAT", "json"),
    ]);
    assert_eq!(report, "from_env ok otlp-http");
    let report = from_env_in_a_child(&[("OTEL_SDK_DISABLED", "true")]);
    assert_eq!(report, "from_env ok none");
}

#[test]
fn per_signal_protocols_are_honoured() {
    let endpoint = format!("http://127.0.0.1:{}", crate::support::free_port());
    for (vars, name) in [
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")][..],
            "otlp",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")][..],
            "otlp",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ][..],
            "otlp",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ][..],
            "otlp-grpc",
        ),
    ] {
        let mut all = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
        all.extend_from_slice(vars);
        let report = from_env_in_a_child(&all);
        assert_eq!(report, format!("from_env ok {name}"), "{vars:?}");
    }
    let report = from_env_in_a_child(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")]);
    assert!(
        report.starts_with("from_env err Config")
            && report.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        "{report}"
    );
}

#[test]
fn grpc_outside_a_runtime_is_a_config_error_not_a_panic() {
    let c = ObservabilityConfig::from_vars(
        "OTEL_",
        [(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL".to_string(),
            "grpc".to_string(),
        )],
    )
    .unwrap();
    let e = Telemetry::from_config(&c).expect_err("no runtime here");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("Tokio runtime"), "{e}");
}

#[test]
fn an_unsupported_logs_exporter_is_reported_not_ignored() {
    let out = child_output(&[
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_SDK_DISABLED", "true"),
        ("LOG_FORMAT", "json"),
    ]);
    assert!(out.contains("from_env ok none"), "{out}");
    assert!(
        out.contains("WARN") && out.contains("OTEL_LOGS_EXPORTER"),
        "a warning names the variable: {out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "no escape codes when stdout is a pipe: {out}"
    );
}

#[test]
fn from_env_refuses_a_bad_variable_and_names_it() {
    for (var, value) in [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
        ("LOG_FORMAT", "xml"),
        ("RUST_LOG", "info,[{"),
    ] {
        let report = from_env_in_a_child(&[(var, value)]);
        assert!(
            report.starts_with("from_env err Config ") && report.contains(var),
            "{var}={value}: {report}"
        );
    }
    let report = from_env_in_a_child(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key-s3cr3t")]);
    assert!(
        report.starts_with("from_env err Config ") && report.contains("OTEL_EXPORTER_OTLP_HEADERS"),
        "{report}"
    );
    assert!(!report.contains("s3cr3t"), "header value leaked: {report}");
}

#[test]
fn from_config_validates_like_the_environment() {
    let mut config = ObservabilityConfig::default();
    config.traces_sampler = "sometimes".into();
    let e = Telemetry::from_config(&config).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("OTEL_TRACES_SAMPLER"), "{e}");

    let mut config = ObservabilityConfig::default();
    config.bsp_max_queue_size = 0;
    let e = Telemetry::builder_from(config).build().unwrap_err();
    assert!(e.to_string().contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{e}");

    let mut config = ObservabilityConfig::default();
    config.sdk_disabled = true;
    let t = Telemetry::from_config(&config).unwrap();
    assert_eq!(t.backend_name(), "none");
}

#[tokio::test]
async fn ping_reaches_the_receiver() {
    let rx = Receiver::start().await;
    let t = rx.telemetry(&[]);
    assert_eq!(t.backend_name(), "otlp-http");
    t.ping().await.unwrap();
    // A connect only: nothing was exported.
    assert!(rx.server.received_requests().await.unwrap().is_empty());
    t.close().unwrap();
    t.close().expect("closing twice is fine");
}

#[tokio::test]
async fn ping_fails_as_unavailable_on_a_closed_port() {
    // Nothing listens on this port.
    let port = crate::support::free_port();
    let config = ObservabilityConfig::from_vars(
        "OTEL_",
        [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                format!("http://127.0.0.1:{port}"),
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT".to_string(), "2000".to_string()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS".to_string(),
                "x-api-key=s3cr3t".to_string(),
            ),
        ],
    )
    .unwrap();
    let t = Telemetry::from_config(&config).unwrap();
    let start = Instant::now();
    let e = t.ping().await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "bounded by the timeout"
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    assert_eq!(e.backend(), Some("otlp-http"));
    assert_eq!(e.operation(), Some("ping"));
    let message = e.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("s3cr3t"), "header leaked: {message}");
    assert!(!format!("{e:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn ping_checks_each_endpoint_and_names_the_one_that_failed() {
    let rx = Receiver::start().await;
    let port = crate::support::free_port();
    let dead = format!("http://127.0.0.1:{port}/v1/metrics");
    let t = rx.telemetry(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &dead)]);
    let e = t.ping().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string()
            .contains(&format!("metrics endpoint http://127.0.0.1:{port}")),
        "{e}"
    );
    let _ = t.close();
}

#[tokio::test]
async fn without_an_exporter_there_is_nothing_to_ping() {
    for (vars, name) in [
        (&[("OTEL_SDK_DISABLED", "true")][..], "none"),
        (
            &[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ][..],
            "none",
        ),
        (
            &[
                ("OTEL_TRACES_EXPORTER", "console"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ][..],
            "console",
        ),
    ] {
        // An endpoint nobody listens on: ping must not try it.
        let port = crate::support::free_port();
        let mut all = vec![(
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            format!("http://127.0.0.1:{port}"),
        )];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let t =
            Telemetry::from_config(&ObservabilityConfig::from_vars("OTEL_", all).unwrap()).unwrap();
        assert_eq!(t.backend_name(), name, "{vars:?}");
        t.ping().await.unwrap();
    }
}

/// `ping` can be awaited in a spawned task (its future is `Send`).
#[allow(dead_code)]
fn ping_is_send(t: &Telemetry) {
    fn send<T: Send>(_: &T) {}
    send(&t.ping());
}
