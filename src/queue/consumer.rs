//! Handler-style consumption: bounded concurrency, per-key order, retries, dead letters,
//! graceful shutdown. Written once over [`Subscription`](super::Subscription).

use super::{Delivery, Message, Queue};
use crate::retry::Backoff;
use crate::{BoxError, Error, ErrorKind, Result};
use futures_util::{FutureExt, StreamExt};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Runs a handler over a topic for one consumer group; from [`Queue::consumer`].
///
/// - **Concurrency**: up to `concurrency` handlers at once; the subscription's prefetch bounds
///   what waits, so a slow handler slows fetching (backpressure) instead of filling memory.
/// - **Order per key**: messages with the same [`key`](Message::key) are handled one at a time,
///   in the order received; unkeyed messages go to whichever lane is free. A retried message is
///   delivered again after its backoff, behind later messages of its key: order holds for first
///   deliveries, not across retries.
/// - **Outcomes**: `Ok` acknowledges. An error (or a panic, caught and never fatal) retries with
///   exponential backoff ([`Backoff`](crate::retry::Backoff): `backoff`, doubling, capped at `backoff_max`, 20% jitter) until
///   `max_attempts`, then dead-letters. An error that is a [`corekit::Error`](crate::Error) of
///   kind [`InvalidInput`](crate::ErrorKind::InvalidInput) (such as a payload that does not
///   [`decode`](Message::decode)) dead-letters at once: retrying cannot fix it.
/// - **Shutdown**: when the `shutdown` future passed to [`run`](Self::run) completes, fetching
///   stops, handlers already given a message finish and are settled, and `run` returns its
///   report. Messages fetched but not started are left unsettled and delivered again.
#[derive(Debug)]
pub struct Consumer {
    queue: Queue,
    topic: String,
    group: String,
    concurrency: usize,
    max_attempts: u32,
    backoff: Backoff,
}

/// What a [`Consumer`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumeReport {
    /// Deliveries received.
    pub received: u64,
    /// Handled and acknowledged.
    pub acked: u64,
    /// Failed and scheduled for another attempt.
    pub retried: u64,
    /// Sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Handler panics (each also counted as retried or dead-lettered).
    pub panicked: u64,
    /// Settling failed (the broker will deliver those messages again).
    pub settle_errors: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    acked: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    panicked: AtomicU64,
    settle_errors: AtomicU64,
}

impl Counters {
    fn report(&self) -> ConsumeReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConsumeReport {
            received: get(&self.received),
            acked: get(&self.acked),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            panicked: get(&self.panicked),
            settle_errors: get(&self.settle_errors),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Consumer {
    pub(crate) fn new(queue: Queue, topic: &str, group: &str) -> Self {
        let s = queue.settings();
        Self {
            concurrency: s.concurrency,
            max_attempts: s.max_attempts,
            backoff: s.backoff,
            queue,
            topic: topic.to_owned(),
            group: group.to_owned(),
        }
    }

    /// Handlers running at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Attempts before a failing message is dead-lettered (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// First retry delay and the cap it doubles up to.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = Backoff::new(first, max);
        self
    }

    /// The retry delay after failed attempt `attempt` (1-based): `backoff * 2^(attempt-1)`,
    /// capped, minus up to 20% jitter so a burst of failures does not retry in lockstep.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        self.backoff.delay(attempt)
    }

    /// Runs `handler` over every message until `shutdown` completes (or the subscription
    /// ends), then returns what it did.
    ///
    /// # Errors
    /// Subscribing or provisioning the dead-letter topic failed, or the subscription ended
    /// without a shutdown (the broker closed it for good).
    pub async fn run<H, Fut, E, S>(self, handler: H, shutdown: S) -> Result<ConsumeReport>
    where
        H: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
        S: Future<Output = ()> + Send,
    {
        self.queue.ensure_dead_letter(&self.topic).await?;
        let mut subscription = self.queue.subscribe(&self.topic, &self.group).await?;
        let counters = Arc::new(Counters::default());
        let shared = Arc::new(Lane {
            handler,
            consumer: self,
            counters: counters.clone(),
        });
        let n = shared.consumer.concurrency;
        // Keyed messages go to the lane their key hashes to (one at a time per key); unkeyed
        // ones to a channel every lane also reads.
        let (any_tx, any_rx) = async_channel();
        let mut keyed_tx = Vec::with_capacity(n);
        let mut lanes = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (tx, rx) = mpsc::channel::<Delivery>(1);
            keyed_tx.push(tx);
            lanes.spawn(shared.clone().lane(rx, any_rx.clone()));
        }
        drop(any_rx);

