//! The crate's one Redis layer: URL parsing, connecting with one reconnect policy, bounded
//! commands and one map from fred's errors to corekit's kinds. The cache store and the
//! scheduler's lock and job store all connect through it.

use crate::{Error, ErrorKind, Result};
use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::config::{Config, ReconnectPolicy};
use std::future::Future;
use std::time::Duration;

/// How to connect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connect {
    /// Bound on connecting (and on each reconnect attempt's handshake).
    pub connect_timeout: Duration,
    /// Bound on each command; zero for none.
    pub command_timeout: Duration,
    /// Connections in the pool (auto-pipelined each).
    pub pool_size: usize,
    /// Whether fred itself bounds every command by `command_timeout` (the scheduler, whose
    /// few commands all need a bound), or the caller does (the cache: fred's per-command
    /// timeout halves pipelined throughput, measured in benches/cache.rs).
    pub bound_in_client: bool,
}

/// Parses a `redis://`, `rediss://`, `redis-cluster://` or `redis-sentinel://` URL; an error
/// names the URL with its password redacted.
pub(crate) fn parse_url(url: &str) -> Result<Config> {
    Config::from_url(url).map_err(|e| {
        let hint = if url.starts_with("rediss") && !cfg!(feature = "cache-redis-tls") {
            " (rediss:// needs the cargo feature cache-redis-tls)"
        } else {
            ""
        };
        Error::config(format!(
            "redis URL {:?} is not valid: {}{hint}",
            crate::config::redact_url(url),
            e.details()
        ))
        .with_backend("redis")
    })
}

/// Connects a pool with corekit's policy: reconnect forever with backoff (100 ms to 2 s), a
/// command caught on a connection that dies fails instead of being replayed later, and the
/// first connection bounded by `connect_timeout`. `address` names the server in errors
/// (password redacted by the caller).
pub(crate) async fn connect(mut config: Config, how: Connect, address: &str) -> Result<Pool> {
    // A cluster client that lost the node named in its URL must still find the cluster: ask
    // the nodes it last knew as well (fred's default asks only the URL's nodes, so a dead
    // first node left the client reconnecting for ever, seen in the failover test).
    let clustered = config.server.is_clustered();
    if clustered {
        let _ = config
            .server
            .set_cluster_discovery_policy(fred::types::config::ClusterDiscoveryPolicy::UseCache);
    }
    let Connect {
        connect_timeout,
        command_timeout,
        pool_size,
        bound_in_client,
    } = how;
    let pool = fred::types::Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            // The handshake (HELLO, AUTH, SELECT) runs as internal commands: the connect
            // timeout, not a shorter command timeout, must bound connecting to a hung server.
            c.internal_command_timeout = connect_timeout
                .max(command_timeout)
                .max(Duration::from_secs(1));
            // A command written to a connection that then dies fails instead of being
            // replayed after the reconnect (possibly after the caller gave up on it). On a
            // cluster, fred counts following a MOVED/ASK redirection as another attempt: one
            // attempt failed every command caught in a resharding ("Too many failed write
            // attempts", seen in the resharding test). Two redirections were not always enough
            // either (ASK during a slot's move, then MOVED, then MOVED again while the slot map
            // caught up: once in about ten runs), so a cluster allows four.
            c.max_command_attempts = if clustered { 5 } else { 1 };
        })
        .with_performance_config(|p| {
            if bound_in_client {
                p.default_command_timeout = command_timeout;
            }
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build_pool(pool_size.max(1))
        .map_err(|e| map_err(e, "connect"))?;
    pool.connect();
    let timed_out = || {
        Error::new(
            ErrorKind::Unavailable,
            format!("no connection to {address} within {connect_timeout:?}"),
        )
        .with_backend("redis")
        .with_operation("connect")
    };
    let failed = match tokio::time::timeout(connect_timeout, pool.wait_for_connect()).await {
        Ok(Ok(())) => return Ok(pool),
        // fred's own connection timeout: the same bound, said the same way.
        Ok(Err(e)) if *e.kind() == fred::error::ErrorKind::Timeout => timed_out(),
        Ok(Err(e)) => map_err(e, "connect").with_context(format!("connecting to {address}")),
        Err(_) => timed_out(),
    };
    // Stop the reconnect loop in the background: a server that never answered must not hold
    // the caller past the connect timeout.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), pool.quit()).await;
    });
    Err(failed)
}

/// One connection (a pool of one) to `url` whose every command fred bounds by `timeout`,
/// reconnecting for ever: the scheduler's tick lock and job store, the queue's dedupe store.
#[cfg(any(feature = "scheduler-redis", feature = "queue-dedupe-redis"))]
pub(crate) async fn connect_one(url: &str, timeout: Duration) -> Result<Pool> {
    let how = Connect {
        connect_timeout: timeout,
        command_timeout: timeout,
        pool_size: 1,
        bound_in_client: true,
    };
    let address = crate::config::redact_url(url);
    connect(parse_url(url)?, how, &address).await
}

/// Indices of `keys` grouped by Redis Cluster hash slot, groups in first-seen order: a cluster
/// accepts a multi-key command only when every key is in one slot (`CROSSSLOT` otherwise).
#[cfg(feature = "cache-redis")]
pub(crate) fn by_slot<'k>(keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of = std::collections::HashMap::new();
    for (i, key) in keys.into_iter().enumerate() {
        let g = *group_of
            .entry(fred::util::redis_keyslot(key))
            .or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
        groups[g].push(i);
    }
    groups
}

