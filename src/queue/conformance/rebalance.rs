//! Consumers joining and leaving a group while it works: nothing lost, nothing handled by two
//! consumers at once.

use super::{WAIT, cleanup, unique_topic};
use crate::queue::{ConsumeReport, Message, Queue, TopicOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Each handling: message, consumer, start, end.
type Log = Arc<Mutex<Vec<(String, usize, Instant, Instant)>>>;

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<crate::Result<ConsumeReport>>,
}

impl Running {
    async fn stop(self) -> ConsumeReport {
        let _ = self.stop.send(());
        self.task.await.expect("consumer task").expect("run")
    }
}

fn start(queue: &Queue, topic: &str, n: usize, log: &Log) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let log = log.clone();
    let consumer = queue.consumer(topic, "g").concurrency(2);
    let task = tokio::spawn(consumer.run(
        move |m: Message| {
            let log = log.clone();
            async move {
                let begun = Instant::now();
                tokio::time::sleep(Duration::from_millis(200)).await;
                let body = m.text().expect("a UTF-8 payload").to_owned();
                log.lock()
                    .expect("lock")
                    .push((body, n, begun, Instant::now()));
                Ok::<_, crate::Error>(())
            }
        },
        async move {
            let _ = stopped.await;
        },
    ));
    Running { stop, task }
}

async fn until_handled(log: &Log, at_least: usize) {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        let distinct: BTreeSet<String> = log
            .lock()
            .expect("lock")
            .iter()
            .map(|e| e.0.clone())
            .collect();
        if distinct.len() >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {at_least} handled",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two consumers of a group share 300 messages (200 ms of work each, 2 at a time; what a
/// consumer has prefetched outlasts a rebalance), a third joins, one of the
/// first leaves: every message is handled, and no message is in two consumers' handlers at
/// the same time (a rebalance waits for started handlers; a message handled again after one
/// finished is the documented at-least-once redelivery, counted, not failed).
pub async fn group_rebalances_without_overlap(queue: Queue) {
    let t = unique_topic("rebalance");
    queue
        .ensure_topic_with(&t, &TopicOptions::default().partitions(6))
        .await
        .expect("ensure topic with");
    queue.ensure_group(&t, "g").await.expect("ensure group");
    let total = 300;
    queue
        .publish_batch(
            &t,
            (0..total)
                .map(|i| Message::new(format!("{i}")).with_key(format!("k{i}")))
                .collect(),
        )
        .await
        .expect("publish batch");
    let log: Log = Arc::default();
    let a = start(&queue, &t, 0, &log);
    let b = start(&queue, &t, 1, &log);
    until_handled(&log, 30).await;
    let c = start(&queue, &t, 2, &log);
    until_handled(&log, total / 2).await;
    let left = a.stop().await;
    until_handled(&log, total).await;
    let (b, c) = (b.stop().await, c.stop().await);

    let mut by_message: BTreeMap<String, Vec<(usize, Instant, Instant)>> = BTreeMap::new();
    for (m, n, begun, ended) in log.lock().expect("lock").iter().cloned() {
        by_message.entry(m).or_default().push((n, begun, ended));
    }
    let mut overlaps = Vec::new();
    let mut again = 0;
    for (m, runs) in &mut by_message {
        runs.sort_by_key(|r| r.1);
        again += runs.len() - 1;
        for pair in runs.windows(2) {
            if pair[0].0 != pair[1].0 && pair[1].1 < pair[0].2 {
                overlaps.push((m.clone(), pair[0].0, pair[1].0));
            }
        }
    }
    let handed_back = left.handed_back + b.handed_back + c.handed_back;
    eprintln!(
        "rebalance: {} messages, {again} handled again, {handed_back} handed back unhandled",
        by_message.len()
    );
    assert_eq!(by_message.len(), total, "every message handled");
    assert!(
        overlaps.is_empty(),
        "{} messages were in two consumers' handlers at once (message, consumers): {:?}",
        overlaps.len(),
        &overlaps[..overlaps.len().min(10)]
    );
    cleanup(&queue, &[&t]).await;
}
