//! The `Cache` handle: typed values over a store, namespaced, validated, counted and
//! instrumented.

use super::stats::Counters;
#[allow(unused_imports)]
use super::*;
use crate::config::EnvConfig;
use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The cache handle: typed values over a [`CacheStore`], namespaced, validated and counted.
///
/// Cloning is cheap and clones share the store, the statistics and the single-flight table.
///
/// ```
/// # #[cfg(feature = "cache-memory")]
/// # block_on(async {
/// use corekit::cache::{Cache, MemoryStore};
/// use std::time::Duration;
///
/// let cache = Cache::builder(MemoryStore::new(10_000))
///     .prefix("users")
///     .default_ttl(Some(Duration::from_secs(60)))
///     .build()?;
/// cache.set("42", &"Ada").await?;
/// assert_eq!(cache.get::<String>("42").await?.as_deref(), Some("Ada"));
/// // Loaded once however many callers miss at the same time, then cached.
/// let plan: String = cache
///     .get_or_set("plan:42", None, || async { Ok::<_, std::io::Error>("pro".to_string()) })
///     .await?;
/// assert_eq!(plan, "pro");
/// assert_eq!(cache.incr("logins:42", 1).await?, 1);
/// # Ok::<(), corekit::Error>(()) }).unwrap();
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
pub struct Cache<S = AnyStore, C = Json> {
    pub(super) inner: Arc<Inner<S, C>>,
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

pub(super) struct Inner<S, C> {
    pub(super) store: S,
    pub(super) codec: C,
    pub(super) namespace: String,
    pub(super) default_ttl: Option<Duration>,
    pub(super) jitter: f64,
    pub(super) max_key_len: usize,
    pub(super) max_value_size: usize,
    pub(super) loader_timeout: Option<Duration>,
    pub(super) refresh: super::refresh::RefreshSettings,
    pub(super) copies: Option<super::refresh::Copies>,
    pub(super) counters: Counters,
    pub(super) flights: super::flight::Flights,
}

/// What a single-flight leader tells the callers waiting on it.
#[derive(Clone)]
pub(super) enum Flight {
    Running,
    Loaded(Bytes),
    Failed(ErrorKind, String),
}

impl Cache<AnyStore, Json> {
    /// A cache configured from `CACHE_*` variables (see the [module docs](crate::cache)).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a bad variable; [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when Redis does not
    /// answer within the connect timeout.
    pub async fn from_env() -> Result<Self> {
        let config = CacheConfig::from_env()?;
        if config.backend() == super::CacheBackend::Memory {
            crate::config::warn_if_defaulted(
                CacheConfig::PREFIX,
                "the cache is in this process's memory, shared with no other process",
                "CACHE_URL=redis://host:6379 (or CACHE_BACKEND=memory to choose this)",
            );
        }
        Self::from_config(&config).await
    }

    /// A cache built from an explicit [`CacheConfig`].
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub async fn from_config(config: &CacheConfig) -> Result<Self> {
        config
            .validate()
            .map_err(|issue| issue.into_error(CacheConfig::PREFIX, CacheConfig::SECRETS))?;
        let store = config.connect().await?;
        Cache::builder(store).apply(config).build()
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
            loader_timeout: None,
            refresh: Default::default(),
        }
    }

    /// A cache over `store` with every default.
    pub fn new(store: S) -> Self {
        Self::builder(store).build_unchecked()
    }
}

