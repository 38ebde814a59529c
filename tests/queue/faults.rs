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
pub(crate) trait Server: Send {
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

/// A three-node JetStream cluster of the test's own; `kill`/`start` stop and restart node
/// `victim`.
struct NatsCluster {
    victim: usize,
    ports: Vec<u16>,
    routes: Vec<u16>,
    dir: PathBuf,
    nodes: Vec<Option<Child>>,
}

impl NatsCluster {
    fn new() -> Self {
        let mut cluster = Self {
            victim: 0,
            ports: (0..3).map(|_| support::free_port()).collect(),
            routes: (0..3).map(|_| support::free_port()).collect(),
            dir: scratch_dir("nats-cluster"),
            nodes: vec![None, None, None],
        };
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster
    }

    fn url(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        urls.join(",")
    }

    fn start_node(&mut self, i: usize) {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.ports[i].to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join(format!("n{i}")))
            .args(["-n", &format!("n{i}"), "--cluster_name", "faults"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", self.routes[i])])
            .args(["--routes", &routes.join(",")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (scripts/services.sh up nats installs it)");
        self.nodes[i] = Some(child);
        wait_port(self.ports[i], true, Duration::from_secs(20), "nats-server");
    }
}

impl Server for NatsCluster {
    fn start(&mut self) {
        self.start_node(self.victim);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.nodes[self.victim].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_port(
            self.ports[self.victim],
            false,
            Duration::from_secs(10),
            "nats-server",
        );
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for mut c in self.nodes.iter_mut().filter_map(Option::take) {
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
async fn publish_through_restart(queue: Queue, server: Box<dyn Server>) {
    publish_through_restart_after(queue, server, Duration::ZERO).await;
}

/// As [`publish_through_restart`], the first kill coming at least `settle` after the topic
/// and group were created.
async fn publish_through_restart_after(
    queue: Queue,
    mut server: Box<dyn Server>,
    settle: Duration,
) {
    let t = unique_topic("restart");
    queue.ensure_group(&t, "g").await.unwrap();
    tokio::time::sleep(settle).await;
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
        let (acked, errors) = (acked.clone(), errors.clone());
        async move {
            let deadline = Instant::now() + WAIT * 2;
            while acked.lock().unwrap().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "only {} publishes acknowledged; last errors: {:?}",
                    acked.lock().unwrap().len(),
                    errors
                        .lock()
                        .unwrap()
                        .iter()
                        .rev()
                        .take(3)
                        .collect::<Vec<_>>()
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
    // A clustered server may still be electing the stream's leader: subscribing and receiving
    // fail retryably meanwhile, as a consumer would see them.
    let deadline = Instant::now() + WAIT;
    let mut sub = loop {
        match queue.subscribe(&t, "g").await {
            Ok(sub) => break sub,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                eprintln!("subscribing again after: {e}");
            }
            Err(e) => panic!("cannot subscribe after the restart: {e}"),
        }
    };
    let mut got = BTreeSet::new();
    while !acked.is_subset(&got) {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(Ok(d))) => {
                got.insert(d.message().id.clone());
                d.ack().await.unwrap();
            }
            Ok(Some(Err(e))) if e.is_retryable() => eprintln!("receiving again after: {e}"),
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
    let (queue, server) = own_nats().await;
    publish_through_restart(queue, server).await;
}

/// A nats-server of the test's own, started, and a queue on it.
async fn own_nats() -> (Queue, Box<dyn Server>) {
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
    (Queue::new(broker), Box::new(server))
}

/// A RabbitMQ node of the test's own, started, and a queue on it whose groups get queues of
/// `queue_type`.
async fn own_rabbitmq(queue_type: corekit::queue::QueueType) -> (Queue, Box<dyn Server>) {
    use corekit::queue::TopicOptions;
    support::RABBITMQ.require();
    let mut server = Rabbit::new();
    server.start();
    let broker =
        RabbitMqBroker::builder(format!("amqp://guest:guest@127.0.0.1:{}/%2f", server.port))
            .operation_timeout(OP_TIMEOUT)
            .topic_options(TopicOptions::default().queue_type(queue_type))
            .build()
            .await
            .unwrap();
    (Queue::new(broker), Box::new(server))
}

/// A RabbitMQ node of the test's own, killed and restarted during a publish loop, with group
/// queues of `queue_type`; the first kill at least `settle` after the queue was declared.
async fn rabbitmq_restart(queue_type: corekit::queue::QueueType, settle: Duration) {
    let (queue, server) = own_rabbitmq(queue_type).await;
    publish_through_restart_after(queue, server, settle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_loses_no_acknowledged_publish() {
    rabbitmq_restart(corekit::queue::QueueType::Classic, Duration::ZERO).await;
}

/// The same on a quorum queue: what RabbitMQ confirmed survives the node's SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_quorum_restart_loses_no_acknowledged_publish() {
    // RabbitMQ 3.10 registers a new quorum queue's Raft member on disk a few seconds after
    // declaring it: a SIGKILL 3 s after the declaration left the queue without a leader for
    // good after the restart (seen here), one 15 s after it recovered every time.
    rabbitmq_restart(corekit::queue::QueueType::Quorum, Duration::from_secs(15)).await;
}

/// The node the client is connected to, in a three-node JetStream cluster, SIGKILLed and
/// restarted under an R3 stream: the client moves to another node, and every acknowledged
/// publish is read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_node_loss_loses_no_acknowledged_publish() {
    use corekit::queue::TopicOptions;
    support::NATS.require();
    let mut cluster = tokio::task::block_in_place(NatsCluster::new);
    // The cluster elects its JetStream leader after the nodes meet: retry the first connect.
    let deadline = Instant::now() + Duration::from_secs(30);
    let broker = loop {
        match NatsBroker::builder(cluster.url())
            .operation_timeout(OP_TIMEOUT)
            .topic_options(TopicOptions::default().replication(3))
            .build()
            .await
        {
            Ok(b) => break b,
            Err(e) if Instant::now() < deadline => {
                eprintln!("cluster not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("no JetStream cluster within 30 s: {e}"),
        }
    };
    // The node to kill is the one the client is connected to.
    let connected = broker.client().server_info().port;
    cluster.victim = cluster
        .ports
        .iter()
        .position(|p| *p == connected)
        .expect("one of ours");
    let queue = Queue::new(broker);
    // Streams need the meta leader too.
    let probe = unique_topic("probe");
    while let Err(e) = queue.ensure_topic(&probe).await {
        assert!(
            Instant::now() < deadline,
            "no JetStream meta leader within 30 s: {e}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    publish_through_restart(queue.clone(), Box::new(cluster)).await;
    let client = queue.downcast_ref::<NatsBroker>().unwrap().client();
    let connects = client
        .statistics()
        .connects
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        connects >= 2,
        "the client reconnected to another node ({connects} connects)"
    );
    assert_ne!(client.server_info().port, connected);
}

/// Delayed messages waiting (some held by the forwarder) while the server is SIGKILLed and
/// restarted: every one is delivered, none before it was due. A `Consumer` runs the forwarder,
/// as in a service, and is started again if its subscription ends.
pub(crate) async fn delayed_through_restart(queue: Queue, mut server: Box<dyn Server>) {
    use std::collections::BTreeMap;
    use std::time::{SystemTime, UNIX_EPOCH};
    const TOTAL: usize = 200;
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let queue = queue.with_delay_topics(&unique_topic("drestart")).unwrap();
    let t = unique_topic("delayed_restart");
    queue.ensure_group(&t, "g").await.unwrap();
    // Due 3 to 9 s from now, in four batches.
    let mut due: BTreeMap<String, u64> = BTreeMap::new();
    for b in 0..4u64 {
        let delay = Duration::from_millis(3_000 + b * 2_000);
        let batch: Vec<Message> = (0..TOTAL / 4)
            .map(|i| Message::new(format!("{b}-{i}")))
            .collect();
        let at = now_ms() + delay.as_millis() as u64;
        for m in &batch {
            due.insert(m.id.clone(), at);
        }
        queue.publish_batch_after(&t, batch, delay).await.unwrap();
    }
    let handled: Arc<Mutex<BTreeMap<String, (u64, u32)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (queue, t, handled, stop) = (queue.clone(), t.clone(), handled.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let handled = handled.clone();
                let stopping = {
                    let stop = stop.clone();
                    async move {
                        while !stop.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                };
                let run = queue.consumer(&t, "g").run(
                    move |m: Message| {
                        let handled = handled.clone();
                        async move {
                            let at = now_ms();
                            let mut h = handled.lock().unwrap();
                            let e = h.entry(m.id.clone()).or_insert((at, 0));
                            e.1 += 1;
                            Ok::<(), std::io::Error>(())
                        }
                    },
                    stopping,
                );
                if let Err(e) = run.await {
                    eprintln!("consumer ended ({e}); starting it again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        })
    };
    // The forwarder has taken the first level's messages; none is due yet.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(handled.lock().unwrap().is_empty(), "nothing due yet");
    tokio::task::block_in_place(|| {
        server.kill();
        std::thread::sleep(Duration::from_secs(1));
        server.start();
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while handled.lock().unwrap().len() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "lost: {} of {TOTAL} delayed messages never delivered after the restart",
            TOTAL - handled.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    consumer.await.unwrap();
    let handled = handled.lock().unwrap().clone();
    let mut late = Vec::new();
    for (id, (at, _)) in &handled {
        let due = due[id];
        assert!(*at >= due, "{id} delivered {} ms early", due - at);
        late.push(at - due);
    }
    late.sort_unstable();
    let twice: u32 = handled.values().map(|(_, n)| n - 1).sum();
    eprintln!(
        "{}: {TOTAL} delayed, lost 0, none early, {twice} handled twice, lateness p50 {} ms, max {} ms (the restart included)",
        queue.backend_name(),
        late[late.len() / 2],
        late[late.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_loses_no_delayed_message() {
    let (queue, server) = own_nats().await;
    delayed_through_restart(queue, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_restart_loses_no_delayed_message() {
    let (queue, server) = own_rabbitmq(corekit::queue::QueueType::Classic).await;
    delayed_through_restart(queue, server).await;
}
