//! The subscriber connection that tells the near tier what changed in Redis: Redis's own
//! key tracking where the server offers it, corekit's invalidation channel always.

use super::fence::{Fence, Gate};
use crate::Result;
use crate::cache::{CacheStore, MemoryStore};
use crate::redis::bounded;
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface, TrackingInterface};
use fred::types::client::Invalidation as Invalidated;
use fred::types::{ClusterHash, CustomCommand, Message, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

/// Where Redis sends the tracking invalidations of a RESP2 connection redirected to itself
/// (fred hands them over as [`Invalidated`], not as pub/sub messages).
const TRACKING_CHANNEL: &str = "__redis__:invalidate";

/// How changes made by other writers reach a [`TieredStore`](super::TieredStore)'s near tier;
/// from [`TieredStore::invalidation`](super::TieredStore::invalidation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// Redis's server-assisted client-side caching (`CLIENT TRACKING` in `BCAST` mode): a
    /// write, delete, expiry or eviction of a tracked key by *any* client drops the near
    /// copy on every instance. corekit's channel is still listened to.
    Tracking,
    /// corekit's pub/sub channel only: writes made through corekit drop the near copies;
    /// other writers' changes are seen once the near copy expires (`near_ttl`). Used when
    /// tracking is turned off, and when the server refuses `CLIENT TRACKING` (Redis before 6,
    /// an ACL without `CLIENT`).
    Channel,
}

/// One subscriber connection of a tiered store and the task that applies what it hears.
pub(super) struct Listener {
    pub subscriber: SubscriberClient,
    pub near: MemoryStore,
    pub fence: Arc<Fence>,
    pub gate: Arc<Gate>,
    /// This connection's place in `gate`.
    pub part: usize,
    /// Whether tracking is on right now (what [`Invalidation`] reports).
    pub tracking: Arc<AtomicBool>,
    /// Whether to ask for tracking at all.
    pub track: bool,
    pub prefixes: Vec<String>,
    /// corekit's channel, on one connection of a set only (a Cluster publishes everywhere).
    pub channel: Option<String>,
    /// This instance's id on the channel: its own messages are skipped.
    pub own: String,
    pub timeout: Duration,
}

/// The event streams, taken before the first subscribe so that no message is missed.
pub(super) struct Events {
    messages: Receiver<Message>,
    invalidations: Receiver<Invalidated>,
    errors: Receiver<(fred::error::Error, Option<fred::types::config::Server>)>,
    reconnects: Receiver<fred::types::config::Server>,
}

impl Listener {
    pub(super) fn events(&self) -> Events {
        Events {
            messages: self.subscriber.message_rx(),
            invalidations: self.subscriber.invalidation_rx(),
            errors: self.subscriber.error_rx(),
            reconnects: self.subscriber.reconnect_rx(),
        }
    }

    /// Turns tracking on (when asked and offered), subscribes, then lets fills start. Runs on
    /// a fresh connection: in RESP2 a subscribed connection takes no `CLIENT` command.
    pub(super) async fn arm(&self) -> Result<()> {
        let tracking = self.track && self.start_tracking().await?;
        if let Some(channel) = &self.channel {
            bounded(
                self.timeout,
                "subscribe",
                self.subscriber.subscribe(channel.as_str()),
            )
            .await?;
        }
        self.tracking.store(tracking, Ordering::SeqCst);
        self.gate.arm(self.part);
        Ok(())
    }

