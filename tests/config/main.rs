//! The config loader against the real process environment (the unit tests use `from_vars`).

#[path = "../support/mod.rs"]
mod support;

mod examples;

use corekit::ErrorKind;
use corekit::config::{self, EnvConfig, Secret};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Demo {
    #[serde(with = "config::duration")]
    timeout: Duration,
    #[serde(with = "config::size")]
    max_body: u64,
    token: Option<Secret>,
}

impl Default for Demo {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            max_body: 1024,
            token: None,
        }
    }
}

impl EnvConfig for Demo {
    const PREFIX: &'static str = "COREKIT_IT_DEMO_";
    const SECRETS: &'static [&'static str] = &["token"];
}

// One test touches the process environment, so nothing races on it.
#[test]
fn from_env_reads_the_process_environment_under_each_prefix() {
    // SAFETY: this binary's only test that reads or writes the environment.
    unsafe {
        std::env::set_var("COREKIT_IT_DEMO_TIMEOUT", "250ms");
        std::env::set_var("COREKIT_IT_DEMO_MAX_BODY", "64MiB");
        std::env::set_var("COREKIT_IT_DEMO_TOKEN", "s3cr3t");
        std::env::set_var("COREKIT_IT_OTHER_TIMEOUT", "ten");
    }
    let demo = Demo::from_env().expect("valid variables load");
    assert_eq!(demo.timeout, Duration::from_millis(250));
    assert_eq!(demo.max_body, 64 << 20);
    assert_eq!(demo.token.as_ref().map(Secret::expose), Some("s3cr3t"));
    assert!(!format!("{demo:?}").contains("s3cr3t"));

    let err = Demo::from_env_prefixed("COREKIT_IT_OTHER_").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(
        err.to_string(),
        r#"invalid configuration: COREKIT_IT_OTHER_TIMEOUT="ten": expected a duration like 30s, 250ms or 5m"#
    );
}

/// Issue 14 #2: a password with any of `/ # ? @ : %` in it never reaches an error's `Display`
/// or `Debug`, whichever URL it is in (closed ports, so every connect fails).
#[cfg(all(
    feature = "cache-redis",
    feature = "scheduler-redis",
    feature = "email-smtp",
    feature = "queue-rabbitmq",
    feature = "queue-nats"
))]
#[tokio::test]
async fn no_error_shows_a_password_whatever_it_holds() {
    use corekit::cache::{CacheConfig, RedisStore};
    use corekit::email::{Mailer, SmtpTransport};
    use corekit::queue::{Queue, QueueConfig};
    use corekit::scheduler::{JobQueue, RedisTickLock};
    let port = support::free_port();
    let short = Duration::from_millis(500);
    let mut errors: Vec<(String, corekit::Error)> = Vec::new();
    for delimiter in ["/", "#", "?", "@", ":", "%", "/#?@:%"] {
        let pw = format!("s3cr{delimiter}et");
        let redis = format!("redis://:{pw}@127.0.0.1:{port}/0");
        if let Err(e) = RedisStore::builder(&redis)
            .connect_timeout(short)
            .build()
            .await
        {
            errors.push((redis.clone(), e));
        }
        if let Err(e) = RedisTickLock::connect(&redis, short).await {
            errors.push((redis.clone(), e));
        }
        if let Err(e) = JobQueue::builder().redis(&redis).build().await {
            errors.push((redis.clone(), e));
        }
        let vars = [("CACHE_URL".to_owned(), redis.replace("redis", "memcached"))];
        if let Err(e) = CacheConfig::from_vars("CACHE_", vars) {
            errors.push((redis.clone(), e));
        }
        for url in [
            format!("amqp://guest:{pw}@127.0.0.1:{port}/%2f"),
            format!("nats://user:{pw}@127.0.0.1:{port}"),
        ] {
            let vars = [
                ("QUEUE_URL".to_owned(), url.clone()),
                ("QUEUE_CONNECT_TIMEOUT".to_owned(), "500ms".to_owned()),
            ];
            let result = match QueueConfig::from_vars("QUEUE_", vars) {
                Ok(c) => Queue::from_config(&c).await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                errors.push((url, e));
            }
        }
        let smtp = format!("smtp://user:{pw}@127.0.0.1:{port}");
        let sent = match SmtpTransport::from_url(&smtp).and_then(|b| b.timeout(short).build()) {
            Ok(t) => Mailer::new(t).ping().await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            errors.push((smtp, e));
        }
    }
    assert!(errors.len() >= 7 * 6, "every URL failed: {}", errors.len());
    for (url, e) in &errors {
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("s3cr"), "{url}: password shown: {shown}");
        }
    }
}

