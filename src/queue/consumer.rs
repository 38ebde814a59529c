//! Handler-style consumption: bounded concurrency, per-key order, retries, dead letters,
//! graceful shutdown. Written once over [`Subscription`](super::Subscription).

use super::dedupe::{Claim, Dedupe, DedupeStore};
use super::dispatch::{Dispatcher, Ready};
use super::{Delivery, Message, Queue};
use crate::retry::Backoff;
use crate::{BoxError, Error, ErrorKind, Result};
use futures_util::{FutureExt, StreamExt};
use std::future::Future;
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
///   [`decode`](Message::decode)) dead-letters at once: retrying cannot fix it. Every failed
///   attempt is logged at `warn` with its cause.
/// - **Outages**: an error that is a [`corekit::Error`](crate::Error) of kind
///   [`Unavailable`](crate::ErrorKind::Unavailable) (a database, cache or API the handler needs
///   is down) spends no attempt: the consumer holds the message, pauses starting handlers for
///   the backoff (growing per failure, capped at `backoff_max`), keeps the broker from
///   redelivering it meanwhile (NATS: ack-wait progress), and tries it again, as the same
///   attempt, until the dependency is back. [`pause_on_unavailable(false)`](Self::pause_on_unavailable)
///   treats it as any failure instead. A message still held when the consumer shuts down is
///   released unsettled and delivered again later; brokers that count deliveries (NATS, and
///   memory) count that as an attempt. RabbitMQ closes a channel whose message stays
///   unacknowledged past its `consumer_timeout` (30 min by default), which ends a longer hold.
/// - **Shutdown**: when the `shutdown` future passed to [`run`](Self::run) completes, fetching
///   stops, handlers already given a message finish and are settled, and `run` returns its
///   report. Messages fetched but not started are left unsettled and delivered again.
///
/// ```no_run
/// # #[cfg(feature = "queue-memory")]
/// # async fn run() -> corekit::Result<()> {
/// use corekit::queue::{Message, Queue};
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Order { id: u64 }
///
/// let queue = Queue::from_env().await?;
/// let report = queue
///     .consumer("orders", "billing")
///     .concurrency(8)
///     .max_attempts(5)
///     .backoff(Duration::from_millis(200), Duration::from_secs(30))
///     .run(
///         |m: Message| async move {
///             let order: Order = m.decode()?; // a bad payload dead-letters at once
///             println!("billing order {}", order.id);
///             Ok::<(), corekit::Error>(())
///         },
///         corekit::shutdown_signal(), // SIGTERM: finish in-flight messages, then return
///     )
///     .await?;
/// println!("acked {}, dead-lettered {}", report.acked, report.dead_lettered);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    queue: Queue,
    topic: String,
    group: String,
    concurrency: usize,
    max_attempts: u32,
    backoff: Backoff,
    pause_on_unavailable: bool,
    dedupe: Option<Dedupe>,
    dedupe_lease: Duration,
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
    /// Attempts that met an [`Unavailable`](crate::ErrorKind::Unavailable) dependency and
    /// paused the consumer (the message kept its attempt and was tried again).
    pub paused: u64,
    /// Deliveries let go unhandled because they stopped being this consumer's before a handler
    /// started them (Kafka: a rebalance moved them to another consumer; RabbitMQ: the channel
    /// they came on was lost), and are delivered again.
    pub handed_back: u64,
    /// Deliveries whose id was handled already (with [`Consumer::dedupe`]): acknowledged
    /// without running the handler.
    pub duplicates: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    acked: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    panicked: AtomicU64,
    settle_errors: AtomicU64,
    paused: AtomicU64,
    handed_back: AtomicU64,
    duplicates: AtomicU64,
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
            paused: get(&self.paused),
            handed_back: get(&self.handed_back),
            duplicates: get(&self.duplicates),
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
            pause_on_unavailable: true,
            dedupe: s.dedupe.clone(),
            dedupe_lease: s.dedupe_lease,
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

    /// Whether an [`Unavailable`](crate::ErrorKind::Unavailable) error pauses the consumer
    /// and keeps the message's attempt (default `true`; see [`Consumer`]).
    pub fn pause_on_unavailable(mut self, pause: bool) -> Self {
        self.pause_on_unavailable = pause;
        self
    }

    /// Effectively-once processing: a delivery whose [`id`](Message::id) this group handled
    /// within `window` is acknowledged without running the handler (counted in
    /// [`ConsumeReport::duplicates`]). Before the handler runs, the id is claimed in `store` for
    /// a lease (default 60 s, [`dedupe_lease`](Self::dedupe_lease)), so a redelivery that
    /// arrives while another consumer still handles it waits; a success marks it done for
    /// `window`, a failure frees it for the retry.
    ///
    /// The handler runs again when its process dies between the handler's return and the id
    /// being marked done (one store call), when a handler outlives its lease, or when marking
    /// it done fails (logged at `warn`; the message is acknowledged all the same). An id is
    /// claimed just before each attempt and freed while the consumer pauses. Ids
    /// stay stable across retries, redrives and delayed delivery; give a business id
    /// ([`Message::with_id`]) to catch a publisher sending the same thing twice.
    pub fn dedupe(mut self, store: impl DedupeStore, window: Duration) -> Self {
        self.dedupe = Some(Dedupe {
            store: Arc::new(store),
            window,
            lease: self.dedupe_lease,
        });
        self
    }

    /// How long a claimed id stays claimed while its handler runs (default
    /// `QUEUE_DEDUPE_LEASE`, 60 s): longer than the slowest handler, shorter than you want a
    /// crashed consumer's message to wait.
    pub fn dedupe_lease(mut self, lease: Duration) -> Self {
        self.dedupe_lease = lease;
        if let Some(d) = &mut self.dedupe {
            d.lease = lease;
        }
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
        // Held while running: the queue's delayed messages move on while anything consumes.
        let _forwarding = self
            .queue
            .settings()
            .forward_delayed
            .then(|| super::delay::background(&self.queue));
        let prefetch = usize::try_from(self.queue.settings().prefetch).unwrap_or(usize::MAX);
        let counters = Arc::new(Counters::default());
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Lane {
            handler,
            consumer: self,
            counters: counters.clone(),
            paused_until: std::sync::Mutex::new(None),
            stopping,
        });
        let n = shared.consumer.concurrency;
        // Lanes ask for work when free; what they have not taken waits in the dispatcher.
        let (ready_tx, mut ready_rx) = mpsc::channel::<Ready>(n);
        let mut lanes = tokio::task::JoinSet::new();
        for id in 0..n {
            lanes.spawn(shared.clone().lane(id, ready_tx.clone()));
        }
        drop(ready_tx);
        let mut waiting = Dispatcher::new(n, prefetch);

        let mut shutdown = std::pin::pin!(shutdown.fuse());
        let mut ended = false;
        loop {
            let paused = shared.paused_until();
            if paused.is_none() {
                waiting.dispatch();
            }
            let due = waiting.next_due();
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(ready) = ready_rx.recv() => waiting.ready(ready),
                () = tokio::time::sleep_until(paused.unwrap_or_else(tokio::time::Instant::now)), if paused.is_some() => {}
                () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => waiting.keep_alive().await,
                next = subscription.next(), if waiting.has_room() => match next {
                    Some(Ok(delivery)) => {
                        bump(&counters.received);
                        waiting.park(delivery);
                    }
                    // Backends reconnect underneath; a stream error is reported, not fatal.
                    Some(Err(e)) => tracing::warn!(topic = %shared.consumer.topic, error = %e, "queue consumer: receive failed"),
                    None => {
                        ended = true;
                        break;
                    }
                },
            }
        }
        // Free lanes end; waiting deliveries are left unsettled, newest first, then lanes
        // holding a message through an outage let it go: a broker that puts them back at the
        // front (memory) keeps their order.
        drop(ready_rx);
        drop(waiting);
        let _ = stop.send(true);
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