        let mut shutdown = std::pin::pin!(shutdown.fuse());
        let mut ended = false;
        loop {
            let next = tokio::select! {
                biased;
                () = &mut shutdown => break,
                next = subscription.next() => next,
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    // Backends reconnect underneath; a stream error is reported, not fatal.
                    tracing::warn!(topic = %shared.consumer.topic, error = %e, "queue consumer: receive failed");
                    continue;
                }
                None => {
                    ended = true;
                    break;
                }
            };
            bump(&counters.received);
            let sent = match &delivery.message().key {
                Some(key) => {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    key.hash(&mut h);
                    let lane = (h.finish() % n as u64) as usize;
                    keyed_tx[lane].send(delivery).await.is_ok()
                }
                None => any_tx.send(delivery).await.is_ok(),
            };
            if !sent {
                break;
            }
        }
        drop(keyed_tx);
        drop(any_tx);
        while lanes.join_next().await.is_some() {}
        drop(subscription);
        let report = counters.report();
        if ended {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "subscription to {:?} ended without a shutdown",
                    shared.consumer.topic
                ),
            ));
        }
        Ok(report)
    }
}

// A multi-consumer channel for unkeyed deliveries, built from tokio's mpsc behind a mutex.
type AnyRx = Arc<tokio::sync::Mutex<mpsc::Receiver<Delivery>>>;

fn async_channel() -> (mpsc::Sender<Delivery>, AnyRx) {
    let (tx, rx) = mpsc::channel(1);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

struct Lane<H> {
    handler: H,
    consumer: Consumer,
    counters: Arc<Counters>,
}

impl<H, Fut, E> Lane<H>
where
    H: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    async fn lane(self: Arc<Self>, mut keyed: mpsc::Receiver<Delivery>, any: AnyRx) {
        let mut keyed_open = true;
        let mut any_open = true;
        while keyed_open || any_open {
            let next = tokio::select! {
                biased;
                d = keyed.recv(), if keyed_open => match d {
                    Some(d) => d,
                    None => { keyed_open = false; continue; }
                },
                d = async { any.lock().await.recv().await }, if any_open => match d {
                    Some(d) => d,
                    None => { any_open = false; continue; }
                },
            };
            self.handle(next).await;
        }
    }

    async fn handle(&self, delivery: Delivery) {
        let message = delivery.message().clone();
        let span = tracing::info_span!(
            "queue",
            otel.name = "process",
            messaging.system = self.consumer.queue.backend_name(),
            messaging.destination.name = %self.consumer.topic,
            messaging.consumer.group.name = %self.consumer.group,
            messaging.message.id = %message.id,
            attempt = message.attempt,
        );
        // With an installed propagator, the handler's span continues the publisher's trace.
        crate::instrument::extract(&message.headers, &span);
        let outcome = AssertUnwindSafe((self.handler)(message))
            .catch_unwind()
            .instrument(span.clone())
            .await;
        let failure = classify(outcome, &self.counters);
        let c = &self.counters;
        let settled = match failure {
            None => {
                bump(&c.acked);
                delivery.ack().await
            }
            Some((reason, permanent)) => {
                let attempt = delivery.attempt();
                if permanent || attempt >= self.consumer.max_attempts {
                    let _g = span.enter();
                    tracing::warn!(%reason, attempt, "queue consumer: dead-lettering");
                    bump(&c.dead_lettered);
                    let reason = if permanent {
                        reason
                    } else {
                        format!("{reason} (after {attempt} attempts)")
                    };
                    delivery.reject(&reason).await
                } else {
                    let delay = self.consumer.delay_after(attempt);
                    tracing::debug!(parent: &span, %reason, attempt, ?delay, "queue consumer: retrying");
                    bump(&c.retried);
                    delivery.retry_after(delay).await
                }
            }
        };
        if let Err(e) = settled {
            bump(&c.settle_errors);
            tracing::warn!(parent: &span, error = %e, "queue consumer: settling failed; the broker will redeliver");
        }
    }
}

/// What a handler's outcome means: `None` for success, else the reason and whether retrying is
/// pointless.
fn classify<E: Into<BoxError>>(
    outcome: std::thread::Result<std::result::Result<(), E>>,
    counters: &Counters,
) -> Option<(String, bool)> {
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            let e: BoxError = e.into();
            let permanent = e
                .downcast_ref::<Error>()
                .is_some_and(|e| e.kind() == ErrorKind::InvalidInput);
            Some((e.to_string(), permanent))
        }
        Err(panic) => {
            bump(&counters.panicked);
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            Some((format!("handler panicked: {what}"), false))
        }
    }
}
