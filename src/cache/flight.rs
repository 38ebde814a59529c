//! The single-flight table of `get_or_set`.

#[allow(unused_imports)]
use super::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The flights running, by full key.
pub(super) type Flights = Arc<Mutex<HashMap<Vec<u8>, watch::Receiver<Flight>>>>;

/// The flight running for `key`, unless its leader went away without removing it (a task
/// dropped before it first ran): such an entry is removed, so the caller leads instead of
/// waiting on a channel nobody will send on.
pub(super) fn running(
    flights: &mut HashMap<Vec<u8>, watch::Receiver<Flight>>,
    key: &[u8],
) -> Option<watch::Receiver<Flight>> {
    let rx = flights.get(key)?;
    if rx.has_changed().is_ok() {
        return Some(rx.clone());
    }
    flights.remove(key);
    None
}

/// Removes the single-flight entry when the leader finishes or is dropped. It owns its handle
/// on the table, so a load spawned as a task carries it from the moment it is spawned.
pub(super) struct FlightGuard {
    pub(super) flights: Flights,
    pub(super) key: Vec<u8>,
    pub(super) tx: watch::Sender<Flight>,
}

impl FlightGuard {
    pub(super) fn finish(self, outcome: Flight) {
        // Remove first so a caller arriving now reads the store instead of a finished flight.
        self.remove();
        self.tx.send_replace(outcome);
    }

    pub(super) fn remove(&self) {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Only our own entry: a new leader may already have taken the key.
        let ours = self.tx.subscribe();
        if flights
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&ours))
        {
            flights.remove(&self.key);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.remove();
    }
}
