//! Hands a consumer's fetched deliveries to its lanes: a keyed message only to the lane its key
//! hashes to (one at a time per key, in order), an unkeyed one to any free lane. What waits for
//! a lane is kept alive, so a broker with an ack deadline (NATS) does not deliver it again
//! meanwhile, however long the handlers or a pause take.

use super::Delivery;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// A free lane asking for its next delivery.
pub(super) type Ready = (usize, oneshot::Sender<Delivery>);

struct Waiting {
    /// The lane its key binds it to.
    lane: Option<usize>,
    delivery: Delivery,
    /// When the broker must next hear it is still in hand.
    due: Option<Instant>,
}

pub(super) struct Dispatcher {
    lanes: usize,
    capacity: usize,
    /// Fetched, not yet handed out, in arrival order.
    parked: VecDeque<Waiting>,
    idle: Vec<Ready>,
}

impl Dispatcher {
    /// For `lanes` lanes, holding at most `capacity` deliveries (the subscription's prefetch).
    pub(super) fn new(lanes: usize, capacity: usize) -> Self {
        Self {
            lanes: lanes.max(1),
            capacity: capacity.max(1),
            parked: VecDeque::new(),
            idle: Vec::new(),
        }
    }

    /// Whether another delivery may be fetched.
    pub(super) fn has_room(&self) -> bool {
        self.parked.len() < self.capacity
    }

    pub(super) fn park(&mut self, mut delivery: Delivery) {
        delivery.park();
        let lane = delivery.message().key.as_ref().map(|key| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key.hash(&mut h);
            (h.finish() % self.lanes as u64) as usize
        });
        let due = delivery
            .keep_alive_every()
            .map(|every| Instant::now() + every);
        self.parked.push_back(Waiting {
            lane,
            delivery,
            due,
        });
    }

    pub(super) fn ready(&mut self, ready: Ready) {
        self.idle.push(ready);
    }

    /// Gives each idle lane the oldest delivery it may take.
    pub(super) fn dispatch(&mut self) {
        let mut i = 0;
        while i < self.idle.len() {
            let lane = self.idle[i].0;
            let Some(at) = self
                .parked
                .iter()
                .position(|w| w.lane.is_none_or(|l| l == lane))
            else {
                i += 1;
                continue;
            };
            let (_, reply) = self.idle.swap_remove(i);
            if let Some(mut waiting) = self.parked.remove(at)
                && let Err(delivery) = reply.send(waiting.delivery)
            {
                // The lane is gone (shutting down): the delivery waits where it was.
                waiting.delivery = delivery;
                self.parked.insert(at, waiting);
            }
        }
    }

    /// When a waiting delivery is next due a [`keep_alive`](Self::keep_alive).
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.parked.iter().filter_map(|w| w.due).min()
    }

    /// Tells the broker that the waiting deliveries now due are still in hand.
    pub(super) async fn keep_alive(&mut self) {
        let now = Instant::now();
        for w in &mut self.parked {
            if w.due.is_some_and(|due| due <= now) {
                if let Err(e) = bounded_keep_alive(&mut w.delivery).await {
                    tracing::debug!(error = %e, "queue consumer: could not extend a waiting message");
                }
                w.due = w.delivery.keep_alive_every().map(|every| now + every);
            }
        }
    }
}

impl Drop for Dispatcher {
    /// Lets waiting deliveries go newest first, so a broker that puts an unsettled message
    /// back at the front (memory) keeps their order.
    fn drop(&mut self) {
        self.idle.clear();
        while self.parked.pop_back().is_some() {}
    }
}

/// [`Delivery::keep_alive`] within its own interval: a disconnected client may queue the
/// request for ever, and nothing may wait on it longer than that.
pub(super) async fn bounded_keep_alive(delivery: &mut Delivery) -> crate::Result<()> {
    let within = delivery
        .keep_alive_every()
        .unwrap_or(Duration::from_secs(5));
    match tokio::time::timeout(within, delivery.keep_alive()).await {
        Ok(kept) => kept,
        Err(_) => Err(crate::Error::new(
            crate::ErrorKind::Timeout,
            format!("no answer within {within:?}"),
        )),
    }
}

/// Holds `delivery` until `until`, telling the broker it is still in hand; `false` when
/// `stopping` turns true first (the caller then lets it go unsettled).
pub(super) async fn hold_until(
    delivery: &mut Delivery,
    until: tokio::time::Instant,
    stopping: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    loop {
        if *stopping.borrow() {
            return false;
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        let every = delivery.keep_alive_every();
        tokio::select! {
            kept = bounded_keep_alive(delivery) => {
                if let Err(e) = kept {
                    tracing::debug!(error = %e, "queue: could not extend a held message");
                }
            }
            _ = stopping.changed() => return false,
        }
        let next = every.map_or(until, |every| until.min(now + every));
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stopping.changed() => {}
        }
    }
}
