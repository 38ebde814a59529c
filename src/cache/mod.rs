//! One caching API over an in-process store and Redis.
//!
//! [`CacheStore`] is the bytes-level trait every backend implements; [`Cache`] is the handle
//! applications use: typed values through a [`Codec`] (JSON by default), a key namespace and
//! version, default TTL with optional jitter, input limits, single-flight
//! [`get_or_set`](Cache::get_or_set), statistics and a `tracing` span on every backend call. All
//! of that is written once here, not per backend.
//!
//! Keys are anything that is bytes: `&str` and `String` for text keys, `&[u8]`, `Vec<u8>` or
//! `Bytes` for binary ones (hashes, packed ids). Every backend stores a key byte for byte, so
//! `"é"` and its UTF-8 bytes are the same key, and a binary key never collides with a different
//! text one.
//!
//! | backend | feature | type |
//! |---|---|---|
//! | in-process, bounded by entries or bytes, per-entry TTL | `cache-memory` | [`MemoryStore`] |
//! | Redis (standalone; cluster and sentinel through fred's config) | `cache-redis` | [`RedisStore`] |
//! | memory in front of Redis, invalidated across instances | `cache-memory` + `cache-redis` | [`TieredStore`] |
//!
//! ```
//! # #[cfg(feature = "cache-memory")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use corekit::cache::{Cache, MemoryStore};
//! use std::time::Duration;
//!
//! let cache = Cache::builder(MemoryStore::new(10_000))
//!     .prefix("users")
//!     .default_ttl(Some(Duration::from_secs(60)))
//!     .build()?;
//! cache.set("42", &"Ada").await?;
//! assert_eq!(cache.get::<String>("42").await?.as_deref(), Some("Ada"));
//!
//! // Many concurrent misses, one loader run:
//! let name: String = cache
//!     .get_or_set("43", None, || async { Ok::<_, std::io::Error>("Grace".to_string()) })
//!     .await?;
//! assert_eq!(name, "Grace");
//! # Ok::<(), corekit::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Configuration
//!
//! [`Cache::from_env`] reads [`CacheConfig`] from `CACHE_*` variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CACHE_BACKEND` | `memory` | `memory`, `redis` or `tiered` |
//! | `CACHE_REDIS_URL` | `redis://127.0.0.1:6379` | `redis://[user:pass@]host:port/db`, or `rediss://` for TLS (feature `cache-redis-tls`) |
//! | `CACHE_DEFAULT_TTL` | `1h` | TTL of `set` without one; `0` keeps entries until evicted |
//! | `CACHE_TTL_JITTER` | `0` | fraction (0..1) taken off TTLs at random, so keys set together expire apart |
//! | `CACHE_PREFIX` | *(none)* | namespace: keys become `PREFIX:key` |
//! | `CACHE_VERSION` | *(none)* | keys become `PREFIX:vVERSION:key`; bump it to drop a whole cache generation |
//! | `CACHE_MAX_ENTRIES` | `10000` | memory store bound (entries) |
//! | `CACHE_MAX_BYTES` | *(none)* | memory store bound (bytes of keys + values); takes over from entries when set |
//! | `CACHE_MAX_KEY_LEN` | `1024` | longer keys are `InvalidInput` |
//! | `CACHE_MAX_VALUE_SIZE` | `16MiB` | larger values are `InvalidInput` |
//! | `CACHE_REDIS_CA_FILE` | *(none)* | PEM CA(s) to trust for `rediss://` instead of the system roots (feature `cache-redis-tls`) |
//! | `CACHE_REDIS_POOL_SIZE` | `1` | Redis connections; each auto-pipelines, and one was fastest in our benches |
//! | `CACHE_CONNECT_TIMEOUT` | `5s` | Redis connect timeout |
//! | `CACHE_COMMAND_TIMEOUT` | `1s` | bound on every Redis command, reconnect waits included; `0` removes the bound (a little faster, see BENCHMARKS.md, but a hung server then blocks callers) |
//! | `CACHE_NEAR_TTL` | `60s` | tiered: longest time a near copy is kept |
//! | `CACHE_NEAR_MAX_ENTRIES` | `10000` | tiered: near tier bound |
//! | `CACHE_INVALIDATION_CHANNEL` | `corekit:cache:invalidate` | tiered: Redis pub/sub channel |

