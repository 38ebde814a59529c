//! `rediss://` against a redis-server with TLS that the test starts, with a CA it generates.

use crate::support;
use corekit::cache::{Cache, RedisStore};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct TlsRedis(Child);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, port: u16) -> TlsRedis {
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !support::answers(&format!("127.0.0.1:{port}")) {
        assert!(Instant::now() < deadline, "TLS redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsRedis(child)
}

#[tokio::test]
async fn rediss_with_a_private_ca() {
    let dir = std::env::temp_dir().join(support::unique("corekit-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    support::test_certificates(&dir);
    let port = support::free_port();
    let _server = start(&dir, port);
    let url = format!("rediss://127.0.0.1:{port}");
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();

    let store = RedisStore::builder(&url)
        .tls_root_ca_pem(ca)
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(store).prefix("tls").build().unwrap();
    cache.set("k", &"over TLS").await.unwrap();
    assert_eq!(
        cache.get::<String>("k").await.unwrap().as_deref(),
        Some("over TLS")
    );

    // The system roots do not know the test CA: refused, within the connect timeout.
    let started = Instant::now();
    let err = RedisStore::builder(&url)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), corekit::ErrorKind::Config, "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    let err = RedisStore::builder(&url)
        .tls_root_ca_pem(b"not pem".to_vec())
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), corekit::ErrorKind::Config, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