/// The install line users copy names this package and only features it has.
#[test]
fn the_readme_install_line_matches_the_manifest() {
    let readme = include_str!("../../README.md");
    let manifest = include_str!("../../Cargo.toml");
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo add "))
        .expect("README has a `cargo add` line");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[2], env!("CARGO_PKG_NAME"), "{line}");
    let features = words
        .iter()
        .position(|w| *w == "--features")
        .map(|i| words[i + 1])
        .expect("the line names features");
    for feature in features.split(',') {
        assert!(
            manifest
                .lines()
                .any(|l| l.starts_with(&format!("{feature} = ["))),
            "README's feature {feature} is not in Cargo.toml"
        );
    }
}

/// `corekit::shutdown_signal` completes on a real SIGTERM: this test runs itself again as a
/// child process that waits on the signal, and sends that child SIGTERM.
#[test]
fn shutdown_signal_completes_on_sigterm() {
    use std::io::{BufRead, BufReader, Write};
    use std::time::Duration;
    if std::env::var_os("COREKIT_SHUTDOWN_CHILD").is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let signal = corekit::shutdown_signal();
            tokio::pin!(signal);
            // The first poll installs the handlers; only then may the parent send the signal.
            tokio::select! {
                biased;
                () = &mut signal => panic!("no signal sent yet"),
                () = tokio::task::yield_now() => {}
            }
            println!("child: ready");
            std::io::stdout().flush().unwrap();
            tokio::time::timeout(Duration::from_secs(30), signal)
                .await
                .expect("SIGTERM within 30 s");
            println!("child: stopped");
        });
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "shutdown_signal_completes_on_sigterm",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("COREKIT_SHUTDOWN_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains(what) => return true,
            Ok(line) => seen.push(line),
            Err(_) => return false,
        }
    };
    if !wait_for("child: ready") {
        let _ = child.kill();
        panic!("the child never got ready: {seen:?}");
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped = wait_for("child: stopped");
    let status = child.wait().unwrap();
    assert!(stopped, "the child did not see SIGTERM: {seen:?}");
    assert!(
        status.success(),
        "the child exits cleanly after SIGTERM: {status:?}"
    );
}

/// A readiness check names each dependency, fails a hung one by its timeout and a refused one
/// by its error, and runs them at once.
#[tokio::test]
async fn health_reports_each_check() {
    use corekit::cache::{Cache, RedisStore};
    use corekit::health::Health;
    use std::time::{Duration, Instant};
    let ok = Cache::builder(corekit::cache::MemoryStore::new(10))
        .build()
        .unwrap();
    let dead = RedisStore::builder(format!("redis://127.0.0.1:{}", support::free_port()))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .await;
    let dead_error = dead.expect_err("nothing listens there");
    let health = Health::new(Duration::from_secs(1))
        .check("cache", move || {
            let ok = ok.clone();
            async move { ok.ping().await }
        })
        .check("hung", std::future::pending)
        .check("redis", move || {
            let e = corekit::Error::new(dead_error.kind(), dead_error.to_string());
            async move { Err(e) }
        });
    let started = Instant::now();
    let report = health.run().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "checks run at once"
    );
    assert!(!report.is_ready(), "{report}");
    let failed: Vec<(&str, corekit::ErrorKind)> =
        report.failures().map(|(n, e)| (n, e.kind())).collect();
    assert_eq!(
        failed,
        [
            ("hung", corekit::ErrorKind::Timeout),
            ("redis", corekit::ErrorKind::Unavailable)
        ]
    );
    let text = report.to_string();
    assert!(text.starts_with("cache: ok; hung: "), "{text}");
}
