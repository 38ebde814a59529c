//! The single-flight table of `get_or_set`.

#[allow(unused_imports)]
use super::*;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

/// Removes the single-flight entry when the leader finishes or is dropped.
pub(super) struct FlightGuard<'a> {
    pub(super) flights: &'a Mutex<HashMap<Vec<u8>, watch::Receiver<Flight>>>,
    pub(super) key: Vec<u8>,
    pub(super) tx: watch::Sender<Flight>,
}

impl FlightGuard<'_> {
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

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}