mod codec;
mod config;
mod limiter;
#[cfg(feature = "cache-memory")]
mod memory;
#[cfg(feature = "cache-redis")]
mod redis;
mod stats;
#[cfg(all(feature = "cache-memory", feature = "cache-redis"))]
mod tiered;

pub use codec::{Codec, Json, Postcard};
pub use config::{CacheBackend, CacheConfig};
pub use limiter::{RateLimit, RateLimiter};
#[cfg(feature = "cache-memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache-memory")))]
pub use memory::MemoryStore;
#[cfg(feature = "cache-redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache-redis")))]
pub use redis::{RedisStore, RedisStoreBuilder};
pub use stats::CacheStats;
#[cfg(all(feature = "cache-memory", feature = "cache-redis"))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(feature = "cache-memory", feature = "cache-redis")))
)]
pub use tiered::TieredStore;

use crate::config::{ConfigIssue, EnvConfig};
use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use stats::Counters;
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;

/// The remaining lifetime of a key, as [`CacheStore::ttl`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key never expires.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

/// What [`CacheStore::delete_expired`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// This many expired entries were removed.
    Removed(u64),
    /// The backend expires keys itself (Redis); there was nothing to do.
    NotNeeded,
}

/// The bytes-level operations every cache backend implements.
///
/// Keys arrive already namespaced and validated by [`Cache`], as bytes (text or binary: every
/// backend stores them byte for byte); values are opaque bytes. Methods
/// return [`ErrorKind::Timeout`]/[`ErrorKind::Unavailable`] (retryable) when the server cannot be
/// reached within the configured timeout, never hang.
///
/// Counters written by [`incr`](Self::incr) are stored as decimal text (`b"42"`), the same on
/// every backend.
pub trait CacheStore: Send + Sync + 'static {
    /// The backend's name for errors and spans (`"memory"`, `"redis"`, `"tiered"`).
    fn name(&self) -> &'static str;

    /// The value at `key`, or `None` when missing or expired.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Answers a lookup from process memory without I/O, when the store can: `Some(found)`
    /// settles it, `None` means "ask [`get`](Self::get)". The memory store always answers; the
    /// tiered store answers near hits; Redis never does. [`Cache`] tries this first, so
    /// in-process hits skip the async call and its span (they are still counted in
    /// [`CacheStats`]).
    fn get_local(&self, key: &[u8]) -> Option<Option<Bytes>> {
        let _ = key;
        None
    }

    /// Stores `value` at `key`, expiring after `ttl` (`None`: never).
    fn set(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stores `value` only if `key` holds nothing; true when it was stored. Atomic.
    fn set_if_absent(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes `key`; true when it existed.
    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<bool>> + Send;

    /// Whether `key` holds a live value.
    fn exists(&self, key: &[u8]) -> impl Future<Output = Result<bool>> + Send;

    /// The remaining lifetime of `key`, or `None` when it is missing.
    fn ttl(&self, key: &[u8]) -> impl Future<Output = Result<Option<Ttl>>> + Send;

    /// Sets the lifetime of an existing key (`None`: never expire); false when it is missing.
    fn expire(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Adds `delta` to the integer at `key` (a missing key counts as 0) and returns the result.
    /// When the key had no expiry and `ttl` is given, the key then expires after `ttl`. Atomic.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the key holds something that is not an integer.
    fn incr(
        &self,
        key: &[u8],
        delta: i64,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<i64>> + Send;

    /// The values at `keys`, in order.
    fn get_many(&self, keys: &[Vec<u8>])
    -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send;

    /// Stores every entry, each expiring after `ttl`.
    fn set_many(
        &self,
        entries: Vec<(Vec<u8>, Bytes)>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes `keys`; returns how many existed.
    fn delete_many(&self, keys: &[Vec<u8>]) -> impl Future<Output = Result<u64>> + Send;

    /// Removes every key starting with `prefix` (all keys for `""`); returns how many.
    fn delete_prefix(&self, prefix: &[u8]) -> impl Future<Output = Result<u64>> + Send;

    /// Removes entries whose TTL has passed, where the backend keeps them until then.
    fn delete_expired(&self) -> impl Future<Output = Result<Purge>> + Send;

    /// Checks that the backend answers (for readiness probes).
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// Entries the backend evicted to stay within its bounds, since it was created.
    fn evictions(&self) -> u64 {
        0
    }
}

/// The backend chosen at run time by [`Cache::from_env`].
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// [`MemoryStore`].
    #[cfg(feature = "cache-memory")]
    Memory(MemoryStore),
    /// [`RedisStore`].
    #[cfg(feature = "cache-redis")]
    Redis(RedisStore),
    /// [`TieredStore`].
    #[cfg(all(feature = "cache-memory", feature = "cache-redis"))]
    Tiered(TieredStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "cache-memory")]
            AnyStore::Memory($s) => $call,
            #[cfg(feature = "cache-redis")]
            AnyStore::Redis($s) => $call,
            #[cfg(all(feature = "cache-memory", feature = "cache-redis"))]
            AnyStore::Tiered($s) => $call,
        }
    };
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        dispatch!(self, s => s.fmt(f))
    }
}