struct Lane<H> {
    handler: H,
    consumer: Consumer,
    counters: Arc<Counters>,
    /// No handler starts before this: a dependency was unavailable.
    paused_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// What claiming a delivery's id gave.
enum Claimed {
    /// Handle it (with the claimed key and token under de-duplication).
    Go(Option<(String, String)>),
    /// Handled already: acknowledge without handling.
    Duplicate,
    /// The consumer is shutting down: let it go unsettled.
    Stopping,
}

/// A failed attempt: why, and what retrying can do about it.
struct Failure {
    reason: String,
    /// Retrying cannot help (bad input): dead-letter now.
    permanent: bool,
    /// A dependency is down: wait for it, spending no attempt.
    unavailable: bool,
}

impl<H, Fut, E> Lane<H>
where
    H: Fn(Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    /// Asks for a delivery whenever free and handles it, until the consumer stops.
    async fn lane(self: Arc<Self>, id: usize, ready: mpsc::Sender<Ready>) {
        loop {
            let (reply, delivery) = tokio::sync::oneshot::channel();
            if ready.send((id, reply)).await.is_err() {
                return;
            }
            match delivery.await {
                Ok(delivery) => self.handle(delivery).await,
                Err(_) => return,
            }
        }
    }

    async fn handle(&self, mut delivery: Delivery) {
        let mut outages = 0;
        loop {
            // Paused after this delivery was handed out: wait, keeping it alive.
            if let Some(until) = self.paused_until() {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if !self.hold(&mut delivery, left).await {
                    return;
                }
                continue;
            }
            if !delivery.start() {
                // No longer this consumer's (a rebalance, a lost channel): delivered again.
                bump(&self.counters.handed_back);
                return;
            }
            // Claimed just before the attempt, so a pause spends none of the lease.
            let claim = match self.claim(&mut delivery).await {
                Claimed::Go(claim) => claim,
                Claimed::Duplicate => return self.ack_duplicate(delivery).await,
                Claimed::Stopping => return,
            };
            let (failure, span) = self.attempt(delivery.message().clone()).await;
            match failure {
                Some(f) if f.unavailable && self.consumer.pause_on_unavailable => {
                    // Not being worked on while paused: another consumer may take it.
                    self.unclaim(claim.as_ref(), false).await;
                    outages += 1;
                    let delay = self.consumer.delay_after(outages);
                    tracing::warn!(parent: &span, reason = %f.reason, ?delay,
                        "queue consumer: a dependency is unavailable; pausing, the message keeps its attempt");
                    bump(&self.counters.paused);
                    self.pause_for(delay);
                    if !self.hold(&mut delivery, delay).await {
                        // Shutting down: left unsettled, so the broker delivers it again.
                        return;
                    }
                }
                failure => {
                    self.unclaim(claim.as_ref(), failure.is_none()).await;
                    return self.settle(delivery, failure, &span).await;
                }
            }
        }
    }

    /// With de-duplication, claims the delivery's id (waiting while another consumer holds
    /// it, or while the store fails).
    async fn claim(&self, delivery: &mut Delivery) -> Claimed {
        let Some(d) = &self.consumer.dedupe else {
            return Claimed::Go(None);
        };
        let key = Dedupe::key(
            &self.consumer.topic,
            &self.consumer.group,
            &delivery.message().id,
        );
        let token = format!("{:016x}", fastrand::u64(..));
        let mut failures = 0;
        loop {
            let wait = match d.store.claim(&key, &token, d.lease).await {
                Ok(Claim::New) => return Claimed::Go(Some((key, token))),
                Ok(Claim::Done) => return Claimed::Duplicate,
                // Another consumer is on it: wait for it to finish or its lease to end.
                Ok(Claim::Busy) => Duration::from_millis(500),
                Err(e) => {
                    failures += 1;
                    let delay = self.consumer.delay_after(failures);
                    tracing::warn!(error = %e, ?delay, store = d.store.name(),
                        "queue consumer: the de-duplication store failed; holding the message");
                    delay
                }
            };
            if !self.hold(delivery, wait).await {
                return Claimed::Stopping;
            }
        }
    }

    /// Acknowledges a delivery whose id was handled already, without handling it.
    async fn ack_duplicate(&self, delivery: Delivery) {
        bump(&self.counters.duplicates);
        let id = delivery.message().id.clone();
        tracing::debug!(%id, "queue consumer: already handled; acknowledging");
        if let Err(e) = delivery.ack().await {
            bump(&self.counters.settle_errors);
            tracing::warn!(%id, error = %e, "queue consumer: acknowledging a duplicate failed");
        }
    }

    /// Marks a claimed id done (handled) or frees it (to be tried again).
    async fn unclaim(&self, claim: Option<&(String, String)>, handled: bool) {
        let (Some(d), Some((key, token))) = (&self.consumer.dedupe, claim) else {
            return;
        };
        let done = if handled {
            d.store.complete(key, d.window).await
        } else {
            d.store.release(key, token).await
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, store = d.store.name(), handled,
                "queue consumer: the de-duplication store failed; the id's claim ends with its lease");
        }
    }

