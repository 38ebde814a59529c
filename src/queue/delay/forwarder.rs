//! The forwarder: moves delayed messages from level to level, then to their topic.

use super::{DELAY_GROUP, LEVELS, Route, Waiting, route, to_topic, unix_ms};
use crate::queue::{Delivery, Queue};
use crate::retry::Backoff;
use crate::{Error, ErrorKind, Result};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Moves delayed messages on when they are due; from [`Queue::delay_forwarder`].
///
/// Every [`Consumer`](crate::queue::Consumer) runs one for its queue while it runs (once per
/// `Queue` and its clones; see [`QueueBuilder::forward_delayed`](crate::queue::QueueBuilder::forward_delayed)),
/// so a service that consumes delivers the delayed messages too. Run one yourself where
/// nothing consumes. Any number may run at once: they share the work as consumer group
/// [`DELAY_GROUP`].
///
/// A message is acknowledged on its level only once its next step was accepted by the broker,
/// so a forwarder that crashes loses nothing; the one that takes over sends again what had not
/// been acknowledged (at least once). A send that fails is logged at `warn` and tried again
/// with backoff up to 30 s while the message stays held: for as long as it takes when
/// retrying can help (the broker is away), five times when it cannot (its topic was deleted,
/// a RabbitMQ topic has no group), after which the message goes to the level's dead-letter
/// topic (`corekit.delay.1s.dlq`, ...) with the reason, never dropped.
///
/// ```no_run
/// # #[cfg(feature = "queue-memory")]
/// # async fn run() -> corekit::Result<()> {
/// let queue = corekit::queue::Queue::from_env().await?;
/// let report = queue.delay_forwarder().run(corekit::shutdown_signal()).await?;
/// println!("delivered {} delayed messages", report.delivered);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DelayForwarder {
    queue: Queue,
    held: u32,
}

/// What a [`DelayForwarder`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardReport {
    /// Messages sent to their topic, due.
    pub delivered: u64,
    /// Messages sent on to another level.
    pub moved: u64,
    /// Sends that failed (each tried again).
    pub send_errors: u64,
    /// Messages on a level topic without corekit's delay headers, dead-lettered.
    pub malformed: u64,
    /// Messages dead-lettered after five sends that failed for good.
    pub dead_lettered: u64,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    moved: AtomicU64,
    send_errors: AtomicU64,
    malformed: AtomicU64,
    dead_lettered: AtomicU64,
}

impl Counters {
    fn report(&self) -> ForwardReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ForwardReport {
            delivered: get(&self.delivered),
            moved: get(&self.moved),
            send_errors: get(&self.send_errors),
            malformed: get(&self.malformed),
            dead_lettered: get(&self.dead_lettered),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The backoff between attempts to send a held message on.
const RESEND: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(30),
    jitter: 0.2,
};

/// Sends failing for good (not retryable) before a message is dead-lettered.
const GIVE_UP: u32 = 5;

impl DelayForwarder {
    pub(crate) fn new(queue: Queue) -> Self {
        Self { queue, held: 512 }
    }

    /// Messages each level may hold waiting at once (default 512; the level's prefetch, and a
    /// bound on what the forwarder holds in memory on every broker).
    pub fn held(mut self, n: u32) -> Self {
        self.held = n.max(1);
        self
    }

    /// Forwards until `shutdown` completes, then lets what it holds go unsettled (delivered
    /// again to the next forwarder) and returns what it did.
    ///
    /// # Errors
    /// Subscribing to a level topic failed, or a subscription ended without a shutdown.
    pub async fn run<S: Future<Output = ()> + Send>(self, shutdown: S) -> Result<ForwardReport> {
        let mut levels = Vec::with_capacity(4);
        for topic in self.queue.delay.topics() {
            self.queue.ensure_dead_letter(topic).await?;
            levels.push(
                self.queue
                    .subscribe_with(topic, DELAY_GROUP, self.held)
                    .await?,
            );
        }
        let mut deliveries = futures_util::stream::select_all(levels);
        let counters = Arc::new(Counters::default());
        let (stop, stopping) = watch::channel(false);
        let mut held = tokio::task::JoinSet::new();
        // Bounds what is held on every broker: Kafka and memory have no prefetch of their own.
        let room = Arc::new(tokio::sync::Semaphore::new(
            self.held as usize * LEVELS.len(),
        ));
        let mut shutdown = std::pin::pin!(shutdown);
        let ended = loop {
            while held.try_join_next().is_some() {}
            let permit = tokio::select! {
                biased;
                () = &mut shutdown => break false,
                permit = room.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break false,
                },
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break false,
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let (queue, counters, stopping) = (self.queue.clone(), counters.clone(), stopping.clone());
                        held.spawn(async move {
                            forward(&queue, delivery, stopping, &counters).await;
                            drop(permit);
                        });
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "queue delay forwarder: receive failed"),
                    None => break true,
                },
            }
        };
        let _ = stop.send(true);
        while held.join_next().await.is_some() {}
        if ended {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "a delay level's subscription ended without a shutdown",
            ));
        }
        Ok(counters.report())
    }
}