impl CacheStore for AnyStore {
    fn name(&self) -> &'static str {
        dispatch!(self, s => s.name())
    }
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        dispatch!(self, s => s.get(key).await)
    }
    fn get_local(&self, key: &[u8]) -> Option<Option<Bytes>> {
        dispatch!(self, s => s.get_local(key))
    }
    async fn set(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, s => s.set(key, value, ttl).await)
    }
    async fn set_if_absent(&self, key: &[u8], value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        dispatch!(self, s => s.set_if_absent(key, value, ttl).await)
    }
    async fn delete(&self, key: &[u8]) -> Result<bool> {
        dispatch!(self, s => s.delete(key).await)
    }
    async fn exists(&self, key: &[u8]) -> Result<bool> {
        dispatch!(self, s => s.exists(key).await)
    }
    async fn ttl(&self, key: &[u8]) -> Result<Option<Ttl>> {
        dispatch!(self, s => s.ttl(key).await)
    }
    async fn expire(&self, key: &[u8], ttl: Option<Duration>) -> Result<bool> {
        dispatch!(self, s => s.expire(key, ttl).await)
    }
    async fn incr(&self, key: &[u8], delta: i64, ttl: Option<Duration>) -> Result<i64> {
        dispatch!(self, s => s.incr(key, delta, ttl).await)
    }
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>> {
        dispatch!(self, s => s.get_many(keys).await)
    }
    async fn set_many(&self, entries: Vec<(Vec<u8>, Bytes)>, ttl: Option<Duration>) -> Result<()> {
        dispatch!(self, s => s.set_many(entries, ttl).await)
    }
    async fn delete_many(&self, keys: &[Vec<u8>]) -> Result<u64> {
        dispatch!(self, s => s.delete_many(keys).await)
    }
    async fn delete_prefix(&self, prefix: &[u8]) -> Result<u64> {
        dispatch!(self, s => s.delete_prefix(prefix).await)
    }
    async fn delete_expired(&self) -> Result<Purge> {
        dispatch!(self, s => s.delete_expired().await)
    }
    async fn ping(&self) -> Result<()> {
        dispatch!(self, s => s.ping().await)
    }
    fn evictions(&self) -> u64 {
        dispatch!(self, s => s.evictions())
    }
}

/// The cache handle: typed values over a [`CacheStore`], namespaced, validated and counted.
///
/// Cloning is cheap and clones share the store, the statistics and the single-flight table.
pub struct Cache<S = AnyStore, C = Json> {
    inner: Arc<Inner<S, C>>,
}

impl<S: CacheStore + std::fmt::Debug, C> std::fmt::Debug for Cache<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.inner.store)
            .field("namespace", &self.inner.namespace)
            .field("default_ttl", &self.inner.default_ttl)
            .finish_non_exhaustive()
    }
}

impl<S, C> Clone for Cache<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S, C> {
    store: S,
    codec: C,
    namespace: String,
    default_ttl: Option<Duration>,
    jitter: f64,
    max_key_len: usize,
    max_value_size: usize,
    counters: Counters,
    flights: Mutex<HashMap<Vec<u8>, watch::Receiver<Flight>>>,
}

/// What a single-flight leader tells the callers waiting on it.
#[derive(Clone)]
enum Flight {
    Running,
    Loaded(Bytes),
    Failed(ErrorKind, String),
}

impl Cache<AnyStore, Json> {
    /// A cache configured from `CACHE_*` variables (see the [module docs](self)).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a bad variable; [`ErrorKind::Unavailable`] when Redis does not
    /// answer within the connect timeout.
    pub async fn from_env() -> Result<Self> {
        Self::from_config(CacheConfig::from_env()?).await
    }

