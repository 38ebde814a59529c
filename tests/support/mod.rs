//! Shared by every integration-test binary: where the real servers are, and a clear failure when
//! one is not there.
//!
//! Each server's address comes from an environment variable, defaulting to the port
//! `scripts/services.sh` starts it on. A server that does not answer fails the test with the
//! command that starts it: nothing is skipped, in CI or out.
#![allow(dead_code)]

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A server the tests talk to.
pub struct Server {
    /// The name `scripts/services.sh` knows it by.
    pub service: &'static str,
    /// The variable that overrides the address.
    pub env_var: &'static str,
    /// The address the services script uses.
    pub default: &'static str,
}

pub const REDIS: Server = Server {
    service: "redis",
    env_var: "COREKIT_TEST_REDIS_URL",
    default: "redis://127.0.0.1:6379",
};
/// Three primaries, no replicas.
pub const REDIS_CLUSTER: Server = Server {
    service: "redis_cluster",
    env_var: "COREKIT_TEST_REDIS_CLUSTER_URL",
    default: "redis-cluster://127.0.0.1:7001",
};
/// A primary and a replica watched by three sentinels as service `corekit`.
pub const REDIS_SENTINEL: Server = Server {
    service: "redis_sentinel",
    env_var: "COREKIT_TEST_REDIS_SENTINEL_URL",
    default: "redis-sentinel://127.0.0.1:26390/0?sentinelServiceName=corekit\
              &node=127.0.0.1:26391&node=127.0.0.1:26392",
};
pub const RABBITMQ: Server = Server {
    service: "rabbitmq",
    env_var: "COREKIT_TEST_AMQP_URL",
    default: "amqp://guest:guest@127.0.0.1:5672/%2f",
};
pub const NATS: Server = Server {
    service: "nats",
    env_var: "COREKIT_TEST_NATS_URL",
    default: "nats://127.0.0.1:4222",
};

/// Three JetStream nodes; clients discover the others from the first.
pub const NATS_CLUSTER: Server = Server {
    service: "nats_cluster",
    env_var: "COREKIT_TEST_NATS_CLUSTER_URL",
    default: "nats://127.0.0.1:4231",
};

pub const KAFKA: Server = Server {
    service: "kafka",
    env_var: "COREKIT_TEST_KAFKA_BROKERS",
    default: "127.0.0.1:9092",
};

pub const SMTP: Server = Server {
    service: "smtp",
    env_var: "COREKIT_TEST_SMTP_URL",
    default: "smtp://127.0.0.1:1025",
};
/// maildev's REST API (same service as [`SMTP`]).
pub const MAILDEV_API: Server = Server {
    service: "smtp",
    env_var: "COREKIT_TEST_MAILDEV_API",
    default: "http://127.0.0.1:1080",
};
pub const STARTTLS: Server = Server {
    service: "starttls",
    env_var: "COREKIT_TEST_STARTTLS_URL",
    default: "smtp://127.0.0.1:2525",
};
pub const SES: Server = Server {
    service: "ses",
    env_var: "COREKIT_TEST_SES_ENDPOINT",
    default: "http://127.0.0.1:5000",
};

pub const S3: Server = Server {
    service: "s3",
    env_var: "COREKIT_TEST_S3_ENDPOINT",
    default: "http://127.0.0.1:8333",
};

pub const GCS: Server = Server {
    service: "gcs",
    env_var: "COREKIT_TEST_GCS_ENDPOINT",
    default: "http://127.0.0.1:4443",
};

pub const AZURE: Server = Server {
    service: "azure",
    env_var: "COREKIT_TEST_AZURE_ENDPOINT",
    default: "http://127.0.0.1:10000/devstoreaccount1",
};

/// Where `scripts/services.sh` keeps state (installed tools, certificates, mailboxes).
pub fn services_dir() -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("COREKIT_SERVICES_DIR") {
        return dir.into();
    }
    let state = std::env::var("XDG_STATE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".local/state")
        });
    state.join("corekit-services")
}

impl Server {
    /// The server's URL, after checking that its port answers.
    ///
    /// # Panics
    /// When nothing answers, with the command that starts it.
    pub fn require(&self) -> String {
        let url = std::env::var(self.env_var).unwrap_or_else(|_| self.default.to_owned());
        let addr = host_port(&url);
        if !answers(&addr) {
            panic!(
                "{} is not reachable at {addr} (from {}={url:?} or the default): start it with \
                 `scripts/services.sh up {}`",
                self.service, self.env_var, self.service
            );
        }
        url
    }
}

/// `host:port` out of `scheme://user:pw@host:port/path`.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_owned()
}

/// Whether a TCP connection to `addr` succeeds within a second.
pub fn answers(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// A port on loopback that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A name no other test run uses, for keys, topics and buckets.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success(), "openssl {args:?}");
}

/// Writes into `dir` a CA (`ca.pem`) and a server certificate for 127.0.0.1 and localhost
/// signed by it (`server.pem`, key `server.key`), with the machine's `openssl`.
pub fn test_certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=corekit test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

/// Runs `f` on a current-thread runtime under a subscriber that keeps every log line (`INFO`
/// and up, no colours), and returns what `f` returned with the lines logged meanwhile.
pub fn with_logs<F: std::future::Future>(f: F) -> (F::Output, String) {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    });
    let text = String::from_utf8_lossy(&lines.0.lock().unwrap()).into_owned();
    (out, text)
}

/// Fails unless the process sets no variable starting with `prefix`: tests of what `from_env`
/// does on an empty environment need one.
pub fn assert_unset(prefix: &str) {
    let set: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(prefix))
        .collect();
    assert!(
        set.is_empty(),
        "this test needs no {prefix}* variable; set: {set:?}"
    );
}

/// A redis-server of the test's own, on `port`, with nothing on disk: to kill, stop and restart.
pub struct RedisProcess {
    child: std::process::Child,
}

impl RedisProcess {
    /// Starts it and waits until it answers.
    pub fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh up redis installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !answers(&format!("127.0.0.1:{port}")) {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on port {port} did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { child }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGKILL, and waits for it to go.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parses_urls() {
        assert_eq!(host_port("redis://127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(
            host_port("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "127.0.0.1:5672"
        );
        assert_eq!(host_port("localhost:1"), "localhost:1");
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        assert!(!answers(&format!("127.0.0.1:{}", free_port())));
    }

    #[test]
    #[should_panic(expected = "scripts/services.sh up redis")]
    fn a_missing_server_fails_with_the_start_command() {
        let server = Server {
            env_var: "COREKIT_TEST_NOTHING_HERE",
            default: "redis://127.0.0.1:1",
            ..REDIS
        };
        server.require();
    }
}
