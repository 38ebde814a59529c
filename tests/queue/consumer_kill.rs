//! A consumer process SIGKILLed mid-batch, on every networked broker: a child process (this
//! test binary, re-run) handles messages with 4 lanes, each handled id written to a file
//! before the handler returns; the test kills it partway, then a consumer of the same group
//! finishes. Counted: every published message was handled by one or the other (lost = 0);
//! messages handled twice (the ones the child ran but had not acknowledged) are reported.

use crate::support;
use corekit::config::EnvConfig;
use corekit::queue::conformance::unique_topic;
use corekit::queue::{Message, Queue, QueueConfig};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD: &str = "COREKIT_CONSUMER_KILL_CHILD";
const TOTAL: usize = 200;

/// The settings both processes use: redelivery after 3 s on NATS, a 6 s session on Kafka, so
/// the dead consumer's messages come back quickly.
pub(crate) fn config(url: &str) -> QueueConfig {
    let vars = [
        ("QUEUE_URL", url),
        ("QUEUE_ACK_WAIT", "3s"),
        ("QUEUE_KAFKA_SESSION_TIMEOUT", "6s"),
        ("QUEUE_CONCURRENCY", "4"),
        ("QUEUE_PREFETCH", "16"),
    ];
    QueueConfig::from_vars(
        "QUEUE_",
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap()
}

/// The child: consumes `topic` in group `g` for ever, appending each handled message's
/// payload to `file`, 20 ms per message. Does nothing unless spawned by [`kill_mid_batch`].
#[test]
fn consumer_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.splitn(4, '|');
    let (url, topic, dedupe, file) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let queue = Queue::from_config(&config(&url)).await.unwrap();
        let out = Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .unwrap(),
        ));
        let _ = consumer(&queue, &topic, &dedupe)
            .await
            .run(
                move |m: Message| {
                    let out = out.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let mut f = out.lock().unwrap();
                        writeln!(f, "{}", m.text().unwrap()).unwrap();
                        f.flush().unwrap();
                        Ok::<(), std::io::Error>(())
                    }
                },
                std::future::pending::<()>(),
            )
            .await;
    });
}

/// The group's consumer, de-duplicating through Redis at `dedupe` when it is not empty (a
/// short lease, so the killed child's claims end soon).
async fn consumer(queue: &Queue, topic: &str, dedupe: &str) -> corekit::queue::Consumer {
    let consumer = queue.consumer(topic, "g");
    if dedupe.is_empty() {
        return consumer;
    }
    let ids = corekit::queue::RedisDedupe::connect(dedupe, Duration::from_secs(5))
        .await
        .unwrap();
    consumer
        .dedupe(ids, Duration::from_secs(600))
        .dedupe_lease(Duration::from_secs(3))
}

async fn kill_mid_batch(url: String) {
    kill_mid_batch_with(url, "").await;
}

/// Kills the child mid-batch; with a Redis URL in `dedupe`, both consumers de-duplicate.
/// Returns how many messages were handled twice.
async fn kill_mid_batch_with(url: String, dedupe: &str) -> u32 {
    let queue = Queue::from_config(&config(&url)).await.unwrap();
    let topic = unique_topic("killed");
    queue.ensure_group(&topic, "g").await.unwrap();
    let batch = (0..TOTAL).map(|i| Message::new(i.to_string())).collect();
    queue.publish_batch(&topic, batch).await.unwrap();

    let file = std::env::temp_dir().join(support::unique("handled"));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["consumer_kill::consumer_child", "--exact", "--nocapture"])
        .env(CHILD, format!("{url}|{topic}|{dedupe}|{}", file.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = |f: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    // Kill it once it has handled a quarter, with more in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&file).len() < TOTAL / 4 {
        assert!(Instant::now() < deadline, "the child handled too little");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let by_child = lines(&file);
    let _ = std::fs::remove_file(&file);

    let handled: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    for id in &by_child {
        *handled.lock().unwrap().entry(id.clone()).or_default() += 1;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let finisher = {
        let handled = handled.clone();
        let consumer = consumer(&queue, &topic, dedupe).await;
        tokio::spawn(consumer.run(
            move |m: Message| {
                let handled = handled.clone();
                async move {
                    *handled
                        .lock()
                        .unwrap()
                        .entry(m.text().unwrap().to_owned())
                        .or_default() += 1;
                    Ok::<(), std::io::Error>(())
                }
            },
            async {
                let _ = stopped.await;
            },
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while handled.lock().unwrap().len() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "lost: {} of {TOTAL} messages never handled ({} by the killed child)",
            TOTAL - handled.lock().unwrap().len(),
            by_child.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    finisher.await.unwrap().unwrap();
    let twice: u32 = handled.lock().unwrap().values().map(|n| n - 1).sum();
    eprintln!(
        "{}{}: {TOTAL} published, lost 0, {} handled before the SIGKILL, {twice} handled twice",
        queue.backend_name(),
        if dedupe.is_empty() {
            ""
        } else {
            " with dedupe"
        },
        by_child.len()
    );
    let _ = queue.delete_topic(&topic).await;
    twice
}

/// With de-duplication in Redis, the messages the killed child handled but had not
/// acknowledged are not handled again. The one way left to run twice is a kill between a
/// handler's return and its id being marked done (one Redis call of the ~20 ms each message
/// takes here), so at most one per lane.
async fn dedupe_after_kill(url: String) {
    let redis = support::REDIS.require();
    let twice = kill_mid_batch_with(url, &redis).await;
    assert!(
        twice <= 4,
        "{twice} messages handled twice with de-duplication"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_consumer_killed_with_dedupe_handles_each_id_once() {
    dedupe_after_kill(support::RABBITMQ.require()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_consumer_killed_with_dedupe_handles_each_id_once() {
    dedupe_after_kill(support::NATS.require()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_killed_with_dedupe_handles_each_id_once() {
    dedupe_after_kill(format!("kafka://{}", support::KAFKA.require())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_killed_mid_batch_loses_nothing() {
    kill_mid_batch(format!("kafka://{}", support::KAFKA.require())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_consumer_killed_mid_batch_loses_nothing() {
    kill_mid_batch(support::RABBITMQ.require()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_consumer_killed_mid_batch_loses_nothing() {
    kill_mid_batch(support::NATS.require()).await;
}
