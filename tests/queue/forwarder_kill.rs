//! A delay forwarder process SIGKILLed while it holds delayed messages, on every networked
//! broker: a child process (this test binary, re-run) forwards the queue's delay levels; the
//! test publishes 200 messages due 2-6 s ahead, kills the child once half arrived, then
//! runs a forwarder of its own. Counted: every message arrived (lost = 0), none before its due
//! time; deliveries beyond the first (sent on by the child but not yet acknowledged on their
//! level, or on Kafka not yet committed) are reported.

use crate::consumer_kill::config;
use crate::support;
use corekit::queue::conformance::unique_topic;
use corekit::queue::{Message, Queue};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD: &str = "COREKIT_FORWARDER_KILL_CHILD";
const TOTAL: u64 = 200;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn queue(url: &str, levels: &str) -> Queue {
    Queue::from_config(&config(url))
        .await
        .unwrap()
        .with_delay_topics(levels)
        .unwrap()
}

/// The child: forwards the delay levels named by its spec for ever. Does nothing unless
/// spawned by [`kill_forwarder`].
#[test]
fn forwarder_child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (url, levels) = spec.split_once('|').unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let queue = queue(url, levels).await;
        let _ = queue
            .delay_forwarder()
            .run(std::future::pending::<()>())
            .await;
    });
}

/// The child process, SIGKILLed when dropped (also when the test fails before killing it).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

async fn kill_forwarder(url: String) {
    let levels = unique_topic("fkill_levels");
    let queue = queue(&url, &levels).await;
    let topic = unique_topic("fkill");
    let mut sub = queue.subscribe(&topic, "g").await.unwrap();
    let mut child = Some(Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["forwarder_kill::forwarder_child", "--exact", "--nocapture"])
            .env(CHILD, format!("{url}|{levels}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    ));
    // Due times on whole milliseconds, 20 ms apart, from 2 s ahead.
    let start = now_ms() + 2_000;
    let mut due = BTreeMap::new();
    for i in 0..TOTAL {
        let at = start + i * 20;
        due.insert(i.to_string(), at);
        queue
            .publish_at(
                &topic,
                Message::new(i.to_string()),
                UNIX_EPOCH + Duration::from_millis(at),
            )
            .await
            .unwrap();
    }
    let mut arrived: BTreeMap<String, u32> = BTreeMap::new();
    let mut early = Vec::new();
    let mut forwarder = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrived.len() < TOTAL as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(next) = tokio::time::timeout(left, sub.next()).await else {
            panic!(
                "lost: {} of {TOTAL} delayed messages never arrived",
                TOTAL as usize - arrived.len()
            );
        };
        let d = next.unwrap().unwrap();
        let at = now_ms();
        let body = d.message().text().unwrap().to_owned();
        if at < due[&body] {
            early.push((body.clone(), due[&body] - at));
        }
        *arrived.entry(body).or_default() += 1;
        d.ack().await.unwrap();
        if forwarder.is_none() && arrived.len() >= TOTAL as usize / 2 {
            drop(child.take()); // SIGKILL, while it holds the rest
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let run = queue.delay_forwarder().run(async {
                let _ = stopped.await;
            });
            forwarder = Some((stop, tokio::spawn(run)));
        }
    }
    // Then what else the second forwarder sends again, until 3 s pass with nothing.
    while let Ok(Some(next)) = tokio::time::timeout(Duration::from_secs(3), sub.next()).await {
        let d = next.unwrap();
        *arrived
            .entry(d.message().text().unwrap().to_owned())
            .or_default() += 1;
        d.ack().await.unwrap();
    }
    assert!(early.is_empty(), "delivered early (id, ms): {early:?}");
    let (stop, run) = forwarder.expect("the child was killed");
    let _ = stop.send(());
    let report = run.await.unwrap().unwrap();
    let twice = arrived.values().filter(|n| **n > 1).count();
    let extra: u32 = arrived.values().map(|n| n - 1).sum();
    eprintln!(
        "{}: forwarder killed after {} of {TOTAL} arrived; lost 0, none early, {twice} more \
         than once ({extra} extra deliveries); the second forwarder {report:?}",
        queue.backend_name(),
        TOTAL / 2
    );
    assert!(
        report.delivered + report.moved > 0,
        "the second forwarder took over"
    );
    let _ = queue.delete_topic(&topic).await;
    for level in ["1s", "8s", "64s", "512s"] {
        let level = format!("{levels}.{level}");
        let _ = queue.delete_topic(&queue.dead_letter_topic(&level)).await;
        let _ = queue.delete_topic(&level).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_forwarder_killed_loses_no_delayed_message() {
    kill_forwarder(format!("kafka://{}", support::KAFKA.require())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_forwarder_killed_loses_no_delayed_message() {
    kill_forwarder(support::RABBITMQ.require()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_forwarder_killed_loses_no_delayed_message() {
    kill_forwarder(support::NATS.require()).await;
}
