//! Which near copies may be kept: a fill takes a ticket before it reads Redis, and keeps its
//! copy only if nothing invalidated the key (or the whole tier) since.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// Keys hash onto this many change counters: a change to one key only spoils fills of the
/// keys sharing its stripe.
const STRIPES: usize = 1024;

/// Invalidation counters shared by the store (fills) and the listener (invalidations).
///
/// Why it is exact: a fill inserts its copy, then re-reads the counters; an invalidation bumps
/// the counter, then deletes the copy. If the fill's re-read saw no bump, the bump (and so the
/// delete) came after the insert and removes the copy; if it saw one, the fill removes it.
pub(super) struct Fence {
    /// Whether invalidations are being received; no fill starts while they are not.
    armed: AtomicBool,
    /// Bumped when many keys changed at once (a prefix, the whole tier).
    flushes: AtomicU64,
    /// Whole-tier clears because invalidations may have been missed.
    cleared: AtomicU64,
    stripes: Box<[AtomicU64]>,
}

/// What a fill saw when it started.
#[derive(Clone, Copy)]
pub(super) struct Ticket {
    flushes: u64,
    stripe: u64,
}

impl Fence {
    pub(super) fn new() -> Self {
        Self {
            armed: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
            cleared: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn stripe(&self, key: &[u8]) -> &AtomicU64 {
        // FNV-1a: cheap, and only spreads keys over stripes (no adversary gains from a clash
        // but an extra near miss).
        let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.stripes[(hash % STRIPES as u64) as usize]
    }

    /// A ticket for a fill of `key`, or `None` while invalidations are not being received.
    pub(super) fn ticket(&self, key: &[u8]) -> Option<Ticket> {
        if !self.armed.load(SeqCst) {
            return None;
        }
        Some(Ticket {
            flushes: self.flushes.load(SeqCst),
            stripe: self.stripe(key).load(SeqCst),
        })
    }

    /// Whether a copy filled under `ticket` may stay (checked after inserting it).
    pub(super) fn holds(&self, key: &[u8], ticket: Ticket) -> bool {
        self.armed.load(SeqCst)
            && self.flushes.load(SeqCst) == ticket.flushes
            && self.stripe(key).load(SeqCst) == ticket.stripe
    }

    /// `key` changed (call before deleting its copy).
    pub(super) fn changed(&self, key: &[u8]) {
        self.stripe(key).fetch_add(1, SeqCst);
    }

    /// Many keys may have changed (call before deleting their copies).
    pub(super) fn flushed(&self) {
        self.flushes.fetch_add(1, SeqCst);
    }

    /// Anything may have changed unheard (call before clearing the tier).
    pub(super) fn cleared(&self) {
        self.cleared.fetch_add(1, SeqCst);
        self.flushed();
    }

    /// Whole-tier clears so far.
    pub(super) fn clears(&self) -> u64 {
        self.cleared.load(SeqCst)
    }

    pub(super) fn set_armed(&self, armed: bool) {
        self.armed.store(armed, SeqCst);
    }
}

/// Arms the fence once every connection of one set (one per Cluster primary, else one) hears
/// invalidations; a set replaced after a topology change is retired and arms nothing again.
pub(super) struct Gate {
    fence: Arc<Fence>,
    state: Mutex<GateState>,
}

struct GateState {
    armed: Vec<bool>,
    retired: bool,
}

impl Gate {
    pub(super) fn new(fence: Arc<Fence>, parts: usize) -> Arc<Self> {
        Arc::new(Self {
            fence,
            state: Mutex::new(GateState {
                armed: vec![false; parts],
                retired: false,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connection `part` hears invalidations.
    pub(super) fn arm(&self, part: usize) {
        let mut state = self.state();
        if let Some(armed) = state.armed.get_mut(part) {
            *armed = true;
        }
        if !state.retired && state.armed.iter().all(|a| *a) {
            self.fence.set_armed(true);
        }
    }

    /// Connection `part` lost its connection (call before clearing the tier).
    pub(super) fn disarm(&self, part: usize) {
        let mut state = self.state();
        if let Some(armed) = state.armed.get_mut(part) {
            *armed = false;
        }
        if !state.retired {
            self.fence.set_armed(false);
        }
    }

    /// The set is being replaced (call before clearing the tier).
    pub(super) fn retire(&self) {
        let mut state = self.state();
        state.retired = true;
        self.fence.set_armed(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_or_flush_after_the_ticket_spoils_the_fill() {
        let fence = Fence::new();
        assert!(
            fence.ticket(b"k").is_none(),
            "no fills before invalidations flow"
        );
        fence.set_armed(true);
        let t = fence.ticket(b"k").unwrap();
        assert!(fence.holds(b"k", t));
        fence.changed(b"other");
        // `other` may share the stripe of `k` (1 in 1024); it does not with FNV-1a here.
        assert!(fence.holds(b"k", t));
        fence.changed(b"k");
        assert!(!fence.holds(b"k", t));
        let t = fence.ticket(b"k").unwrap();
        fence.flushed();
        assert!(!fence.holds(b"k", t));
        let t = fence.ticket(b"k").unwrap();
        fence.set_armed(false);
        assert!(!fence.holds(b"k", t), "a disconnect spoils fills in flight");
    }

    #[test]
    fn every_part_must_be_armed_and_a_retired_gate_arms_nothing() {
        let fence = Arc::new(Fence::new());
        let gate = Gate::new(fence.clone(), 2);
        gate.arm(0);
        assert!(fence.ticket(b"k").is_none(), "one of two parts armed");
        gate.arm(1);
        assert!(fence.ticket(b"k").is_some());
        gate.disarm(1);
        assert!(fence.ticket(b"k").is_none());
        gate.retire();
        gate.arm(1);
        assert!(fence.ticket(b"k").is_none(), "retired");
        let next = Gate::new(fence.clone(), 1);
        next.arm(0);
        gate.disarm(0);
        assert!(
            fence.ticket(b"k").is_some(),
            "an old set cannot disarm the new one"
        );
    }
}