/// Holds one message until its hop ends, then sends it on and acknowledges it.
async fn forward(
    queue: &Queue,
    mut delivery: Delivery,
    mut stopping: watch::Receiver<bool>,
    counters: &Counters,
) {
    let Some(waiting) = Waiting::of(delivery.message()) else {
        bump(&counters.malformed);
        if let Err(e) = delivery.reject("no corekit delay headers").await {
            tracing::warn!(error = %e, "queue delay forwarder: dead-lettering a malformed message failed");
        }
        return;
    };
    // Never past the due time nor longer than the longest level, whatever the header says (a
    // publisher's clock ahead of ours, a forged value).
    let longest = LEVELS[LEVELS.len() - 1].as_millis() as u64;
    let now = unix_ms(SystemTime::now());
    let hop = waiting
        .hop
        .min(waiting.due)
        .min(now.saturating_add(longest));
    // Waiting, not being worked on: a Kafka rebalance need not wait for it.
    delivery.park();
    let hop_end = tokio::time::Instant::now() + Duration::from_millis(hop.saturating_sub(now));
    if !crate::queue::dispatch::hold_until(&mut delivery, hop_end, &mut stopping).await {
        return;
    }
    // No longer this forwarder's (Kafka: its partition moved; RabbitMQ: the channel was lost
    // while it waited): the broker delivers it again, to whoever sends it on.
    if !delivery.start() {
        return;
    }
    let (mut failures, mut hopeless) = (0, 0);
    loop {
        let message = delivery.message().clone();
        let now = unix_ms(SystemTime::now());
        let (sent, counter) = match route(waiting.due, now) {
            Route::Deliver => (
                queue.publish(&waiting.topic, to_topic(message)).await,
                &counters.delivered,
            ),
            Route::Wait { level, hop } => (
                queue
                    .wait(&waiting.topic, vec![message], waiting.due, level, hop)
                    .await,
                &counters.moved,
            ),
        };
        match sent {
            Ok(()) => {
                bump(counter);
                if let Err(e) = delivery.ack().await {
                    // Delivered again to a forwarder, which sends it again (at least once).
                    tracing::debug!(error = %e, "queue delay forwarder: acknowledging failed");
                }
                return;
            }
            Err(e) => {
                bump(&counters.send_errors);
                failures += 1;
                if !e.is_retryable() {
                    hopeless += 1;
                    if hopeless >= GIVE_UP {
                        bump(&counters.dead_lettered);
                        tracing::warn!(topic = %waiting.topic, error = %e,
                            "queue delay forwarder: a delayed message cannot be sent on; dead-lettering it");
                        let reason = format!("delayed delivery to {:?} failed: {e}", waiting.topic);
                        if let Err(e) = delivery.reject(&reason).await {
                            tracing::warn!(error = %e,
                                "queue delay forwarder: dead-lettering failed; the message comes back");
                        }
                        return;
                    }
                }
                let delay = RESEND.delay(failures);
                tracing::warn!(topic = %waiting.topic, error = %e, ?delay,
                    "queue delay forwarder: sending a delayed message on failed; holding it");
                let until = tokio::time::Instant::now() + delay;
                delivery.park();
                if !crate::queue::dispatch::hold_until(&mut delivery, until, &mut stopping).await {
                    return;
                }
                // Lost meanwhile (partition moved, channel gone): its next holder sends it, so
                // two forwarders do not both keep retrying it.
                if !delivery.start() {
                    return;
                }
            }
        }
    }
}

/// A forwarder a [`Consumer`](crate::queue::Consumer) started in the background; stops when the
/// last consumer holding it lets it go.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The queue's background forwarder, started if none runs.
pub(crate) fn background(queue: &Queue) -> Arc<Running> {
    let mut slot = queue
        .delay
        .forwarder
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(running) = slot.upgrade() {
        return running;
    }
    let (stop, mut stopping) = watch::channel(false);
    let running = Arc::new(Running { stop });
    *slot = Arc::downgrade(&running);
    let queue = queue.clone();
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            let stopped = {
                let mut stopping = stopping.clone();
                async move {
                    let _ = stopping.wait_for(|s| *s).await;
                }
            };
            match DelayForwarder::new(queue.clone()).run(stopped).await {
                Ok(_) => return,
                Err(e) => {
                    failures += 1;
                    let delay = RESEND.delay(failures);
                    tracing::warn!(error = %e, ?delay, "queue delay forwarder stopped; starting again");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stopping.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    });
    running
}