    /// Runs the handler once on the delivery's message, in its span.
    async fn attempt(&self, message: Message) -> (Option<Failure>, tracing::Span) {
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
        // The call itself inside the guard too: a handler may panic before returning a future.
        let outcome = AssertUnwindSafe(async { (self.handler)(message).await })
            .catch_unwind()
            .instrument(span.clone())
            .await;
        (classify(outcome, &self.counters), span)
    }

    async fn settle(&self, delivery: Delivery, failure: Option<Failure>, span: &tracing::Span) {
        let c = &self.counters;
        let settled = match failure {
            None => {
                bump(&c.acked);
                delivery.ack().await
            }
            Some(Failure {
                reason, permanent, ..
            }) => {
                let attempt = delivery.attempt();
                if permanent || attempt >= self.consumer.max_attempts {
                    tracing::warn!(parent: span, %reason, attempt, "queue consumer: dead-lettering");
                    bump(&c.dead_lettered);
                    let reason = if permanent {
                        reason
                    } else {
                        format!("{reason} (after {attempt} attempts)")
                    };
                    delivery.reject(&reason).await
                } else {
                    let delay = self.consumer.delay_after(attempt);
                    tracing::warn!(parent: span, %reason, attempt, ?delay, "queue consumer: attempt failed; retrying");
                    bump(&c.retried);
                    delivery.retry_after(delay).await
                }
            }
        };
        if let Err(e) = settled {
            bump(&c.settle_errors);
            tracing::warn!(parent: span, error = %e, "queue consumer: settling failed; the broker will redeliver");
        }
    }

