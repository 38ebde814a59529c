//! Broker restarts during a publish loop, on servers these tests start themselves on other
//! ports: no acknowledged publish is lost, errors meanwhile are retryable and bounded, and the
//! same client works again once the server is back.

use crate::support;
use corekit::queue::conformance::{WAIT, unique_topic};
use corekit::queue::{Message, NatsBroker, Queue, RabbitMqBroker};
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A bound on each publish while the server is away.
const OP_TIMEOUT: Duration = Duration::from_secs(3);

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(support::unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_port(port: u16, up: bool, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while support::answers(&format!("127.0.0.1:{port}")) != up {
        assert!(
            Instant::now() < deadline,
            "{what}: port {port} not {} within {within:?}",
            if up { "open" } else { "closed" }
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server process the test owns.
trait Server: Send {
    fn start(&mut self);
    fn kill(&mut self);
}

struct Nats {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server for Nats {
    fn start(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (scripts/services.sh up nats installs it)");
        self.child = Some(child);
        wait_port(self.port, true, Duration::from_secs(20), "nats-server");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_port(self.port, false, Duration::from_secs(10), "nats-server");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A second RabbitMQ node (own name, ports, config and data dir) next to the shared one.
struct Rabbit {
    port: u16,
    dir: PathBuf,
    node: String,
    child: Option<Child>,
}

impl Rabbit {
    fn new() -> Self {
        let dir = scratch_dir("rabbit");
        // The server drops to the rabbitmq user: it must be able to write here.
        let _ = Command::new("chmod").arg("777").arg(&dir).status();
        let port = support::free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .unwrap();
        std::fs::write(dir.join("plugins"), "[].\n").unwrap();
        let node = format!("corekit{}@localhost", port);
        Self {
            port,
            dir,
            node,
            child: None,
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }
}

fn env_path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Server for Rabbit {
    fn start(&mut self) {
        let dist = support::free_port();
        let child = Command::new("rabbitmq-server")
            .env("RABBITMQ_CONFIG_FILE", env_path(&self.dir.join("rabbitmq")))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", env_path(&self.dir.join("mnesia")))
            .env("RABBITMQ_LOG_BASE", env_path(&self.dir.join("log")))
            .env("RABBITMQ_PID_FILE", env_path(&self.pid_file()))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                env_path(&self.dir.join("plugins")),
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "rabbitmq-server must be installed (scripts/services.sh up rabbitmq installs it)",
            );
        self.child = Some(child);
        wait_port(self.port, true, Duration::from_secs(90), "rabbitmq-server");
    }

    fn kill(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
        wait_port(self.port, false, Duration::from_secs(20), "rabbitmq-server");
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.pid_file());
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Publishes in a loop while the server is killed and restarted; then reads everything back.
async fn publish_through_restart(queue: Queue, mut server: Box<dyn Server>) {
    let t = unique_topic("restart");
    queue.ensure_group(&t, "g").await.unwrap();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (queue, t, acked, errors, stop) = (
            queue.clone(),
            t.clone(),
            acked.clone(),
            errors.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let m = Message::new(format!("{i}"));
                let id = m.id.clone();
                let start = Instant::now();
                match queue.publish(&t, m).await {
                    Ok(()) => acked.lock().unwrap().push(id),
                    Err(e) => {
                        assert!(
                            e.is_retryable(),
                            "publish error while the server restarts must be retryable: {e}"
                        );
                        errors.lock().unwrap().push(e.to_string());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                slowest = slowest.max(start.elapsed());
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            slowest
        })
    };
    let wait_for = |n: usize| {
        let acked = acked.clone();
        async move {
            let deadline = Instant::now() + WAIT * 2;
            while acked.lock().unwrap().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "only {} publishes acknowledged",
                    acked.lock().unwrap().len()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(30).await;
    tokio::task::block_in_place(|| {
        server.kill();
        std::thread::sleep(Duration::from_secs(1));
        server.start();
    });
    let before = acked.lock().unwrap().len();
    wait_for(before + 30).await;
    stop.store(true, Ordering::Relaxed);
    let slowest = publisher.await.unwrap();
    assert!(
        slowest < OP_TIMEOUT + Duration::from_secs(2),
        "a publish took {slowest:?}, over the {OP_TIMEOUT:?} bound"
    );
    eprintln!(
        "{}: {} publishes acknowledged, {} failed (retryable) during the restart, slowest {slowest:?}",
        queue.backend_name(),
        acked.lock().unwrap().len(),
        errors.lock().unwrap().len()
    );
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let mut sub = queue.subscribe(&t, "g").await.unwrap();
    let mut got = BTreeSet::new();
    while !acked.is_subset(&got) {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(Ok(d))) => {
                got.insert(d.message().id.clone());
                d.ack().await.unwrap();
            }
            other => panic!(
                "{} acknowledged publishes missing after the restart ({other:?}); errors seen: {:?}",
                acked.difference(&got).count(),
                errors.lock().unwrap()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_loses_no_acknowledged_publish() {
    let mut server = Nats {
        port: support::free_port(),
        dir: scratch_dir("nats"),
        child: None,
    };
    server.start();
    let broker = NatsBroker::builder(format!("nats://127.0.0.1:{}", server.port))
        .operation_timeout(OP_TIMEOUT)
        .build()
        .await
        .unwrap();
    publish_through_restart(Queue::new(broker), Box::new(server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_loses_no_acknowledged_publish() {
    support::RABBITMQ.require();
    let mut server = Rabbit::new();
    server.start();
    let broker =
        RabbitMqBroker::builder(format!("amqp://guest:guest@127.0.0.1:{}/%2f", server.port))
            .operation_timeout(OP_TIMEOUT)
            .build()
            .await
            .unwrap();
    publish_through_restart(Queue::new(broker), Box::new(server)).await;
}