    /// `CLIENT TRACKING ON REDIRECT <own id> BCAST [PREFIX p]...`, then a subscription to
    /// where the invalidations go: `Ok(false)` when the server refuses either (an error a retry
    /// cannot fix: Redis < 6, an ACL without `CLIENT`), an error when it could not be asked.
    /// A refused subscription is not seen: fred 10.1 reports it as made.
    async fn start_tracking(&self) -> Result<bool> {
        let client = || CustomCommand::new_static("CLIENT", ClusterHash::Random, false);
        let refused = |e: crate::Error| {
            if e.is_retryable() {
                return Err(e);
            }
            tracing::warn!(error = %e, "cache: Redis refused CLIENT TRACKING; near copies are invalidated by corekit's channel only");
            Ok(false)
        };
        let id = match bounded(
            self.timeout,
            "tracking",
            self.subscriber.custom::<i64, _>(client(), vec!["ID"]),
        )
        .await
        {
            Ok(id) => id,
            Err(e) => return refused(e),
        };
        let mut args = vec![
            "TRACKING".to_owned(),
            "ON".into(),
            "REDIRECT".into(),
            id.to_string(),
            "BCAST".into(),
        ];
        for prefix in &self.prefixes {
            args.extend(["PREFIX".to_owned(), prefix.clone()]);
        }
        if let Err(e) = bounded(
            self.timeout,
            "tracking",
            self.subscriber.custom::<Value, _>(client(), args),
        )
        .await
        {
            return refused(e);
        }
        let subscribed = bounded(
            self.timeout,
            "subscribe",
            self.subscriber.subscribe(TRACKING_CHANNEL),
        )
        .await;
        // Apart from corekit's channel, so that one refused subscription cannot take the other
        // with it (Redis refuses a whole SUBSCRIBE when one channel is not allowed).
        match subscribed {
            Ok(()) => Ok(true),
            Err(e) => refused(e),
        }
    }

    /// Applies invalidations until the subscriber is closed or its set is dropped (`stop`). A
    /// connection error stops fills and clears the tier (what changed meanwhile is unknown); a
    /// reconnect re-arms; messages lost to a slow listener clear the tier.
    pub(super) async fn run(self, mut events: Events, mut stop: tokio::sync::watch::Receiver<()>) {
        let mut rearm_at: Option<tokio::time::Instant> = None;
        loop {
            let rearm = async {
                match rearm_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // Biased: connection events in the order they came (errors are broadcast before
            // the reconnect that follows them), then messages, then the re-arm.
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                error = events.errors.recv() => match error {
                    Err(RecvError::Closed) => return,
                    _ => self.disarm().await,
                },
                reconnect = events.reconnects.recv() => match reconnect {
                    Err(RecvError::Closed) => return,
                    _ => {
                        self.disarm().await;
                        rearm_at = Some(tokio::time::Instant::now());
                    }
                },
                invalidated = events.invalidations.recv() => match invalidated {
                    // `FLUSHALL` / `FLUSHDB` come as no keys.
                    Ok(invalidated) if invalidated.keys.is_empty() => self.flush().await,
                    Ok(invalidated) => {
                        for key in &invalidated.keys {
                            self.drop_key(key.as_bytes()).await;
                        }
                    }
                    Err(RecvError::Lagged(_)) => self.flush().await,
                    Err(RecvError::Closed) => return,
                },
                message = events.messages.recv() => match message {
                    Ok(message) => self.apply(message).await,
                    Err(RecvError::Lagged(_)) => self.flush().await,
                    Err(RecvError::Closed) => return,
                },
                () = rearm => {
                    rearm_at = match self.arm().await {
                        Ok(()) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, "cache: re-arming near-cache invalidation failed; retrying in 1s");
                            Some(tokio::time::Instant::now() + Duration::from_secs(1))
                        }
                    };
                }
            }
        }
    }

    async fn disarm(&self) {
        self.gate.disarm(self.part);
        self.flush().await;
    }

    async fn flush(&self) {
        self.fence.cleared();
        let _ = self.near.delete_prefix(b"").await;
    }

    async fn drop_key(&self, key: &[u8]) {
        let _ = super::drop_near(&self.near, &self.fence, 'K', key).await;
    }

    async fn apply(&self, message: Message) {
        if let Some(bytes) = message.value.as_bytes() {
            self.apply_corekit(bytes).await;
        }
    }

    /// corekit's messages: `<instance id> K <key>` or `<instance id> P <prefix>`, the key or
    /// prefix as raw bytes (it may hold spaces or be binary: only the first two spaces split).
    async fn apply_corekit(&self, message: &[u8]) {
        let mut parts = message.splitn(3, |b| *b == b' ');
        let (Some(id), Some(kind), Some(target)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if id == self.own.as_bytes() {
            return;
        }
        let kind = match kind {
            b"K" => 'K',
            b"P" => 'P',
            _ => return,
        };
        let _ = super::drop_near(&self.near, &self.fence, kind, target).await;
    }
}
