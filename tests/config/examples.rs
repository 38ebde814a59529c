//! Every example, as built by `cargo test --all-features`, run as a user would on each backend
//! it names: only the environment changes. The README's snippets are excerpts of these.
//! It runs the binaries as last built: `cargo test --all-features` (scripts/test.sh, CI)
//! rebuilds them first; `cargo test --test config` alone may run older ones.

use crate::support;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`, next to this test binary's `deps` directory.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "example {name} not built at {}: `cargo test --all-features` (scripts/test.sh) builds \
         every example before running the tests",
        path.display()
    );
    path
}

/// Runs example `name` in a fresh directory with only `env` (and `PATH`) set; it must exit 0
/// within 2 minutes.
fn run(name: &str, env: &[(&str, String)]) {
    let dir = std::env::temp_dir().join(support::unique(&format!("example-{name}")));
    std::fs::create_dir_all(&dir).expect("example directory");
    let mut cmd = Command::new(binary(name));
    cmd.current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("example starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("example status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("example output");
    let _ = std::fs::remove_dir_all(&dir);
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    // Passwords in the URLs are the test servers' own, but a failure report shows none.
    let shown: Vec<(&str, String)> = env
        .iter()
        .map(|(k, v)| (*k, corekit::config::redact_url(v)))
        .collect();
    assert!(
        out.status.success(),
        "example {name} with {shown:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
}

#[test]
fn quickstart_runs_on_embedded_defaults() {
    run("quickstart", &[]);
}

#[test]
fn storage_runs_on_a_local_directory() {
    run("storage", &[]);
}

#[test]
fn observability_runs_with_the_console_exporter() {
    run("observability", &[]);
}

#[test]
fn cache_runs_on_every_store() {
    run("cache", &[]);
    run("cache", &[("CACHE_URL", support::REDIS.require())]);
    run("cache", &[("CACHE_URL", support::REDIS_CLUSTER.require())]);
    run("cache", &[("CACHE_URL", support::REDIS_SENTINEL.require())]);
    run(
        "cache",
        &[
            ("CACHE_BACKEND", "tiered".into()),
            ("CACHE_URL", support::REDIS.require()),
        ],
    );
}

#[test]
fn queue_runs_on_every_broker() {
    run("queue", &[]);
    run("queue", &[("QUEUE_URL", support::NATS.require())]);
    run("queue", &[("QUEUE_URL", support::NATS_CLUSTER.require())]);
    run("queue", &[("QUEUE_URL", support::RABBITMQ.require())]);
    run(
        "queue",
        &[("QUEUE_URL", format!("kafka://{}", support::KAFKA.require()))],
    );
}

#[test]
fn email_runs_on_memory_file_and_smtp() {
    run("email", &[]);
    run(
        "email",
        &[
            ("EMAIL_BACKEND", "file".into()),
            ("EMAIL_FILE_DIR", "outbox".into()),
        ],
    );
    let smtp = support::SMTP.require();
    run(
        "email",
        &[
            ("EMAIL_BACKEND", "smtp".into()),
            ("EMAIL_SMTP_URL", format!("{smtp}?tls=none")),
        ],
    );
}

#[test]
fn scheduler_runs_with_memory_and_redis_jobs() {
    run("scheduler", &[]);
    run(
        "scheduler",
        &[("SCHEDULER_JOBS_URL", support::REDIS.require())],
    );
}