    /// A cache built from an explicit [`CacheConfig`].
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub async fn from_config(config: CacheConfig) -> Result<Self> {
        config
            .validate()
            .map_err(|issue| issue.into_error(CacheConfig::PREFIX, CacheConfig::SECRETS))?;
        let store = config.connect().await?;
        Cache::builder(store).apply(&config).build()
    }
}

impl<S: CacheStore> Cache<S, Json> {
    /// A builder over `store`, with JSON values and the documented defaults.
    pub fn builder(store: S) -> CacheBuilder<S, Json> {
        CacheBuilder {
            store,
            codec: Json,
            prefix: String::new(),
            version: None,
            default_ttl: Some(Duration::from_secs(3600)),
            jitter: 0.0,
            max_key_len: 1024,
            max_value_size: 16 << 20,
        }
    }

    /// A cache over `store` with every default.
    pub fn new(store: S) -> Self {
        Self::builder(store).build_unchecked()
    }
}

/// Builds a [`Cache`]; from [`Cache::builder`].
#[must_use]
pub struct CacheBuilder<S, C> {
    store: S,
    codec: C,
    prefix: String,
    version: Option<String>,
    default_ttl: Option<Duration>,
    jitter: f64,
    max_key_len: usize,
    max_value_size: usize,
}

