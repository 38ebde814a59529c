//! Redis store on `fred`: a small pool of auto-pipelined connections.

use super::{CacheStore, Purge, Ttl, glob_escape};
use crate::Result;
use bytes::Bytes;
use fred::clients::Pool;
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface, LuaInterface};
use fred::types::config::{Config, Options};
use fred::types::{Expiration, Key, SetOptions, Value};
use std::time::Duration;

/// Adds to a counter and, when it has no expiry yet, sets one: atomic, one round trip.
const INCR_SCRIPT: &str = r"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '0' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v";

/// Takes a lock if free. The token is the last one plus one, and at least the server's clock in
/// microseconds, so tokens keep growing even when the fence key was lost (expired after a day
/// unused, evicted, or not yet replicated when a replica was promoted).
const LOCK_ACQUIRE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local token = string.format('%.0f', math.max(last + 1, now))
redis.call('SET', KEYS[2], token, 'PX', ARGV[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token";

/// Extends a lock if `ARGV[1]` still holds it.
const LOCK_EXTEND_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Releases a lock if `ARGV[1]` still holds it (compare and delete).
const LOCK_RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// How long a lock's fence key outlives its last acquisition.
const FENCE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The keys at `indices` as fred's multi-key argument.
fn keys_at(keys: &[Vec<u8>], indices: &[usize]) -> Vec<Key> {
    indices
        .iter()
        .map(|&i| Key::from(keys[i].as_slice()))
        .collect()
}

/// Keys removed per `UNLINK` while scanning a prefix.
const SCAN_BATCH: u32 = 500;

/// A Redis cache store, on one server, a Redis Cluster (`redis-cluster://`) or behind
/// Sentinel (`redis-sentinel://`).
///
/// On a cluster, multi-key calls are split by hash slot and the parts run concurrently
/// (results in the caller's order), and `delete_prefix`/`clear` scan every primary; every
/// call the store makes therefore works on a cluster.
///
/// Commands are auto-pipelined over `pool_size` connections; every command is bounded by the
/// command timeout, including time spent waiting for a reconnect, so a Redis that goes away
/// yields [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) or [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) (both retryable) and the store
/// recovers by itself when Redis is back (exponential backoff, 100 ms to 2 s).
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
    timeout: Duration,
    clustered: bool,
    // Used while disconnected, so fred drops commands that time out before they are sent.
    queued: Options,
}

/// Runs one command with the store's timeout.
///
/// fred's own per-command timeout halves pipelined throughput (measured in benches/cache.rs),
/// so on a connected client the command is bounded by a plain `tokio::time::timeout` instead.
/// While the client is reconnecting, fred's timeout is used, which also marks the command so it
/// is never sent late.
///
/// fred's command future is about 5 KB: it is boxed where it is made, so the store's future and
/// every layer above it (instrumentation, `Cache`, the caller's own future) move a pointer
/// instead of copying 5 KB at each layer (callgrind, benches/redis_mix.rs: see BENCHMARKS.md).
macro_rules! cmd {
    ($self:ident, $client:expr, $op:literal, |$c:ident| $call:expr) => {{
        let client = $client;
        if $self.timeout.is_zero() {
            let $c = client;
            Box::pin($call).await.map_err(|e| map_err(e, $op))
        } else if client.is_connected() {
            let $c = client;
            match tokio::time::timeout($self.timeout, Box::pin($call)).await {
                Ok(r) => r.map_err(|e| map_err(e, $op)),
                Err(_) => Err(crate::redis::unless_connected(
                    timed_out($op, $self.timeout),
                    client.is_connected(),
                    $op,
                )),
            }
        } else {
            let $c = &client.with_options(&$self.queued);
            Box::pin($call).await.map_err(|e| {
                crate::redis::unless_connected(map_err(e, $op), client.is_connected(), $op)
            })
        }
    }};
}

/// Builds a [`RedisStore`]; from [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    pool_size: usize,
    connect_timeout: Duration,
    command_timeout: Duration,
    config: Option<Config>,
    #[cfg(feature = "cache-redis-tls")]
    tls_root_ca: Option<Vec<u8>>,
}