impl<S: CacheStore, C: Codec> Cache<S, C> {
    /// The backend.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The backend's name (`memory`, `redis`, `tiered`).
    pub fn backend_name(&self) -> &'static str {
        self.inner.store.name()
    }

    /// The concrete store when it is a `T`, seeing through [`AnyStore`], for calls the cache
    /// API does not cover (Go CDK's `As`):
    ///
    /// ```
    /// # #[cfg(feature = "cache-memory")]
    /// # async fn run() -> corekit::Result<()> {
    /// use corekit::cache::{Cache, MemoryStore};
    /// let cache = Cache::from_env().await?;
    /// if let Some(memory) = cache.downcast_ref::<MemoryStore>() {
    ///     println!("{} entries", memory.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn downcast_ref<T: CacheStore>(&self) -> Option<&T> {
        self.inner.store.as_any().downcast_ref::<T>()
    }

    /// Hits, misses, sets, evictions and errors since the cache was built.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot(self.inner.store.evictions())
    }

    /// The namespace every key is stored under (`"prefix:v2:"`, or empty).
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    // Inline, with the namespaced case out of line: on a memory hit this call was 30 of the
    // 345 instructions (callgrind, benches/cache_instructions.rs).
    #[inline(always)]
    pub(super) fn key<'k>(&self, key: &'k [u8], op: &'static str) -> Result<Cow<'k, [u8]>> {
        if key.is_empty() || key.len() > self.inner.max_key_len {
            return Err(self.bad_key(key, op));
        }
        if self.inner.namespace.is_empty() {
            return Ok(Cow::Borrowed(key));
        }
        Ok(Cow::Owned(self.namespaced(key)))
    }

    #[inline(never)]
    fn namespaced(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.inner.namespace.len() + key.len());
        full.extend_from_slice(self.inner.namespace.as_bytes());
        full.extend_from_slice(key);
        full
    }

    #[cold]
    #[inline(never)]
    pub(super) fn bad_key(&self, key: &[u8], op: &'static str) -> Error {
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

    #[inline]
    pub(super) fn check_size(&self, len: usize, key: &[u8], op: &'static str) -> Result<()> {
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

    #[inline]
    pub(super) fn effective_ttl(&self, ttl: Option<Duration>) -> Option<Duration> {
        let ttl = ttl?;
        if self.inner.jitter <= 0.0 {
            return Some(ttl);
        }
        let cut = ttl.mul_f64(self.inner.jitter * fastrand::f64());
        Some(ttl.saturating_sub(cut).max(Duration::from_millis(1)))
    }

    /// Runs one backend call through the instrumentation layer, counting errors.
    pub(super) fn call<'s, T, F>(
        &'s self,
        op: &'static str,
        fut: F,
    ) -> impl Future<Output = Result<T>> + 's
    where
        F: Future<Output = Result<T>> + 's,
        T: 's,
    {
        use futures_util::TryFutureExt as _;
        let system = self.inner.store.name();
        let call = crate::instrument::Call::new(crate::instrument::Module::Cache, system, op);
        let span = move || {
            tracing::debug_span!(
                "cache",
                otel.name = op,
                db.system = system,
                db.operation = op
            )
        };
        // Not an `async fn`, for the reason `instrument::call` gives.
        crate::instrument::call(call, tracing::Level::DEBUG, span, fut)
            .inspect_err(move |_| self.inner.counters.error())
    }

    pub(super) fn encode<T: Serialize + ?Sized>(
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

    pub(super) fn decode<T: DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T> {
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
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad key; [`ErrorKind::Backend`](crate::ErrorKind::Backend) naming the key when the
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
    /// first poll, with no span; other lookups go to the backend, boxed: with the tag check
    /// inline, the remote path's future made every memory hit 17-23 instructions dearer
    /// (callgrind), against about 400 more per Redis call (of ~17,000) for the box.
    ///
    /// # Errors
    /// As [`get`](Self::get), without decoding.
    pub fn get_bytes<'a>(
        &'a self,
        key: &'a (impl AsRef<[u8]> + ?Sized),
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send + 'a {
        let key = key.as_ref();
        async move {
            let full = self.key(key, "get")?;
            // A tagged or stamped entry goes the long way below: this hit path stays as short
            // as it was without envelopes, and does not touch the value.
            if let Some(found) = self.inner.store.get_local_plain(&full) {
                self.count_lookup(found.is_some());
                return Ok(found);
            }
            let found = Box::pin(self.get_remote(&full)).await?;
            self.count_lookup(found.is_some());
            Ok(found)
        }
    }

    /// The store's answer for `full`, out of its envelope.
    async fn get_remote(&self, full: &[u8]) -> Result<Option<Bytes>> {
        match self.call("get", self.inner.store.get(full)).await? {
            Some(bytes) => self.open(bytes).await,
            None => Ok(None),
        }
    }

    /// The value inside `bytes`: a tagged entry's tags checked (a miss when one moved on), a
    /// stamped entry past its TTL a miss (only [`get_or_refresh`](Self::get_or_refresh) serves
    /// it stale).
    pub(super) async fn open(&self, bytes: Bytes) -> Result<Option<Bytes>> {
        if !super::fresh::maybe_wrapped(&bytes) {
            return Ok(Some(bytes));
        }
        if super::tags::is_tagged(&bytes) {
            return self.untag(bytes).await;
        }
        match super::fresh::unwrap(&bytes) {
            Some((stamp, value)) => Ok(stamp.is_fresh(super::fresh::now_ms()).then_some(value)),
            None => Ok(Some(bytes)),
        }
    }

    #[inline]
    pub(super) fn count_lookup(&self, hit: bool) {
        if hit {
            self.inner.counters.hit();
        } else {
            self.inner.counters.miss();
        }
    }

    /// Stores `value` at `key` with the default TTL.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad key, a value that does not encode, or one over the
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
    pub fn set_bytes<'a>(
        &'a self,
        key: &'a (impl AsRef<[u8]> + ?Sized),
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        let key = key.as_ref();
        async move {
            let full = self.key(key, "set")?;
            self.check_size(value.len(), key, "set")?;
            self.forget_copy(&full);
            let ttl = self.effective_ttl(ttl);
            if let Err(value) = self.inner.store.set_local(&full, value, ttl) {
                // Boxed, so an in-process write's future stays small (368 bytes with the
                // store's call inline, copied on every set).
                Box::pin(self.call("set", self.inner.store.set(&full, value, ttl))).await?;
            }
            self.inner.counters.set();
            Ok(())
        }
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
        self.forget_copy(&full);
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
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad key; timeouts and unavailability from the backend.
    pub async fn delete(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> Result<bool> {
        let full = self.key(key.as_ref(), "delete")?;
        self.forget_copy(&full);
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
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the key holds something other than an integer.
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

    /// The values at `keys`, in order; one round trip on Redis (plus one per tagged entry
    /// found, to check its tags).
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
            let bytes = match bytes {
                Some(b) => self.open(b).await?,
                None => None,
            };
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
        encoded.iter().for_each(|(k, _)| self.forget_copy(k));
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
        full.iter().for_each(|k| self.forget_copy(k));
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
        self.forget_copies(&full);
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

    /// Releases the backend's connections; calls made afterwards fail. Clones share them, so
    /// close once, at shutdown. Dropping the last clone releases them too, in the background.
    ///
    /// # Errors
    /// The backend's error when closing fails.
    pub async fn close(&self) -> Result<()> {
        self.call("close", self.inner.store.close()).await
    }

    /// The value at `key`, or the loader's value, which is then stored with `ttl` (`None`: the
    /// default TTL).
    ///
    /// However many callers in this process miss on the same key at once, the loader runs once;
    /// the others wait for its result. A loader error is returned to the caller that ran it and
    /// to every waiter, and nothing is cached. If the running caller is cancelled, a waiter
    /// takes over.
    ///
    /// To refresh hot keys before they expire, or serve a stale value when the loader or the
    /// store fails, use [`get_or_refresh`](Self::get_or_refresh).
    ///
    /// # Errors
    /// [`ErrorKind::Backend`](crate::ErrorKind::Backend) wrapping the loader's error; otherwise as [`get`](Self::get) and
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
                match super::flight::running(&mut flights, &full) {
                    Some(rx) => Ok(rx),
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
                        flights: self.inner.flights.clone(),
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

    pub(super) async fn lead<T, F, Fut, E>(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
        loader: F,
        guard: FlightGuard,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<crate::BoxError>,
    {
        // Another leader may have stored the value between our miss and taking the lead.
        let found = match self.call("get", self.inner.store.get(&guard.key)).await? {
            Some(b) => self.open(b).await?,
            None => None,
        };
        if let Some(bytes) = found {
            let value = self.decode(key, &bytes);
            if value.is_ok() {
                guard.finish(Flight::Loaded(bytes));
            }
            return value;
        }
        let limit = self.inner.loader_timeout;
        let result = self.run_loader(key, loader, "get_or_set", limit).await;
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

    /// Runs `loader` within `limit`: its error wrapped as `Backend` naming the key, a run past
    /// the limit dropped as a retryable `Timeout`.
    pub(super) async fn run_loader<T, F, Fut, E>(
        &self,
        key: &[u8],
        loader: F,
        op: &'static str,
        limit: Option<Duration>,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<crate::BoxError>,
    {
        let failed = |e: E| {
            let source: crate::BoxError = e.into();
            Error::new(
                ErrorKind::Backend,
                format!("loader for key {} failed: {source}", show_key(key)),
            )
            .with_operation(op)
        };
        match limit {
            None => loader().await.map_err(failed),
            Some(limit) => match tokio::time::timeout(limit, loader()).await {
                Ok(loaded) => loaded.map_err(failed),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "loader for key {} took longer than {limit:?}",
                        show_key(key)
                    ),
                )
                .with_operation(op)),
            },
        }
    }
}
