//! A dependency of the handler (a Redis the test runs, kills and restarts) goes down while
//! messages arrive: the consumer pauses instead of spending their attempts, dead-letters
//! nothing, and handles every message, as its first attempt, once the dependency is back.

use crate::support::{self, RedisProcess};
use corekit::cache::{Cache, RedisStore};
use corekit::queue::conformance::unique_topic;
use corekit::queue::{MemoryBroker, Message, NatsBroker, Queue};
use std::time::{Duration, Instant};

const MESSAGES: usize = 8;

async fn an_outage_spends_no_attempts(queue: Queue, down_for: Duration) {
    let port = support::free_port();
    let redis = RedisProcess::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    let store = RedisStore::builder(url.clone())
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let cache = Cache::builder(store).build().unwrap();
    let topic = unique_topic("outage");
    queue.ensure_group(&topic, "g").await.unwrap();
    redis.kill();
    for i in 0..MESSAGES {
        queue
            .publish(&topic, Message::new(format!("m{i}")))
            .await
            .unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handler_cache = cache.clone();
    let run = tokio::spawn(
        queue
            .consumer(&topic, "g")
            .concurrency(4)
            .max_attempts(2)
            .backoff(Duration::from_millis(100), Duration::from_millis(800))
            .run(
                move |m: Message| {
                    let cache = handler_cache.clone();
                    async move {
                        // The attempt the handler saw, kept where the test can read it.
                        let body = String::from_utf8_lossy(&m.payload).into_owned();
                        cache.set(&format!("seen:{body}"), &m.attempt).await
                    }
                },
                async move {
                    let _ = stopped.await;
                },
            ),
    );
    tokio::time::sleep(down_for).await;
    let _redis = RedisProcess::start(port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempts = Vec::new();
    while Instant::now() < deadline {
        attempts.clear();
        for i in 0..MESSAGES {
            if let Ok(Some(a)) = cache.get::<u32>(&format!("seen:m{i}")).await {
                attempts.push(a);
            }
        }
        if attempts.len() == MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    let report = run.await.unwrap().unwrap();
    assert_eq!(
        attempts.len(),
        MESSAGES,
        "handled once Redis was back: {report:?}"
    );
    assert!(
        attempts.iter().all(|a| *a == 1),
        "every message handled as its first attempt: {attempts:?}"
    );
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    assert_eq!(report.retried, 0, "{report:?}");
    assert!(report.paused > 0, "the outage was met: {report:?}");
    let _ = queue.delete_topic(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_consumer_waits_out_a_dependency_outage() {
    an_outage_spends_no_attempts(Queue::new(MemoryBroker::new()), Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_consumer_holds_messages_past_the_ack_wait_during_an_outage() {
    // The outage outlasts the ack wait: without progress acks JetStream would redeliver.
    let broker = NatsBroker::builder(support::NATS.require())
        .ack_wait(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    an_outage_spends_no_attempts(Queue::new(broker), Duration::from_secs(6)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pausing_an_outage_spends_attempts() {
    let queue = Queue::new(MemoryBroker::new());
    let topic = unique_topic("nopause");
    queue.ensure_group(&topic, "g").await.unwrap();
    queue.publish(&topic, Message::new("x")).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        queue
            .consumer(&topic, "g")
            .max_attempts(2)
            .backoff(Duration::from_millis(10), Duration::from_millis(10))
            .pause_on_unavailable(false)
            .run(
                |_m: Message| async {
                    Err::<(), _>(corekit::Error::new(corekit::ErrorKind::Unavailable, "down"))
                },
                async move {
                    let _ = stopped.await;
                },
            ),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    let report = run.await.unwrap().unwrap();
    assert_eq!(
        (report.retried, report.dead_lettered, report.paused),
        (1, 1, 0),
        "{report:?}"
    );
}
