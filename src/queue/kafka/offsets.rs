//! Which offsets of a Kafka consumer's partitions are in hand, and what a rebalance waits for.
//!
//! An offset is stored for commit only once it and every earlier offset of its partition were
//! settled. When a rebalance takes partitions away, nothing more of them starts, the messages
//! handlers already started get a bounded time to settle, and the stored offsets are committed
//! before the partitions move: their next owner neither starts a message this consumer is still
//! handling nor re-reads what was settled.

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where a received message sits: its partition's offset, in one assignment (`epoch`) of it.
#[derive(Debug, Clone)]
pub(super) struct Position {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    epoch: u64,
}

#[derive(Default)]
struct Partition {
    /// Which assignment of the partition this is: a message of an earlier one is stale.
    epoch: u64,
    /// Received and not settled.
    pending: BTreeSet<i64>,
    /// Of those, the ones no handler holds: waiting in a consumer's prefetch, or dropped.
    idle: HashSet<i64>,
    next: i64,
    stored: i64,
    /// Being taken away: nothing more of it may start.
    revoking: bool,
}

impl Partition {
    fn in_hand(&self) -> usize {
        self.pending.len() - self.idle.len()
    }
}

/// The offsets of one consumer's partitions; shared by its deliveries and its rebalances.
#[derive(Default)]
pub(super) struct Offsets {
    parts: Mutex<HashMap<(Arc<str>, i32), Partition>>,
    changed: Condvar,
    epochs: AtomicU64,
}

impl Offsets {
    fn lock(&self) -> MutexGuard<'_, HashMap<(Arc<str>, i32), Partition>> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the partition `at` belongs to, if this is still the assignment it came from.
    fn current<R>(&self, at: &Position, f: impl FnOnce(&mut Partition) -> R) -> Option<R> {
        let mut parts = self.lock();
        let p = parts.get_mut(&(at.topic.clone(), at.partition))?;
        let r = (p.epoch == at.epoch).then(|| f(p));
        drop(parts);
        self.changed.notify_all();
        r
    }

    /// A message was received: it is pending (and in hand) until settled.
    pub(super) fn received(&self, topic: Arc<str>, partition: i32, offset: i64) -> Position {
        let mut parts = self.lock();
        let p = parts
            .entry((topic.clone(), partition))
            .or_insert_with(|| Partition {
                epoch: self.epochs.fetch_add(1, Ordering::Relaxed) + 1,
                ..Partition::default()
            });
        p.pending.insert(offset);
        p.next = p.next.max(offset + 1);
        Position {
            topic,
            partition,
            offset,
            epoch: p.epoch,
        }
    }

    /// No handler holds the message (it waits in a prefetch, or was dropped unsettled): a
    /// rebalance need not wait for it.
    pub(super) fn idle(&self, at: &Position) {
        self.current(at, |p| {
            if p.pending.contains(&at.offset) {
                p.idle.insert(at.offset);
            }
        });
    }

    /// A handler is about to start the message: false when its partition was taken away
    /// meanwhile (its next owner reads it again).
    pub(super) fn start(&self, at: &Position) -> bool {
        self.current(at, |p| {
            let ours = !p.revoking && p.pending.contains(&at.offset);
            if ours {
                p.idle.remove(&at.offset);
            }
            ours
        })
        .unwrap_or(false)
    }

    /// The message was settled; `store` gets, under the lock (so a rebalance commits it), the
    /// partition's first offset not yet settled when that moved forward.
    pub(super) fn settled(&self, at: &Position, store: impl FnOnce(i64)) {
        self.current(at, |p| {
            p.pending.remove(&at.offset);
            p.idle.remove(&at.offset);
            let upto = p.pending.first().copied().unwrap_or(p.next);
            if upto > p.stored {
                p.stored = upto;
                store(upto);
            }
        });
    }

    /// Lets nothing more of `revoked` start, then waits up to `within` for what handlers hold
    /// of them to settle; returns how many messages were still held.
    fn drain(&self, revoked: &[(Arc<str>, i32)], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut parts = self.lock();
        for key in revoked {
            if let Some(p) = parts.get_mut(key) {
                p.revoking = true;
            }
        }
        loop {
            let held: usize = revoked
                .iter()
                .filter_map(|key| parts.get(key))
                .map(Partition::in_hand)
                .sum();
            let left = deadline.saturating_duration_since(Instant::now());
            if held == 0 || left.is_zero() {
                return held;
            }
            parts = match self.changed.wait_timeout(parts, left) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// The partitions are gone: what is still pending of them is their next owner's.
    fn forget(&self, revoked: &[(Arc<str>, i32)]) {
        let mut parts = self.lock();
        for key in revoked {
            parts.remove(key);
        }
    }
}

/// The consumer's librdkafka context: drains and commits partitions before they move.
pub(super) struct Rebalancing {
    pub offsets: Arc<Offsets>,
    /// How long a revocation waits for started messages to settle.
    pub wait: Duration,
}

impl ClientContext for Rebalancing {}

impl ConsumerContext for Rebalancing {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: Vec<(Arc<str>, i32)> = list
            .elements()
            .iter()
            .map(|e| (Arc::from(e.topic()), e.partition()))
            .collect();
        // The callback runs inside the subscription's poll: on a multi-threaded runtime the
        // handlers keep running elsewhere while this thread waits; a current-thread runtime
        // cannot run them, so there is nothing to wait for.
        let held = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::CurrentThread) => {
                self.offsets.drain(&revoked, Duration::ZERO)
            }
            Ok(_) => tokio::task::block_in_place(|| self.offsets.drain(&revoked, self.wait)),
            Err(_) => self.offsets.drain(&revoked, self.wait),
        };
        if held > 0 {
            tracing::warn!(
                held,
                wait = ?self.wait,
                "kafka: partitions moved while messages were still being handled; their next \
                 owner handles them again"
            );
        }
        // Queued ahead of the rejoin on the coordinator's connection. Not `Sync`: that waits
        // without a bound, and for ever when the coordinator died (seen: a SIGKILLed broker).
        // Nothing stored since the last commit is the usual case, not a failure.
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
            tracing::debug!(error = %e, "kafka: no commit before the rebalance");
        }
        self.offsets.forget(&revoked);
    }
}
