//! The subscriber connections of a tiered store: one on a single server or behind Sentinel;
//! on a Cluster one per primary (a node tracks and announces only its own keys), replaced
//! when the primaries change.

use super::fence::{Fence, Gate};
use super::listener::Listener;
use crate::Result;
use crate::cache::{CacheStore, MemoryStore, RedisStore};
use crate::redis::map_err;
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, ClusterInterface};
use fred::types::Builder;
use fred::types::config::{ReconnectPolicy, Server, ServerConfig};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// What every listener of a store shares.
#[derive(Clone)]
pub(super) struct Setup {
    pub near: MemoryStore,
    pub fence: Arc<Fence>,
    pub tracking: Arc<AtomicBool>,
    pub track: bool,
    pub prefixes: Vec<String>,
    pub channel: String,
    pub own: String,
    pub timeout: Duration,
}

/// The current set of connections.
struct Set {
    gate: Arc<Gate>,
    clients: Vec<SubscriberClient>,
    /// The primaries the set covers (empty off a Cluster).
    nodes: Vec<Server>,
    /// Dropped with the set: its listeners stop even if a `QUIT` never completes.
    _stop: tokio::sync::watch::Sender<()>,
}

pub(super) struct Subscribers {
    setup: Setup,
    far: RedisStore,
    current: Mutex<Set>,
}

impl Subscribers {
    /// Connects and arms the first set; on a Cluster, watches the primaries.
    pub(super) async fn start(setup: Setup, far: RedisStore) -> Result<Arc<Self>> {
        let nodes = primaries(&setup, &far);
        let set = start_set(&setup, &far, nodes).await?;
        let clustered = far.is_clustered() && setup.track;
        let subscribers = Arc::new(Self {
            setup,
            far,
            current: Mutex::new(set),
        });
        if clustered {
            tokio::spawn(watch(Arc::downgrade(&subscribers)));
        }
        Ok(subscribers)
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Set> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes every connection of the current set.
    pub(super) async fn close(&self) {
        let clients = self.current().clients.clone();
        quit_all(&clients).await;
    }

    pub(super) fn all_connected(&self) -> bool {
        self.current().clients.iter().all(ClientLike::is_connected)
    }

    /// When the primaries changed: retire the set, clear the tier (what the new primaries
    /// changed meanwhile is unknown) and start a set on the new ones.
    async fn follow_topology(&self) {
        let nodes = primaries(&self.setup, &self.far);
        if nodes.is_empty() || nodes == self.current().nodes {
            return;
        }
        tracing::info!(
            primaries = nodes.len(),
            "cache: the Cluster's primaries changed; re-arming near-cache invalidation"
        );
        let old = {
            let current = self.current();
            current.gate.retire();
            current.clients.clone()
        };
        self.setup.fence.cleared();
        let _ = self.setup.near.delete_prefix(b"").await;
        quit_all(&old).await;
        match start_set(&self.setup, &self.far, nodes).await {
            // The old set's listeners stop as it drops.
            Ok(set) => *self.current() = set,
            // The next look retries (`nodes` no longer match): the tier stays unused meanwhile.
            Err(e) => {
                tracing::warn!(error = %e, "cache: re-arming near-cache invalidation failed");
                self.current().nodes.clear();
            }
        }
    }
}

/// Every second while the store lives: ask the far pool which primaries it routes to.
async fn watch(subscribers: Weak<Subscribers>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(subscribers) = subscribers.upgrade() else {
            return;
        };
        subscribers.follow_topology().await;
    }
}

/// The primaries the far pool knows, sorted; empty off a Cluster or without tracking (then
/// one clustered connection hears corekit's channel, published on every node).
fn primaries(setup: &Setup, far: &RedisStore) -> Vec<Server> {
    if !far.is_clustered() || !setup.track {
        return Vec::new();
    }
    // Always the same pool client: two clients may see a failover at different times, and
    // asking each in turn would swap sets back and forth.
    let Some(client) = far.pool().clients().first() else {
        return Vec::new();
    };
    let mut nodes = client
        .cached_cluster_state()
        .map(|state| state.unique_primary_nodes())
        .unwrap_or_default();
    nodes.sort_by_key(ToString::to_string);
    nodes
}

/// Connects one subscriber per node (one to the far store's address when `nodes` is empty),
/// arms each and starts its listener.
async fn start_set(setup: &Setup, far: &RedisStore, nodes: Vec<Server>) -> Result<Set> {
    let targets: Vec<Option<Server>> = if nodes.is_empty() {
        vec![None]
    } else {
        nodes.iter().cloned().map(Some).collect()
    };
    let gate = Gate::new(setup.fence.clone(), targets.len());
    let (stop, stopped) = tokio::sync::watch::channel(());
    let mut clients = Vec::with_capacity(targets.len());
    for (part, node) in targets.into_iter().enumerate() {
        let subscriber = match connect(far, node).await {
            Ok(s) => s,
            Err(e) => {
                quit_all(&clients).await;
                return Err(e);
            }
        };
        clients.push(subscriber.clone());
        let listener = Listener {
            subscriber,
            near: setup.near.clone(),
            fence: setup.fence.clone(),
            gate: gate.clone(),
            part,
            tracking: setup.tracking.clone(),
            track: setup.track,
            prefixes: setup.prefixes.clone(),
            channel: (part == 0).then(|| setup.channel.clone()),
            own: setup.own.clone(),
            timeout: setup.timeout,
        };
        let events = listener.events();
        if let Err(e) = listener.arm().await {
            quit_all(&clients).await;
            return Err(e);
        }
        tokio::spawn(listener.run(events, stopped.clone()));
    }
    Ok(Set {
        gate,
        clients,
        nodes,
        _stop: stop,
    })
}

/// `QUIT` on each, bounded: a client reconnecting to a dead node may never answer.
async fn quit_all(clients: &[SubscriberClient]) {
    for client in clients {
        let _ = tokio::time::timeout(Duration::from_secs(1), client.quit()).await;
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        let clients = self.current().clients.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { quit_all(&clients).await });
        }
    }
}

/// A subscriber with the far pool's settings, to `node` (one Cluster primary) or to the pool's
/// own address.
async fn connect(far: &RedisStore, node: Option<Server>) -> Result<SubscriberClient> {
    let client = far.pool().next();
    let mut config = client.client_config();
    // Invalidations redirected to a RESP2 connection come as pub/sub messages, which is what
    // the listener reads; a RESP3 connection would get push frames instead.
    config.version = fred::types::RespVersion::RESP2;
    if let Some(server) = node {
        config.server = ServerConfig::Centralized { server };
    }
    let subscriber = Builder::from_config(config)
        .set_connection_config(client.connection_config().clone())
        .set_performance_config(client.perf_config())
        // A burst of changes under the prefixes must not overflow the message queue (an
        // overflow clears the near tier).
        .with_performance_config(|p| p.broadcast_channel_capacity = 4096)
        .set_policy(
            client
                .client_reconnect_policy()
                .unwrap_or_else(|| ReconnectPolicy::new_exponential(0, 100, 2_000, 2)),
        )
        .build_subscriber_client()
        .map_err(|e| map_err(e, "subscribe"))?;
    subscriber
        .init()
        .await
        .map_err(|e| map_err(e, "subscribe"))?;
    Ok(subscriber)
}