impl<S: CacheStore, C: Codec> CacheBuilder<S, C> {
    /// Namespace: every key is stored as `prefix:key`, so two services never read each other's.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Cache version: keys are stored as `prefix:vVERSION:key`. Bumping it makes every old
    /// entry unreachable at once (they then expire on their own).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// TTL used by [`Cache::set`]; `None` keeps entries until evicted or deleted. Default 1 hour.
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl.filter(|t| !t.is_zero());
        self
    }

    /// Takes up to this fraction (0 to 1) off every TTL at random, so keys written together do
    /// not expire together. Default 0.
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// Longest key accepted, in bytes before namespacing. Default 1024.
    pub fn max_key_len(mut self, len: usize) -> Self {
        self.max_key_len = len;
        self
    }

    /// Largest encoded value accepted, in bytes. Default 16 MiB.
    pub fn max_value_size(mut self, size: usize) -> Self {
        self.max_value_size = size;
        self
    }

    /// Encodes values with `codec` instead of JSON.
    pub fn codec<C2: Codec>(self, codec: C2) -> CacheBuilder<S, C2> {
        CacheBuilder {
            store: self.store,
            codec,
            prefix: self.prefix,
            version: self.version,
            default_ttl: self.default_ttl,
            jitter: self.jitter,
            max_key_len: self.max_key_len,
            max_value_size: self.max_value_size,
        }
    }

    fn apply(self, config: &CacheConfig) -> Self {
        let mut b = self
            .prefix(config.prefix.clone())
            .default_ttl(config.default_ttl)
            .ttl_jitter(config.ttl_jitter)
            .max_key_len(config.max_key_len)
            .max_value_size(config.max_value_size as usize);
        b.version = config.version.clone().filter(|v| !v.is_empty());
        b
    }

    /// The cache.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the jitter is outside 0..1 or a limit is zero; the same checks
    /// as [`CacheConfig`] from the environment.
    pub fn build(self) -> Result<Cache<S, C>> {
        let issue = if !(0.0..1.0).contains(&self.jitter) {
            Some(ConfigIssue::new(
                "ttl_jitter",
                self.jitter.to_string(),
                "a fraction from 0 up to (not including) 1",
            ))
        } else if self.max_key_len == 0 {
            Some(ConfigIssue::new("max_key_len", "0", "a length above 0"))
        } else if self.max_value_size == 0 {
            Some(ConfigIssue::new("max_value_size", "0", "a size above 0"))
        } else {
            None
        };
        match issue {
            Some(issue) => Err(issue.into_error(CacheConfig::PREFIX, &[])),
            None => Ok(self.build_unchecked()),
        }
    }

    fn build_unchecked(self) -> Cache<S, C> {
        let mut namespace = String::new();
        if !self.prefix.is_empty() {
            namespace.push_str(&self.prefix);
            namespace.push(':');
        }
        if let Some(v) = &self.version {
            namespace.push('v');
            namespace.push_str(v);
            namespace.push(':');
        }
        Cache {
            inner: Arc::new(Inner {
                store: self.store,
                codec: self.codec,
                namespace,
                default_ttl: self.default_ttl,
                jitter: self.jitter,
                max_key_len: self.max_key_len,
                max_value_size: self.max_value_size,
                counters: Counters::default(),
                flights: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl<S: CacheStore, C: Codec> Cache<S, C> {
    /// The backend.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Hits, misses, sets, evictions and errors since the cache was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot(self.inner.store.evictions())
    }

    /// The namespace every key is stored under (`"prefix:v2:"`, or empty).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    #[inline]
    fn key<'k>(&self, key: &'k [u8], op: &'static str) -> Result<Cow<'k, [u8]>> {
        if key.is_empty() || key.len() > self.inner.max_key_len {
            return Err(self.bad_key(key, op));
        }
        if self.inner.namespace.is_empty() {
            return Ok(Cow::Borrowed(key));
        }
        let mut full = Vec::with_capacity(self.inner.namespace.len() + key.len());
        full.extend_from_slice(self.inner.namespace.as_bytes());
        full.extend_from_slice(key);
        Ok(Cow::Owned(full))
    }

    #[cold]
    #[inline(never)]
    fn bad_key(&self, key: &[u8], op: &'static str) -> Error {
        let message = if key.is_empty() {
            "cache keys cannot be empty".to_owned()
        } else {
            format!(
                "key of {} bytes is longer than the {}-byte limit",
                key.len(),
                self.inner.max_key_len
            )
        };
        Error::invalid_input(message).with_operation(op)
    }

    fn check_size(&self, len: usize, key: &[u8], op: &'static str) -> Result<()> {
        if len > self.inner.max_value_size {
            return Err(Error::invalid_input(format!(
                "value for key {} is {len} bytes, over the {}-byte limit",
                show_key(key),
                self.inner.max_value_size
            ))
            .with_operation(op));
        }
        Ok(())
    }

    fn effective_ttl(&self, ttl: Option<Duration>) -> Option<Duration> {
        let ttl = ttl?;
        if self.inner.jitter <= 0.0 {
            return Some(ttl);
        }
        let cut = ttl.mul_f64(self.inner.jitter * fastrand::f64());
        Some(ttl.saturating_sub(cut).max(Duration::from_millis(1)))
    }

    /// Runs one backend call through the instrumentation layer, counting errors.
    async fn call<T, F>(&self, op: &'static str, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let system = self.inner.store.name();
        let call = crate::instrument::Call::new(crate::instrument::Module::Cache, system, op);
        let span = || {
            tracing::debug_span!(
                "cache",
                otel.name = op,
                db.system = system,
                db.operation = op
            )
        };
        let result = crate::instrument::call(call, tracing::Level::DEBUG, span, fut).await;
        if result.is_err() {
            self.inner.counters.error();
        }
        result
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        key: &[u8],
        value: &T,
        op: &'static str,
    ) -> Result<Bytes> {
        let bytes = self.inner.codec.encode(value).map_err(|e| {
            Error::invalid_input(format!("cannot encode the value for key {}", show_key(key)))
                .with_operation(op)
                .with_source(e)
        })?;
        self.check_size(bytes.len(), key, op)?;
        Ok(Bytes::from(bytes))
    }

    fn decode<T: DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T> {
        self.inner.codec.decode(bytes).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!(
                    "the value at key {} cannot be decoded as {} ({} codec)",
                    show_key(key),
                    std::any::type_name::<T>(),
                    self.inner.codec.name()
                ),
            )
            .with_backend(self.inner.store.name())
            .with_operation("get")
            .with_source(e)
        })
    }

    /// The value at `key`, decoded; `None` when missing or expired.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad key; [`ErrorKind::Backend`] naming the key when the
    /// stored bytes do not decode as `T`; timeouts and unavailability from the backend.
    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
    ) -> Result<Option<T>> {
        let key = key.as_ref();
        match self.get_bytes(key).await? {
            Some(bytes) => self.decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The raw bytes at `key`.
    ///
    /// An in-process answer (the memory store, the tiered store's near tier) completes on the
    /// first poll, with no boxed future and no span; other lookups go to the backend.
    ///
    /// # Errors
    /// As [`get`](Self::get), without decoding.
    pub fn get_bytes<'a>(&'a self, key: &'a (impl AsRef<[u8]> + ?Sized)) -> GetBytes<'a, S, C> {
        GetBytes {
            cache: self,
            key: key.as_ref(),
            remote: None,
        }
    }

    async fn get_remote(&self, full: Vec<u8>) -> Result<Option<Bytes>> {
        let found = self.call("get", self.inner.store.get(&full)).await?;
        self.count_lookup(found.is_some());
        Ok(found)
    }

    #[inline]
    fn count_lookup(&self, hit: bool) {
        if hit {
            self.inner.counters.hit();
        } else {
            self.inner.counters.miss();
        }
    }

    /// Stores `value` at `key` with the default TTL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad key, a value that does not encode, or one over the
    /// size limit; timeouts and unavailability from the backend.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        value: &T,
    ) -> Result<()> {
        self.set_with_ttl(key, value, self.inner.default_ttl).await
    }

    /// Stores `value` at `key`, expiring after `ttl` (`None`: never).
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub async fn set_with_ttl<T: Serialize + ?Sized>(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let key = key.as_ref();
        let bytes = self.encode(key, value, "set")?;
        self.set_bytes(key, bytes, ttl).await
    }

    /// Stores raw bytes at `key`, expiring after `ttl` (`None`: never).
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub async fn set_bytes(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let key = key.as_ref();
        let full = self.key(key, "set")?;
        self.check_size(value.len(), key, "set")?;
        let ttl = self.effective_ttl(ttl);
        self.call("set", self.inner.store.set(&full, value, ttl))
            .await?;
        self.inner.counters.set();
        Ok(())
    }

    /// Stores `value` only if `key` holds nothing (atomic on every backend); true when stored.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub async fn set_if_absent<T: Serialize + ?Sized>(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let key = key.as_ref();
        let full = self.key(key, "set_if_absent")?;
        let bytes = self.encode(key, value, "set_if_absent")?;
        let ttl = self.effective_ttl(ttl);
        let stored = self
            .call(
                "set_if_absent",
                self.inner.store.set_if_absent(&full, bytes, ttl),
            )
            .await?;
        if stored {
            self.inner.counters.set();
        }
        Ok(stored)
    }

    /// Removes `key`; true when it existed.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a bad key; timeouts and unavailability from the backend.
    pub async fn delete(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> Result<bool> {
        let full = self.key(key.as_ref(), "delete")?;
        self.call("delete", self.inner.store.delete(&full)).await
    }

    /// Whether `key` holds a live value.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub async fn exists(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> Result<bool> {
        let full = self.key(key.as_ref(), "exists")?;
        self.call("exists", self.inner.store.exists(&full)).await
    }

    /// The remaining lifetime of `key`; `None` when missing.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub async fn ttl(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> Result<Option<Ttl>> {
        let full = self.key(key.as_ref(), "ttl")?;
        self.call("ttl", self.inner.store.ttl(&full)).await
    }

    /// Sets the lifetime of an existing key (`None`: never expire); false when it is missing.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub async fn expire(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let full = self.key(key.as_ref(), "expire")?;
        self.call("expire", self.inner.store.expire(&full, ttl))
            .await
    }

    /// Atomically adds `delta` to the counter at `key` (missing counts as 0) and returns it.
    /// A new counter gets no TTL; use [`expire`](Self::expire) or [`RateLimiter`] for windows.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the key holds something other than an integer.
    pub async fn incr(&self, key: &(impl AsRef<[u8]> + ?Sized), delta: i64) -> Result<i64> {
        let full = self.key(key.as_ref(), "incr")?;
        self.call("incr", self.inner.store.incr(&full, delta, None))
            .await
    }

    /// Atomically subtracts `delta`; see [`incr`](Self::incr).
    ///
    /// # Errors
    /// As [`incr`](Self::incr).
    pub async fn decr(&self, key: &(impl AsRef<[u8]> + ?Sized), delta: i64) -> Result<i64> {
        let full = self.key(key.as_ref(), "decr")?;
        let delta = delta.checked_neg().ok_or_else(|| {
            Error::invalid_input("decrement overflows i64").with_operation("decr")
        })?;
        self.call("decr", self.inner.store.incr(&full, delta, None))
            .await
    }

    pub(crate) async fn incr_window(&self, key: &[u8], window: Duration) -> Result<i64> {
        let full = self.key(key, "incr")?;
        self.call("incr", self.inner.store.incr(&full, 1, Some(window)))
            .await
    }

    /// The values at `keys`, in order; one round trip on Redis.
    ///
    /// # Errors
    /// As [`get`](Self::get), for any of the keys.
    pub async fn get_many<T: DeserializeOwned>(
        &self,
        keys: &[impl AsRef<[u8]>],
    ) -> Result<Vec<Option<T>>> {
        let full = keys
            .iter()
            .map(|k| self.key(k.as_ref(), "get_many").map(Cow::into_owned))
            .collect::<Result<Vec<_>>>()?;
        let found = self
            .call("get_many", self.inner.store.get_many(&full))
            .await?;
        let mut out = Vec::with_capacity(found.len());
        for (key, bytes) in keys.iter().zip(found) {
            match bytes {
                Some(b) => {
                    self.inner.counters.hit();
                    out.push(Some(self.decode(key.as_ref(), &b)?));
                }
                None => {
                    self.inner.counters.miss();
                    out.push(None);
                }
            }
        }
        Ok(out)
    }

    /// Stores every `(key, value)` with the default TTL; pipelined on Redis.
    ///
    /// # Errors
    /// As [`set`](Self::set), for any of the entries; nothing is written when one is invalid.
    pub async fn set_many<T: Serialize>(&self, entries: &[(impl AsRef<[u8]>, T)]) -> Result<()> {
        let mut encoded = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let key = key.as_ref();
            encoded.push((
                self.key(key, "set_many")?.into_owned(),
                self.encode(key, value, "set_many")?,
            ));
        }
        let n = encoded.len() as u64;
        let ttl = self.effective_ttl(self.inner.default_ttl);
        self.call("set_many", self.inner.store.set_many(encoded, ttl))
            .await?;
        self.inner.counters.sets(n);
        Ok(())
    }

    /// Removes `keys`; returns how many existed.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub async fn delete_many(&self, keys: &[impl AsRef<[u8]>]) -> Result<u64> {
        let full = keys
            .iter()
            .map(|k| self.key(k.as_ref(), "delete_many").map(Cow::into_owned))
            .collect::<Result<Vec<_>>>()?;
        self.call("delete_many", self.inner.store.delete_many(&full))
            .await
    }

    /// Removes every key of this cache starting with `prefix` (SCAN + UNLINK on Redis, never
    /// `KEYS`); returns how many.
    ///
    /// # Errors
    /// Timeouts and unavailability from the backend.
    pub async fn delete_prefix(&self, prefix: &(impl AsRef<[u8]> + ?Sized)) -> Result<u64> {
        let mut full = self.inner.namespace.as_bytes().to_vec();
        full.extend_from_slice(prefix.as_ref());
        self.call("delete_prefix", self.inner.store.delete_prefix(&full))
            .await
    }

    /// Removes every key of this cache's namespace. With no prefix or version configured that
    /// is every key in the store (the whole Redis database), so give shared stores a prefix.
    ///
    /// # Errors
    /// As [`delete_prefix`](Self::delete_prefix).
    pub async fn clear(&self) -> Result<u64> {
        self.delete_prefix("").await
    }

    /// Purges expired entries from a store that keeps them until touched (the memory store);
    /// [`Purge::NotNeeded`] on Redis, which expires keys itself.
    ///
    /// # Errors
    /// Timeouts and unavailability from the backend.
    pub async fn delete_expired(&self) -> Result<Purge> {
        self.call("delete_expired", self.inner.store.delete_expired())
            .await
    }

    /// Checks that the backend answers, for readiness probes.
    ///
    /// # Errors
    /// Timeouts and unavailability from the backend.
    pub async fn ping(&self) -> Result<()> {
        self.call("ping", self.inner.store.ping()).await
    }

    /// The value at `key`, or the loader's value, which is then stored with `ttl` (`None`: the
    /// default TTL).
    ///
    /// However many callers in this process miss on the same key at once, the loader runs once;
    /// the others wait for its result. A loader error is returned to the caller that ran it and
    /// to every waiter, and nothing is cached. If the running caller is cancelled, a waiter
    /// takes over.
    ///
    /// # Errors
    /// [`ErrorKind::Backend`] wrapping the loader's error; otherwise as [`get`](Self::get) and
    /// [`set`](Self::set).
    pub async fn get_or_set<T, F, Fut, E>(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<crate::BoxError>,
    {
        let key = key.as_ref();
        let ttl = ttl.or(self.inner.default_ttl);
        let mut loader = Some(loader);
        loop {
            if let Some(value) = self.get::<T>(key).await? {
                return Ok(value);
            }
            let full = self.key(key, "get_or_set")?.into_owned();
            let waiting = {
                let mut flights = self
                    .inner
                    .flights
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match flights.get(&full) {
                    Some(rx) => Ok(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(Flight::Running);
                        flights.insert(full.clone(), rx);
                        Err(tx)
                    }
                }
            };
            let waiting = match waiting {
                Ok(rx) => Some(rx),
                Err(tx) => {
                    let guard = FlightGuard {
                        flights: &self.inner.flights,
                        key: full,
                        tx,
                    };
                    let Some(loader) = loader.take() else {
                        return Err(Error::new(
                            ErrorKind::Backend,
                            "single-flight loader was already used",
                        ));
                    };
                    return self.lead(key, ttl, loader, guard).await;
                }
            };
            if let Some(mut rx) = waiting {
                let outcome = match rx.wait_for(|f| !matches!(f, Flight::Running)).await {
                    Ok(flight) => flight.clone(),
                    // The leader was dropped (cancelled): loop and try to lead.
                    Err(_) => continue,
                };
                match outcome {
                    Flight::Loaded(bytes) => return self.decode(key, &bytes),
                    Flight::Failed(kind, message) => {
                        return Err(Error::new(kind, message)
                            .with_operation("get_or_set")
                            .with_backend(self.inner.store.name()));
                    }
                    Flight::Running => continue,
                }
            }
        }
    }

    async fn lead<T, F, Fut, E>(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
        loader: F,
        guard: FlightGuard<'_>,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<crate::BoxError>,
    {
        // Another leader may have stored the value between our miss and taking the lead.
        if let Some(bytes) = self.call("get", self.inner.store.get(&guard.key)).await? {
            let value = self.decode(key, &bytes);
            if value.is_ok() {
                guard.finish(Flight::Loaded(bytes));
            }
            return value;
        }
        let result = loader().await.map_err(|e| {
            let source: crate::BoxError = e.into();
            Error::new(
                ErrorKind::Backend,
                format!("loader for key {} failed: {source}", show_key(key)),
            )
            .with_operation("get_or_set")
        });
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                guard.finish(Flight::Failed(e.kind(), e.message().to_owned()));
                return Err(e);
            }
        };
        let bytes = match self.encode(key, &value, "get_or_set") {
            Ok(b) => b,
            Err(e) => {
                guard.finish(Flight::Failed(e.kind(), e.to_string()));
                return Err(e);
            }
        };
        let ttl = self.effective_ttl(ttl);
        let stored = self
            .call("set", self.inner.store.set(&guard.key, bytes.clone(), ttl))
            .await;
        // Waiters get the value even when storing it failed; the caller sees the error.
        guard.finish(Flight::Loaded(bytes));
        stored?;
        self.inner.counters.set();
        Ok(value)
    }
}