    /// No lane starts a handler for `delay` from now (or longer, if already paused longer).
    fn pause_for(&self, delay: Duration) {
        let until = tokio::time::Instant::now() + delay;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// When the consumer is paused, until when.
    fn paused_until(&self) -> Option<tokio::time::Instant> {
        let until = *self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        until.filter(|t| *t > tokio::time::Instant::now())
    }

    /// Holds `delivery` for `delay`, telling the broker it is still in hand; `false` when the
    /// consumer is shutting down.
    async fn hold(&self, delivery: &mut Delivery, delay: Duration) -> bool {
        let until = tokio::time::Instant::now() + delay;
        super::dispatch::hold_until(delivery, until, &mut self.stopping.clone()).await
    }
}

/// What a handler's outcome means: `None` for success, else the failure.
fn classify<E: Into<BoxError>>(
    outcome: std::thread::Result<std::result::Result<(), E>>,
    counters: &Counters,
) -> Option<Failure> {
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            let e: BoxError = e.into();
            let kind = e.downcast_ref::<Error>().map(Error::kind);
            Some(Failure {
                reason: e.to_string(),
                permanent: kind == Some(ErrorKind::InvalidInput),
                unavailable: kind == Some(ErrorKind::Unavailable),
            })
        }
        Err(panic) => {
            bump(&counters.panicked);
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            Some(Failure {
                reason: format!("handler panicked: {what}"),
                permanent: false,
                unavailable: false,
            })
        }
    }
}
