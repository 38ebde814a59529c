//! The `get_bytes` future and the single-flight table of `get_or_set`.

#[allow(unused_imports)]
use super::*;
use crate::Result;
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use tokio::sync::watch;

/// The future of [`Cache::get_bytes`].
#[must_use = "futures do nothing unless polled"]
pub struct GetBytes<'a, S, C> {
    pub(super) cache: &'a Cache<S, C>,
    pub(super) key: &'a [u8],
    pub(super) remote: Option<RemoteGet<'a>>,
}

pub(super) type RemoteGet<'a> = Pin<Box<dyn Future<Output = Result<Option<Bytes>>> + Send + 'a>>;

impl<'a, S: CacheStore, C: Codec> Future for GetBytes<'a, S, C> {
    type Output = Result<Option<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.remote.is_none() {
            let full = match this.cache.key(this.key, "get") {
                Ok(full) => full,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if let Some(found) = this.cache.inner.store.get_local(&full) {
                this.cache.count_lookup(found.is_some());
                return Poll::Ready(Ok(found));
            }
            this.remote = Some(Box::pin(this.cache.get_remote(full.into_owned())));
        }
        match this.remote.as_mut() {
            Some(remote) => remote.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

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
