//! Kafka with durable storage: Tansu brokers of the test's own keeping their log in the
//! project's SeaweedFS (`--storage-engine s3://BUCKET/`), SIGKILLed twice while 5,000 messages
//! are published to a 3-partition topic and a consumer group reads them. Counted: every
//! acknowledged publish is consumed (lost = 0); duplicates are reported. On a failure a new
//! group reads the whole log, to tell a broker that lost messages from a consumer that
//! skipped them.

use crate::support;
use corekit::queue::conformance::unique_topic;
use corekit::queue::{KafkaBroker, Message, Queue, TopicOptions};
use corekit::storage::S3Storage;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A Tansu broker on its own port, its data in an S3 bucket, its output in `log`.
struct DurableTansu {
    port: u16,
    bucket: String,
    log: std::path::PathBuf,
    child: Option<Child>,
}

impl DurableTansu {
    fn start(&mut self) {
        let address = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(support::tansu_bin())
            .args(["broker", "--listener-url", &address])
            .args(["--advertised-listener-url", &address])
            .args(["--storage-engine", &format!("s3://{}/", self.bucket)])
            .env("AWS_ACCESS_KEY_ID", "corekit")
            .env("AWS_SECRET_ACCESS_KEY", "corekit-secret")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT", support::S3.require())
            .env("AWS_ALLOW_HTTP", "true")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .expect("tansu log"),
            )
            .spawn()
            .expect("tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !support::answers(&format!("127.0.0.1:{}", self.port)) {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the broker process has exited by itself, and the end of its log.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        Some(format!("{status}; log tail: {:?}", tail))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DurableTansu {
    fn drop(&mut self) {
        self.kill();
        // Kept when the test fails, for the broker's side of the story.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Every message id in `topic`'s log, read by a new group until 10 s pass without one.
async fn audit(queue: &Queue, topic: &str) -> std::collections::BTreeSet<String> {
    use futures_util::StreamExt;
    let mut sub = queue
        .subscribe(topic, &support::unique("audit"))
        .await
        .unwrap();
    let mut ids = std::collections::BTreeSet::new();
    while let Ok(Some(Ok(d))) = tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
        ids.insert(d.message().id.clone());
        d.ack().await.unwrap();
    }
    ids
}

/// A bucket of the test's own and `n` brokers keeping their log in it, started.
async fn brokers_on_one_log(n: usize) -> Vec<DurableTansu> {
    let bucket = support::unique("tansu");
    let s3 = S3Storage::builder(&bucket)
        .endpoint(support::S3.require())
        .credentials("corekit", "corekit-secret")
        .build()
        .await
        .unwrap();
    s3.ensure_bucket().await.unwrap();
    (0..n)
        .map(|i| {
            let mut broker = DurableTansu {
                port: support::free_port(),
                bucket: bucket.clone(),
                log: std::env::temp_dir().join(format!("{bucket}-{i}.log")),
                child: None,
            };
            tokio::task::block_in_place(|| broker.start());
            broker
        })
        .collect()
}

/// Whether a broker meant to be running exited by itself.
fn exited(brokers: &mut [DurableTansu]) -> Option<String> {
    brokers
        .iter_mut()
        .filter(|b| b.child.is_some())
        .find_map(DurableTansu::exited)
}

/// 5,000 messages published in batches of 50 (each batch retried until acknowledged) to a
/// 3-partition topic while a group of 4 lanes consumes; `fault(step, brokers)` runs once 1,500
/// (step 0) and once 3,500 (step 1) are acknowledged. Asserts every acknowledged publish is
/// consumed; returns (duplicates, failed batches).
async fn publish_through_faults(
    brokers: &mut [DurableTansu],
    fault: impl Fn(usize, &mut [DurableTansu]),
) -> (u32, u32) {
    let bootstrap: Vec<String> = brokers
        .iter()
        .map(|b| format!("127.0.0.1:{}", b.port))
        .collect();
    let queue = Queue::new(
        KafkaBroker::builder(bootstrap.join(","))
            .session_timeout(Duration::from_secs(6))
            .operation_timeout(Duration::from_secs(5))
            .topic_options(TopicOptions::default().partitions(3))
            // Tansu 0.6 with durable storage loses acknowledged messages from an idempotent
            // producer across a SIGKILL: with corekit's default (idempotence on) 17, 18 and 23
            // of 5,000 acknowledged publishes were missing from the log in 3 of 6 runs (a new
            // group reading the whole log did not find them: the broker, not the consumer);
            // with it off, 0 in 4 of 4. Apache Kafka keeps producer state; this broker does
            // not, so the test runs it as Tansu users must.
            .set("enable.idempotence", "false")
            .build()
            .await
            .unwrap(),
    );
    let topic = unique_topic("durable");
    queue.ensure_topic(&topic).await.unwrap();

    // The group: every delivery counted by message id, acknowledged after counting.
    let seen: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let consumer = {
        let seen = seen.clone();
        queue.consumer(&topic, "readers").concurrency(4).run(
            move |m: Message| {
                let seen = seen.clone();
                async move {
                    *seen.lock().unwrap().entry(m.id.clone()).or_default() += 1;
                    Ok::<(), std::io::Error>(())
                }
            },
            std::future::pending::<()>(),
        )
    };
    let consumer = tokio::spawn(consumer);

    let total = 5_000;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let publisher = {
        let (queue, topic, acked) = (queue.clone(), topic.clone(), acked.clone());
        tokio::spawn(async move {
            let mut failures = 0u32;
            for chunk in 0..total / 50 {
                let batch: Vec<Message> = (0..50)
                    .map(|i| {
                        let n = chunk * 50 + i;
                        Message::new(n.to_string()).with_key(format!("k{}", n % 17))
                    })
                    .collect();
                let ids: Vec<String> = batch.iter().map(|m| m.id.clone()).collect();
                loop {
                    match queue.publish_batch(&topic, batch.clone()).await {
                        Ok(()) => break,
                        Err(e) => {
                            assert!(e.is_retryable(), "publish failed for good: {e}");
                            failures += 1;
                            assert!(failures < 60, "publishing never recovered: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                acked.lock().unwrap().extend(ids);
            }
            failures
        })
    };
    for (step, at) in [1_500, 3_500].into_iter().enumerate() {
        while acked.lock().unwrap().len() < at {
            if let Some(how) = exited(brokers) {
                panic!("a broker exited by itself ({how}); not a corekit loss");
            }
            assert!(!publisher.is_finished(), "the publisher stopped early");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::task::block_in_place(|| fault(step, brokers));
    }
    while !publisher.is_finished() {
        if let Some(how) = exited(brokers) {
            panic!("a broker exited by itself after a restart ({how}); not a corekit loss");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failures = publisher.await.expect("the publisher did not panic");
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert_eq!(acked.len(), total);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = {
            let seen = seen.lock().unwrap();
            acked.iter().filter(|id| !seen.contains_key(*id)).count()
        };
        if missing == 0 {
            break;
        }
        if Instant::now() >= deadline {
            // Which side lost them: a new group reads the whole log.
            let missing: Vec<&String> = {
                let seen = seen.lock().unwrap();
                acked.iter().filter(|id| !seen.contains_key(*id)).collect()
            };
            let in_log = audit(&queue, &topic).await;
            let present = missing.iter().filter(|id| in_log.contains(**id)).count();
            panic!(
                "lost: {} of {total} acknowledged publishes never consumed by the group; a new \
                 group reading the log finds {present} of them ({} messages in the log)",
                missing.len(),
                in_log.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consumer.abort();
    let duplicates: u32 = seen.lock().unwrap().values().map(|n| n - 1).sum();
    (duplicates, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_broker_killed_twice_loses_no_acknowledged_publish() {
    let mut brokers = brokers_on_one_log(1).await;
    // SIGKILLed and restarted a second later, twice.
    let (duplicates, failures) = publish_through_faults(&mut brokers, |_, brokers| {
        brokers[0].kill();
        std::thread::sleep(Duration::from_secs(1));
        brokers[0].start();
    })
    .await;
    eprintln!(
        "durable kafka: 5000 acknowledged, lost 0, {duplicates} delivered more than once, \
         {failures} publish batches failed (retryably) and were sent again across 2 kills"
    );
}

impl crate::faults::Server for DurableTansu {
    fn start(&mut self) {
        DurableTansu::start(self);
    }
    fn kill(&mut self) {
        DurableTansu::kill(self);
    }
}

/// Delayed messages waiting on a durable broker SIGKILLed and restarted: none lost, none early
/// (`faults::delayed_through_restart`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_broker_killed_loses_no_delayed_message() {
    let mut brokers = brokers_on_one_log(1).await;
    let broker = brokers.remove(0);
    let queue = Queue::new(
        KafkaBroker::builder(format!("127.0.0.1:{}", broker.port))
            .session_timeout(Duration::from_secs(6))
            .operation_timeout(Duration::from_secs(5))
            // As in the test above: Tansu keeps no idempotent producer state across a kill.
            .set("enable.idempotence", "false")
            .build()
            .await
            .unwrap(),
    );
    crate::faults::delayed_through_restart(queue, Box::new(broker)).await;
}