impl RedisStoreBuilder {
    /// For `rediss://`: trust the CA certificate(s) in `pem` instead of the system's roots
    /// (a private CA, or a test's self-signed one).
    #[cfg(feature = "cache-redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache-redis-tls")))]
    pub fn tls_root_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_ca = Some(pem.into());
        self
    }

    /// Connections in the pool (default 1: with auto-pipelining one connection gave the highest
    /// throughput in benches/cache.rs; more help with large values or slow commands).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Bound on each command, reconnect waits included (default 1 s). Zero removes the bound:
    /// slightly faster, but a server that stops answering then blocks callers.
    pub fn command_timeout(mut self, t: Duration) -> Self {
        self.command_timeout = t;
        self
    }

    /// Uses a full fred [`Config`] (cluster, sentinel, TLS) instead of the URL.
    pub fn fred_config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Connects.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a URL fred cannot parse (password redacted);
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when Redis does not answer within the connect timeout.
    pub async fn build(self) -> Result<RedisStore> {
        // fred builds `rediss://` TLS from rustls's process-wide provider, which rustls cannot
        // pick by itself when the dependency graph enables both ring and aws-lc-rs: choose ring
        // unless the application already installed one.
        #[cfg(feature = "cache-redis-tls")]
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        #[allow(unused_mut)]
        let mut config = match self.config {
            Some(c) => c,
            None => crate::redis::parse_url(&self.url)?,
        };
        #[cfg(feature = "cache-redis-tls")]
        if let Some(pem) = &self.tls_root_ca {
            config.tls = Some(tls_with_roots(pem)?.into());
        }
        let command_timeout = self.command_timeout;
        let how = crate::redis::Connect {
            connect_timeout: self.connect_timeout,
            command_timeout,
            pool_size: self.pool_size,
            bound_in_client: false,
        };
        let address = crate::config::redact_url(&self.url);
        let clustered = config.server.is_clustered();
        let pool = crate::redis::connect(config, how, &address).await?;
        Ok(RedisStore {
            pool,
            timeout: command_timeout,
            clustered,
            queued: Options {
                timeout: Some(command_timeout),
                ..Options::default()
            },
        })
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("pool_size", &self.pool.size())
            .field("clustered", &self.clustered)
            .finish_non_exhaustive()
    }
}

