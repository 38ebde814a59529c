//! Sending dead letters back to the consumer group that gave up on them.

use super::message::{
    DLQ_ATTEMPTS_HEADER, DLQ_GROUP_HEADER, DLQ_REASON_HEADER, DLQ_TOPIC_HEADER, FOR_GROUP_HEADER,
    new_id,
};
use super::{DEAD_LETTER_GROUP, Queue};
use crate::Result;
use futures_util::StreamExt;
use std::time::Duration;

/// Marks the messages of one redrive run, so the run stops when one comes back dead again.
const RUN_HEADER: &str = "corekit-redrive";

/// The least time given to the first dead letter: joining a consumer group takes seconds on
/// Kafka.
const FIRST_WAIT: Duration = Duration::from_secs(10);

impl Queue {
    /// Sends the dead letters of `topic` back to it once their cause is fixed: each goes, as a
    /// first attempt without its `corekit-dlq-*` headers, to the consumer group that rejected
    /// it only (other groups skip it); one without a group header goes to every group. Reads
    /// the dead-letter topic (as [`DEAD_LETTER_GROUP`]) until nothing arrives for `idle` (for
    /// the first, at least 10 s: a consumer group may take that long to join), or a message
    /// this run sent comes back dead again; returns how many it sent.
    ///
    /// Each message is published before its dead letter is acknowledged: a crash in between
    /// sends it twice, never loses it. A redriven message gets a new id (JetStream would drop
    /// the old one as a duplicate).
    ///
    /// # Errors
    /// The broker's, for subscribing, publishing or acknowledging; messages sent so far stay
    /// sent.
    pub async fn redrive(&self, topic: &str, idle: Duration) -> Result<u64> {
        let dlq = self.dead_letter_topic(topic);
        let run = new_id();
        let mut dead = self.subscribe(&dlq, DEAD_LETTER_GROUP).await?;
        let mut sent = 0;
        let mut wait = idle.max(FIRST_WAIT);
        while let Ok(Some(delivery)) = tokio::time::timeout(wait, dead.next()).await {
            wait = idle;
            let delivery = delivery?;
            let mut message = delivery.message().clone();
            if message.headers.get(RUN_HEADER) == Some(&run) {
                // Sent by this run and dead again: leave it (unsettled, it stays) and stop.
                break;
            }
            let group = message.headers.remove(DLQ_GROUP_HEADER);
            for header in [DLQ_REASON_HEADER, DLQ_ATTEMPTS_HEADER, DLQ_TOPIC_HEADER] {
                message.headers.remove(header);
            }
            match group {
                Some(group) => message.headers.insert(FOR_GROUP_HEADER.into(), group),
                None => message.headers.remove(FOR_GROUP_HEADER),
            };
            message.headers.insert(RUN_HEADER.into(), run.clone());
            message.id = new_id();
            message.attempt = 0;
            self.publish(topic, message).await?;
            delivery.ack().await?;
            sent += 1;
        }
        tracing::info!(topic, dead_letters = %dlq, sent, "queue: redrive done");
        Ok(sent)
    }
}