/// A key for messages: quoted text, or `0x…` hex when it is not UTF-8.
pub(crate) fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => format!("{text:?}"),
        Err(_) => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

/// The future of [`Cache::get_bytes`].
#[must_use = "futures do nothing unless polled"]
pub struct GetBytes<'a, S, C> {
    cache: &'a Cache<S, C>,
    key: &'a [u8],
    remote: Option<RemoteGet<'a>>,
}

type RemoteGet<'a> = Pin<Box<dyn Future<Output = Result<Option<Bytes>>> + Send + 'a>>;

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
struct FlightGuard<'a> {
    flights: &'a Mutex<HashMap<Vec<u8>, watch::Receiver<Flight>>>,
    key: Vec<u8>,
    tx: watch::Sender<Flight>,
}

impl FlightGuard<'_> {
    fn finish(self, outcome: Flight) {
        // Remove first so a caller arriving now reads the store instead of a finished flight.
        self.remove();
        self.tx.send_replace(outcome);
    }

    fn remove(&self) {
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

/// A `SCAN MATCH` pattern for keys starting with `prefix`: its glob characters escaped, then
/// `*`. fred takes patterns as text, so a prefix that is not UTF-8 is matched by its longest
/// UTF-8 start; the caller filters the keys SCAN returns by the whole prefix.
#[cfg(feature = "cache-redis")]
fn glob_escape(prefix: &[u8]) -> String {
    let text = match std::str::from_utf8(prefix) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&prefix[..e.valid_up_to()]).unwrap_or_default(),
    };
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

#[cfg(all(test, feature = "cache-redis"))]
mod tests {
    #[test]
    fn glob_escape_makes_prefix_literal() {
        assert_eq!(super::glob_escape(b"a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
        assert_eq!(super::glob_escape(b""), "*");
        assert_eq!(super::glob_escape(b"ns:\xff\x00"), "ns:*");
    }
}