/// A rustls client config trusting only the CA certificates in `pem`.
#[cfg(feature = "cache-redis-tls")]
fn tls_with_roots(pem: &[u8]) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let bad = |what: String| crate::Error::config(format!("redis TLS root CA: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("certificate rejected: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the PEM data".into()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl RedisStore {
    /// A builder for the Redis at `url` (`redis://[user:password@]host:port[/db]`).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(1),
            config: None,
            #[cfg(feature = "cache-redis-tls")]
            tls_root_ca: None,
        }
    }

    /// Connects to `url` with the defaults.
    ///
    /// # Errors
    /// As [`RedisStoreBuilder::build`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).build().await
    }

    /// The fred pool, for commands the cache API does not cover (Go CDK's `As()`).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The bound on one command.
    #[cfg_attr(not(feature = "cache-memory"), allow(dead_code))]
    pub(super) fn command_timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the store talks to a Redis Cluster.
    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Indices of `keys` in groups one multi-key command may carry: all of them on one
    /// server, one group per hash slot on a cluster.
    fn groups<'k>(&self, keys: impl ExactSizeIterator<Item = &'k [u8]>) -> Vec<Vec<usize>> {
        if self.clustered {
            crate::redis::by_slot(keys)
        } else {
            vec![(0..keys.len()).collect()]
        }
    }

    /// Scans `node` for keys starting with `prefix` and unlinks them; the count removed.
    async fn unlink_prefix<C: KeysInterface + Sync>(&self, node: &C, prefix: &[u8]) -> Result<u64> {
        let pattern = glob_escape(prefix);
        let mut cursor = "0".to_owned();
        let mut removed = 0u64;
        loop {
            let page = node.scan_page(cursor.clone(), pattern.clone(), Some(SCAN_BATCH), None);
            let (next, keys): (String, Vec<Vec<u8>>) =
                crate::redis::bounded(self.timeout, "delete_prefix", page).await?;
            // The pattern covers the prefix's UTF-8 start only (see glob_escape): filter.
            let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| k.starts_with(prefix)).collect();
            for group in self.groups(keys.iter().map(Vec::as_slice)) {
                if group.is_empty() {
                    continue;
                }
                let call = node.unlink::<i64, _>(keys_at(&keys, &group));
                removed += crate::redis::bounded(self.timeout, "delete_prefix", call)
                    .await?
                    .max(0) as u64;
            }
            if next == "0" {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

use crate::redis::{map_err, timed_out};

fn px(ttl: Option<Duration>) -> Option<Expiration> {
    ttl.map(|t| Expiration::PX(millis(t)))
}

fn millis(t: Duration) -> i64 {
    // Redis rejects 0 ms; a sub-millisecond TTL means "expire almost at once".
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl CacheStore for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        cmd!(self, self.pool.next(), "get", |c| c.get(key))
    }

    async fn set(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<()> {
        cmd!(self, self.pool.next(), "set", |c| c.set::<(), _, _>(
            key,
            value,
            px(ttl),
            None,
            false
        ))
    }

    async fn set_if_absent(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let reply: Value = cmd!(self, self.pool.next(), "set_if_absent", |c| c.set(
            key,
            value,
            px(ttl),
            Some(SetOptions::NX),
            false
        ))?;
        Ok(!reply.is_null())
    }

    async fn delete(&self, key: &[u8]) -> Result<bool> {
        let n: i64 = cmd!(self, self.pool.next(), "delete", |c| c.del(key))?;
        Ok(n > 0)
    }

    async fn exists(&self, key: &[u8]) -> Result<bool> {
        let n: i64 = cmd!(self, self.pool.next(), "exists", |c| c.exists(key))?;
        Ok(n > 0)
    }

    async fn ttl(&self, key: &[u8]) -> Result<Option<Ttl>> {
        let ms: i64 = cmd!(self, self.pool.next(), "ttl", |c| c.pttl(key))?;
        Ok(match ms {
            -2 => None,
            -1 => Some(Ttl::Persistent),
            ms => Some(Ttl::Expires(Duration::from_millis(ms.max(0) as u64))),
        })
    }

    async fn expire(&self, key: &[u8], ttl: Option<Duration>) -> Result<bool> {
        match ttl {
            Some(t) => {
                let n: i64 = cmd!(self, self.pool.next(), "expire", |c| c.pexpire(
                    key,
                    millis(t),
                    None
                ))?;
                Ok(n == 1)
            }
            None => {
                // PERSIST answers 0 both for a missing key and one without a TTL.
                let _: i64 = cmd!(self, self.pool.next(), "expire", |c| c.persist(key))?;
                self.exists(key).await
            }
        }
    }

    async fn incr(&self, key: &[u8], delta: i64, ttl: Option<Duration>) -> Result<i64> {
        match ttl {
            None => cmd!(self, self.pool.next(), "incr", |c| c.incr_by(key, delta)),
            // fred has no per-command options for scripts: bounded by the plain timeout only.
            Some(t) => {
                let call =
                    self.pool
                        .eval(INCR_SCRIPT, vec![Key::from(key)], vec![delta, millis(t)]);
                crate::redis::bounded(self.timeout, "incr", call).await
            }
        }
    }

    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>> {
        let groups = self.groups(keys.iter().map(Vec::as_slice));
        // One MGET per group (one in all on a single server), pipelined together.
        let reads = groups.iter().map(|group| async move {
            match group.as_slice() {
                [] => Ok(Vec::new()),
                [one] => Ok(vec![self.get(&keys[*one]).await?]),
                _ => cmd!(self, self.pool.next(), "get_many", |c| c
                    .mget::<Vec<Option<Bytes>>, _>(keys_at(keys, group))),
            }
        });
        let mut out = vec![None; keys.len()];
        for (group, values) in groups
            .iter()
            .zip(futures_util::future::try_join_all(reads).await?)
        {
            for (&i, value) in group.iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    async fn set_many(&self, entries: Vec<(Vec<u8>, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        // fred pipelines concurrent commands on one connection: one round trip in effect.
        let writes = entries
            .into_iter()
            .map(|(k, v)| async move { self.set(&k, v, ttl).await });
        futures_util::future::try_join_all(writes).await?;
        Ok(())
    }

    async fn delete_many(&self, keys: &[Vec<u8>]) -> Result<u64> {
        let groups = self.groups(keys.iter().map(Vec::as_slice));
        let deletes = groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|group| async move {
                let n: i64 = cmd!(self, self.pool.next(), "delete_many", |c| c
                    .del(keys_at(keys, group)))?;
                Ok::<_, crate::Error>(n.max(0) as u64)
            });
        Ok(futures_util::future::try_join_all(deletes)
            .await?
            .into_iter()
            .sum())
    }

    async fn delete_prefix(&self, prefix: &[u8]) -> Result<u64> {
        // SCAN needs one server for the whole iteration: each primary in turn on a cluster.
        let client = self.pool.next_connected();
        if !self.clustered {
            return self.unlink_prefix(client, prefix).await;
        }
        let primaries = client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        if primaries.is_empty() {
            return Err(crate::Error::new(
                crate::ErrorKind::Unavailable,
                "the cluster's primaries are not known yet (connecting)",
            )
            .with_backend("redis")
            .with_operation("delete_prefix"));
        }
        let mut removed = 0;
        for node in primaries {
            removed += self
                .unlink_prefix(&client.with_cluster_node(node), prefix)
                .await?;
        }
        Ok(removed)
    }

    async fn delete_expired(&self) -> Result<Purge> {
        Ok(Purge::NotNeeded)
    }

    async fn lock_acquire(&self, key: &[u8], fence: &[u8], ttl: Duration) -> Result<Option<u64>> {
        let call = self.pool.eval::<Option<String>, _, _, _>(
            LOCK_ACQUIRE_SCRIPT,
            vec![Key::from(key), Key::from(fence)],
            vec![millis(ttl), millis(FENCE_TTL.max(ttl))],
        );
        match crate::redis::bounded(self.timeout, "lock", call).await? {
            None => Ok(None),
            Some(token) => token.parse().map(Some).map_err(|_| {
                crate::Error::new(
                    crate::ErrorKind::Backend,
                    format!("the lock script answered {token:?}, not a token"),
                )
                .with_backend("redis")
                .with_operation("lock")
            }),
        }
    }

    async fn lock_extend(&self, key: &[u8], token: u64, ttl: Duration) -> Result<bool> {
        let call = self.pool.eval::<i64, _, _, _>(
            LOCK_EXTEND_SCRIPT,
            vec![Key::from(key)],
            vec![token.to_string(), millis(ttl).to_string()],
        );
        Ok(crate::redis::bounded(self.timeout, "lock_extend", call).await? == 1)
    }

    async fn lock_release(&self, key: &[u8], token: u64) -> Result<bool> {
        let call = self.pool.eval::<i64, _, _, _>(
            LOCK_RELEASE_SCRIPT,
            vec![Key::from(key)],
            vec![token.to_string()],
        );
        Ok(crate::redis::bounded(self.timeout, "unlock", call).await? == 1)
    }

    async fn ping(&self) -> Result<()> {
        let _: String = cmd!(self, self.pool.next(), "ping", |c| c.ping(None))?;
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        crate::redis::bounded(self.timeout, "close", self.pool.quit()).await
    }
}
