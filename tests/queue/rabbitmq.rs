use crate::support;
use corekit::ErrorKind;
use corekit::queue::{Message, Queue, RabbitMqBroker};

async fn queue() -> Queue {
    let url = support::RABBITMQ.require();
    Queue::new(RabbitMqBroker::builder(url).build().await.unwrap())
}

crate::queue_suite!();

#[tokio::test]
async fn a_message_no_group_would_receive_is_an_error_not_a_silent_drop() {
    let queue = queue().await;
    let t = corekit::queue::conformance::unique_topic("unrouted");
    let e = queue.publish(&t, Message::new("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("ensure_group"), "{e}");
    queue.ensure_group(&t, "g").await.unwrap();
    queue.publish(&t, Message::new("x")).await.unwrap();
    queue.delete_topic(&t).await.unwrap();
}

/// Set in the environment of [`shutdown_child`]'s process: the RabbitMQ address to proxy to.
const SHUTDOWN_CHILD: &str = "COREKIT_RABBITMQ_SHUTDOWN_CHILD";

/// The child half of [`no_panic_when_the_runtime_shuts_down_while_the_server_is_gone`]:
/// connects through a proxy living on its runtime, then drops the runtime, which takes the
/// proxy (so the server is gone for lapin) and the runtime away at once. Does nothing unless
/// spawned by that test.
#[test]
fn shutdown_child() {
    let Ok(upstream) = std::env::var(SHUTDOWN_CHILD) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let proxy = Proxy::start(upstream).await;
        let port = proxy.port;
        let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
        let queue = Queue::new(RabbitMqBroker::builder(url).build().await.unwrap());
        let t = corekit::queue::conformance::unique_topic("shutdown");
        queue.ensure_group(&t, "g").await.unwrap();
        queue.publish(&t, Message::new("x")).await.unwrap();
        // The server goes away (listener and connections closed): lapin starts reconnecting.
        proxy.down();
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        // The handle outlives the runtime, as a handle in a static or a leaked task would.
        std::mem::forget(queue);
    });
    drop(rt);
    // lapin notices the closed socket and tries to reconnect meanwhile.
    std::thread::sleep(std::time::Duration::from_secs(3));
    println!("child done");
}

/// Issue 14 #13: a RabbitMQ connection that is recovering when the runtime shuts down does not
/// panic (lapin's reconnect loop used the caller's runtime as it went away).
#[test]
fn no_panic_when_the_runtime_shuts_down_while_the_server_is_gone() {
    let url = support::RABBITMQ.require();
    let upstream = support::host_port(&url);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "rabbitmq::shutdown_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SHUTDOWN_CHILD, upstream)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("child done"),
        "child did not finish: {stdout} {stderr}"
    );
    assert!(!stderr.contains("panicked"), "a thread panicked: {stderr}");
    assert!(!stdout.contains("panicked"), "a thread panicked: {stdout}");
}