/// Runs one call within `timeout` (none when zero).
pub(crate) async fn bounded<T>(
    timeout: Duration,
    op: &'static str,
    call: impl Future<Output = std::result::Result<T, fred::error::Error>>,
) -> Result<T> {
    if timeout.is_zero() {
        return call.await.map_err(|e| map_err(e, op));
    }
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map_err(|e| map_err(e, op)),
        Err(_) => Err(timed_out(op, timeout)),
    }
}

/// `e` as a caller should see it when the client had no connection at the time: a command
/// queued during a reconnect ends as fred's timeout, but what failed is reaching the server
/// (`Unavailable`, so a consumer pauses instead of spending attempts).
#[cfg(feature = "cache-redis")]
pub(crate) fn unless_connected(e: Error, connected: bool, op: &'static str) -> Error {
    if connected || e.kind() != ErrorKind::Timeout {
        return e;
    }
    Error::new(
        ErrorKind::Unavailable,
        "no connection to the server (reconnecting)",
    )
    .with_backend("redis")
    .with_operation(op)
}

/// A retryable timeout of `op` after `after`.
pub(crate) fn timed_out(op: &'static str, after: Duration) -> Error {
    Error::new(ErrorKind::Timeout, format!("no reply within {after:?}"))
        .with_backend("redis")
        .with_operation(op)
}

/// Maps a fred error to corekit's kinds. Only what a retry can fix is retryable: a lost
/// connection or a timeout is; a wrong password, a wrong type, a script error or keys that a
/// cluster cannot serve in one command are not.
pub(crate) fn map_err(e: fred::error::Error, op: &'static str) -> Error {
    use fred::error::ErrorKind as F;
    let details = e.details().to_string();
    let kind = match e.kind() {
        // rustls reports a certificate it does not trust as an I/O error; retrying won't help.
        _ if details.contains("InvalidCertificate") => ErrorKind::Config,
        _ if details.contains("CROSSSLOT") || details.contains("same cluster node") => {
            ErrorKind::Unsupported
        }
        _ if details.starts_with("WRONGPASS") || details.starts_with("NOAUTH") => {
            ErrorKind::PermissionDenied
        }
        F::Timeout => ErrorKind::Timeout,
        // A cluster still forming (or re-forming) has no complete slot map yet; a command
        // that ran out of attempts (redirections, reconnects) may go through later.
        _ if details.contains("cluster state")
            || details.starts_with("CLUSTERDOWN")
            || details.contains("Too many failed write attempts") =>
        {
            ErrorKind::Unavailable
        }
        F::IO | F::Canceled | F::Backpressure | F::Routing | F::Cluster | F::Sentinel => {
            ErrorKind::Unavailable
        }
        F::Auth => ErrorKind::PermissionDenied,
        F::Config | F::Url => ErrorKind::Config,
        F::NotFound => ErrorKind::NotFound,
        F::InvalidArgument | F::InvalidCommand => ErrorKind::InvalidInput,
        _ if details.contains("not an integer") || details.contains("WRONGTYPE") => {
            ErrorKind::InvalidInput
        }
        // What fred reports for a command caught on a connection that just died.
        F::Unknown if details.contains("route") || details.contains("onnection") => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Backend,
    };
    Error::new(kind, "")
        .with_backend("redis")
        .with_operation(op)
        .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::error::{Error as FredError, ErrorKind as F};

    #[test]
    fn only_what_a_retry_can_fix_is_retryable() {
        let cases = [
            (F::IO, "connection reset", true),
            (F::Timeout, "slow", true),
            (F::Auth, "WRONGPASS invalid username-password pair", false),
            (
                F::Unknown,
                "WRONGPASS invalid username-password pair",
                false,
            ),
            (F::Unknown, "WRONGTYPE Operation against a key", false),
            (
                F::Unknown,
                "CROSSSLOT Keys in request don't hash to the same slot",
                false,
            ),
            (
                F::Cluster,
                "All keys must belong to the same cluster node",
                false,
            ),
            (F::Url, "bad url", false),
            (F::Protocol, "Invalid or missing cluster state.", true),
            (F::Unknown, "CLUSTERDOWN The cluster is down", true),
            (F::Unknown, "Too many failed write attempts.", true),
        ];
        for (kind, details, retryable) in cases {
            let e = map_err(FredError::new(kind, details), "get");
            assert_eq!(e.is_retryable(), retryable, "{details}: {e}");
            assert_eq!(e.backend(), Some("redis"));
        }
    }

    #[cfg(feature = "cache-redis")]
    #[test]
    fn keys_group_by_slot_in_first_seen_order() {
        // `{u1}` tags put both keys in one slot; `a` and `b` hash apart (slots 15495, 3300).
        let keys: [&[u8]; 4] = [b"a", b"x{u1}", b"b", b"y{u1}"];
        assert_eq!(by_slot(keys), vec![vec![0], vec![1, 3], vec![2]]);
        assert!(by_slot(std::iter::empty::<&[u8]>()).is_empty());
    }

    #[test]
    fn a_bad_url_is_config_and_hides_the_password() {
        let e = parse_url("redis://:hunter2@").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