/// A TCP proxy to RabbitMQ on a fixed local port that can be taken down (listener and every
/// connection) and brought back, to make a connection recover without touching the server.
struct Proxy {
    port: u16,
    upstream: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let port = support::free_port();
        let proxy = Self {
            port,
            upstream,
            tasks: Default::default(),
        };
        proxy.up().await;
        proxy
    }

    async fn up(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                tasks.lock().unwrap().push(link);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn down(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Issue 14 #14: a consumer started while the connection is recovering waits for it (within
/// the operation timeout) and then consumes, instead of failing at once with "invalid
/// connection state: Connecting".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_during_recovery_waits_for_the_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let url = support::RABBITMQ.require();
    let proxy = Proxy::start(support::host_port(&url)).await;
    let broker =
        RabbitMqBroker::builder(format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port))
            .operation_timeout(std::time::Duration::from_secs(20))
            .build()
            .await
            .unwrap();
    let queue = Queue::new(broker);
    let t = corekit::queue::conformance::unique_topic("recovering");
    queue.ensure_group(&t, "g").await.unwrap();
    queue.publish(&t, Message::new("before")).await.unwrap();
    proxy.down();
    // Let lapin notice and start recovering.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(queue.ping().await.is_err(), "the connection is down");
    let handled = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let done = handled.clone();
    let consumer = queue.consumer(&t, "g");
    let run = tokio::spawn(async move {
        consumer
            .run(
                move |_m: Message| {
                    seen.fetch_add(1, Ordering::SeqCst);
                    std::future::ready(Ok::<(), corekit::Error>(()))
                },
                async move {
                    while done.load(Ordering::SeqCst) == 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            )
            .await
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        !run.is_finished(),
        "the consumer failed at once instead of waiting"
    );
    proxy.up().await;
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the consumer ran once the connection was back")
        .unwrap()
        .expect("run");
    assert!(handled.load(Ordering::SeqCst) >= 1, "{report:?}");
    proxy.down();
}

/// The whole suite again with every group on a quorum queue (RabbitMQ's replicated type; one
/// node here, as on 3.10 it may be).
mod quorum {
    use super::*;
    use corekit::queue::{QueueType, TopicOptions};
    use futures_util::StreamExt;

    pub(super) async fn queue() -> Queue {
        let url = support::RABBITMQ.require();
        Queue::new(
            RabbitMqBroker::builder(url)
                .topic_options(TopicOptions::default().queue_type(QueueType::Quorum))
                .build()
                .await
                .unwrap(),
        )
    }

    crate::queue_suite!();

    /// The queue really is a quorum queue: asking for it as classic is a `Conflict` that
    /// names both types; the quorum handle keeps working.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_get_quorum_queues_and_a_type_clash_is_a_clear_conflict() {
        let quorum = queue().await;
        let topic = support::unique("quorum");
        quorum.ensure_topic(&topic).await.unwrap();
        quorum.ensure_group(&topic, "g").await.unwrap();

        let classic = super::queue().await;
        let e = classic
            .ensure_group(&topic, "g")
            .await
            .expect_err("the queue exists as quorum");
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        assert!(e.to_string().contains("quorum"), "{e}");

        quorum.publish(&topic, Message::new("kept")).await.unwrap();
        let mut sub = quorum.subscribe(&topic, "g").await.unwrap();
        let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next())
            .await
            .expect("a delivery within 10 s")
            .expect("stream open")
            .unwrap();
        assert_eq!(delivery.message().text(), Some("kept"));
        delivery.ack().await.unwrap();
        quorum.delete_topic(&topic).await.unwrap();
    }
}

/// A delayed message for a topic no group receives cannot be delivered: after five failed
/// sends the forwarder dead-letters it, with the reason, to its level's dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_nobody_can_receive_is_dead_lettered() {
    use corekit::queue::{DEAD_LETTER_GROUP, DLQ_REASON_HEADER};
    use futures_util::StreamExt;
    use std::time::Duration;
    let prefix = corekit::queue::conformance::unique_topic("dnoroute");
    let queue = queue().await.with_delay_topics(&prefix).unwrap();
    let t = corekit::queue::conformance::unique_topic("nogroups");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let forwarder = queue.delay_forwarder();
    let run = tokio::spawn(async move {
        forwarder
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let sent = Message::new("for nobody");
    queue
        .publish_after(&t, sent.clone(), Duration::from_millis(200))
        .await
        .unwrap();
    let dlq = queue.dead_letter_topic(&format!("{prefix}.1s"));
    // The forwarder provisions it when it starts.
    let mut dead = loop {
        if let Ok(sub) = queue.subscribe(&dlq, DEAD_LETTER_GROUP).await {
            break sub;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = tokio::time::timeout(Duration::from_secs(30), dead.next())
        .await
        .expect("dead-lettered within 30 s")
        .unwrap()
        .unwrap();
    assert_eq!(d.message().payload, sent.payload);
    let reason = &d.message().headers[DLQ_REASON_HEADER];
    assert!(
        reason.contains(&t) && reason.contains("no queue"),
        "{reason}"
    );
    d.ack().await.unwrap();
    let _ = stop.send(());
    let report = run.await.unwrap().unwrap();
    assert_eq!(
        (report.dead_lettered, report.delivered),
        (1, 0),
        "{report:?}"
    );
    for level in ["1s", "8s", "64s", "512s"] {
        let _ = queue.delete_topic(&format!("{prefix}.{level}")).await;
        let _ = queue
            .delete_topic(&queue.dead_letter_topic(&format!("{prefix}.{level}")))
            .await;
    }
}
