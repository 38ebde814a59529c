//! `get_or_refresh`: refresh-ahead, stale-while-revalidate and fail-safe, on `get_or_set`'s
//! single-flight table, with the loader run in a task of its own so a refresh outlives the
//! caller that started it.

use super::fresh::{self, Stamp};
#[allow(unused_imports)]
use super::*;
use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use futures_util::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::sync::watch;

/// How [`Cache::get_or_refresh`] keeps values fresh; set on [`CacheBuilder`].
#[derive(Debug, Clone, Copy)]
pub(super) struct RefreshSettings {
    /// Fraction of the TTL after which a read starts a refresh (0: none).
    pub(super) ahead: f64,
    /// How long past its TTL a value may still be served.
    pub(super) max_stale: Duration,
    /// How long a caller holding a stale value waits for its refresh.
    pub(super) soft_timeout: Duration,
    /// Last good values kept in this process for when the store fails (0: none).
    pub(super) copies: usize,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            ahead: 0.0,
            max_stale: Duration::ZERO,
            soft_timeout: Duration::ZERO,
            copies: 1_000,
        }
    }
}

/// A value as last loaded in this process, for the fail-safe.
#[derive(Clone)]
pub(super) struct LastGood {
    stamp: Stamp,
    value: Bytes,
}

/// The last good values, bounded, when a stale window is set.
pub(super) type Copies = quick_cache::sync::Cache<Vec<u8>, LastGood>;

pub(super) fn copies(settings: &RefreshSettings) -> Option<Copies> {
    let wanted = !settings.max_stale.is_zero() && settings.copies > 0;
    wanted.then(|| Copies::new(settings.copies))
}

/// How a load a caller waited on ended.
enum Outcome {
    Loaded(Bytes),
    Failed(Error),
    /// The soft timeout passed first.
    Late,
    /// Its leader went away without a result (a cancelled `get_or_set` caller).
    Abandoned,
}

/// Bound on a load nobody may be awaiting when no loader timeout is set: a hung loader must
/// not hold its key's flight for the life of the process.
const UNSET_LOADER_BOUND: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<S: CacheStore, C: Codec> Cache<S, C> {
    /// The value at `key`, kept fresh by `loader`, which runs in a task of its own (so it must
    /// be `Send + 'static`) and at most once at a time per key for this `Cache` and its clones:
    ///
    /// - **miss**: the caller waits for the load, as with [`get_or_set`](Self::get_or_set);
    /// - **refresh-ahead**: a read after [`refresh_ahead`](CacheBuilder::refresh_ahead) of the
    ///   TTL gets the current value at once and starts one refresh in the background;
    /// - **stale-while-revalidate**: up to [`max_stale`](CacheBuilder::max_stale) past its TTL a
    ///   value is still kept; a read then starts one refresh and waits for it at most
    ///   [`soft_timeout`](CacheBuilder::soft_timeout) (default 0: not at all) before getting
    ///   the stale value;
    /// - **fail-safe**: when the loader fails (or passes the
    ///   [`loader_timeout`](CacheBuilder::loader_timeout), 30 s when unset) the stale value is
    ///   returned instead of the error, and when the store itself fails, this handle's last
    ///   good copy (up to [`fail_safe_copies`](CacheBuilder::fail_safe_copies) of them) within
    ///   the stale window.
    ///
    /// Failed loads are logged (`warn`) and counted in [`CacheStats::load_failures`]; values
    /// served past their TTL in [`CacheStats::stale_hits`]. A value is stored with its stamp
    /// (when to refresh, when its TTL ends; wall-clock time, so instances sharing the store
    /// need clocks that agree) and kept `ttl + max_stale`: [`get`](Self::get) and the other
    /// reads see it until its TTL ends, [`exists`](Self::exists) and [`ttl`](Self::ttl) until
    /// the store drops it. A store write that fails after a load is logged and the callers get
    /// the loaded value anyway. A value without a TTL (`ttl` and the default TTL `None`) is
    /// never refreshed.
    ///
    /// ```
    /// # #[cfg(feature = "cache-memory")]
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// use corekit::cache::{Cache, MemoryStore};
    /// use std::time::Duration;
    ///
    /// let cache = Cache::builder(MemoryStore::new(10_000))
    ///     .refresh_ahead(0.8) // refresh in the background after 48 s of a 60 s TTL
    ///     .max_stale(Duration::from_secs(600)) // and serve up to 10 min stale if loads fail
    ///     .build()?;
    /// let rate: f64 = cache
    ///     .get_or_refresh("fx:EURUSD", Some(Duration::from_secs(60)), || async {
    ///         Ok::<_, std::io::Error>(1.08) // an HTTP call, a query...
    ///     })
    ///     .await?;
    /// assert_eq!(rate, 1.08);
    /// # Ok::<(), corekit::Error>(()) }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`get_or_set`](Self::get_or_set) when there is no value to fall back on: the
    /// loader's error (`Backend`, or a retryable `Timeout` past the loader timeout, or
    /// `Backend` when it panicked), or the store's.
    pub async fn get_or_refresh<T, F, Fut, E>(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        E: Into<crate::BoxError> + 'static,
    {
        let key = key.as_ref();
        let full = self.key(key, "get_or_refresh")?;
        let ttl = ttl.or(self.inner.default_ttl);
        let mut loader = Some(loader);
        let now = fresh::now_ms();
        let found = match self.read_stamped(&full).await {
            Ok(found) => found,
            // The store failed: fall back on this process's last good copy.
            Err(e) => return self.fall_back(key, &full, now, e),
        };
        match found {
            Some((stamp, value)) if stamp.is_fresh(now) => {
                if stamp.refresh_due(now) {
                    self.start_load(key, &full, ttl, &mut loader);
                }
                self.keep_copy(&full, stamp, &value);
                self.count_lookup(true);
                self.decode(key, &value)
            }
            Some((stamp, stale)) if self.within_stale(stamp, now) => {
                let rx = self.start_load(key, &full, ttl, &mut loader);
                match self
                    .outcome(rx, Some(self.inner.refresh.soft_timeout))
                    .await
                {
                    Outcome::Loaded(bytes) => {
                        self.count_lookup(true);
                        self.decode(key, &bytes)
                    }
                    _ => {
                        self.served_stale();
                        self.decode(key, &stale)
                    }
                }
            }
            _ => loop {
                let rx = self.start_load(key, &full, ttl, &mut loader);
                let error = match self.outcome(rx, None).await {
                    Outcome::Loaded(bytes) => {
                        self.count_lookup(false);
                        return self.decode(key, &bytes);
                    }
                    Outcome::Abandoned if loader.is_some() => continue,
                    Outcome::Failed(e) => e,
                    Outcome::Abandoned | Outcome::Late => Error::new(
                        ErrorKind::Backend,
                        format!("the load of key {} ended without a result", show_key(key)),
                    )
                    .with_operation("get_or_refresh"),
                };
                // Nothing in the store (a restarted Redis, say) and the loader failing.
                let fallen = self.fall_back(key, &full, now, error);
                if fallen.is_err() {
                    self.count_lookup(false);
                }
                return fallen;
            },
        }
    }

    /// The stamped value at `full` (a value written otherwise is fresh until the store drops
    /// it), from process memory when the store answers there.
    async fn read_stamped(&self, full: &[u8]) -> Result<Option<(Stamp, Bytes)>> {
        let raw = match self.inner.store.get_local(full) {
            Some(found) => found,
            None => Box::pin(self.call("get", self.inner.store.get(full))).await?,
        };
        let Some(bytes) = raw else {
            return Ok(None);
        };
        if let Some(stamped) = fresh::unwrap(&bytes) {
            return Ok(Some(stamped));
        }
        Ok(self.open(bytes).await?.map(|value| (Stamp::PLAIN, value)))
    }

    fn within_stale(&self, stamp: Stamp, now: u64) -> bool {
        let max_stale = self.inner.refresh.max_stale;
        !max_stale.is_zero() && now < stamp.fresh_until.saturating_add(ms(max_stale))
    }

    fn served_stale(&self) {
        self.count_lookup(true);
        self.inner.counters.stale_hit();
    }

    /// This process's last good copy of `full` within the stale window, else `error`.
    fn fall_back<T: DeserializeOwned>(
        &self,
        key: &[u8],
        full: &[u8],
        now: u64,
        error: Error,
    ) -> Result<T> {
        let copy = self.inner.copies.as_ref().and_then(|c| c.get(full));
        match copy {
            Some(copy) if self.within_stale(copy.stamp, now) => {
                tracing::debug!(key = %show_key(key), %error, "cache: serving the last good copy");
                if copy.stamp.is_fresh(now) {
                    self.count_lookup(true);
                } else {
                    self.served_stale();
                }
                self.decode(key, &copy.value)
            }
            _ => Err(error),
        }
    }

    /// The load running for `full`, or a new one running `loader` (taken) in a task.
    fn start_load<T, F, Fut, E>(
        &self,
        key: &[u8],
        full: &[u8],
        ttl: Option<Duration>,
        loader: &mut Option<F>,
    ) -> watch::Receiver<Flight>
    where
        T: Serialize + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        E: Into<crate::BoxError> + 'static,
    {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(rx) = super::flight::running(&mut flights, full) {
            return rx;
        }
        let (tx, rx) = watch::channel(Flight::Running);
        let Some(loader) = loader.take() else {
            // Each call starts at most one load; a second would find its own flight above.
            drop(tx);
            return rx;
        };
        flights.insert(full.to_vec(), rx.clone());
        drop(flights);
        // The guard exists before the task: a task dropped before it first runs (its runtime
        // shutting down) still removes the entry.
        let guard = FlightGuard {
            flights: self.inner.flights.clone(),
            key: full.to_vec(),
            tx,
        };
        let (cache, key) = (self.clone(), key.to_vec());
        tokio::spawn(async move {
            let outcome = cache.load(&key, &guard.key, ttl, loader).await;
            guard.finish(outcome);
        });
        rx
    }

    /// Loads and stores `full` unless another load (here or in another instance) refreshed it
    /// since this caller read it.
    async fn load<T, F, Fut, E>(
        &self,
        key: &[u8],
        full: &[u8],
        ttl: Option<Duration>,
        loader: F,
    ) -> Flight
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Into<crate::BoxError>,
    {
        let now = fresh::now_ms();
        if let Ok(Some((stamp, value))) = self.read_stamped(full).await
            && stamp.is_fresh(now)
            && !stamp.refresh_due(now)
        {
            self.keep_copy(full, stamp, &value);
            return Flight::Loaded(value);
        }
        self.inner.counters.load();
        let limit = self.inner.loader_timeout.unwrap_or(UNSET_LOADER_BOUND);
        let run = self.run_loader(key, loader, "get_or_refresh", Some(limit));
        let value = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => return self.load_failed(key, e),
            Err(_) => {
                let e = Error::new(
                    ErrorKind::Backend,
                    format!("loader for key {} panicked", show_key(key)),
                );
                return self.load_failed(key, e.with_operation("get_or_refresh"));
            }
        };
        let bytes = match self.encode(key, &value, "get_or_refresh") {
            Ok(bytes) => bytes,
            Err(e) => return self.load_failed(key, e),
        };
        let ttl = self.effective_ttl(ttl);
        let ahead = self.inner.refresh.ahead;
        let stamp = Stamp::new(fresh::now_ms(), ttl, (ahead > 0.0).then_some(ahead));
        let kept = ttl.map(|t| t.saturating_add(self.inner.refresh.max_stale));
        let store = &self.inner.store;
        match self
            .call("set", store.set(full, fresh::wrap(stamp, &bytes), kept))
            .await
        {
            Ok(()) => self.inner.counters.set(),
            Err(error) => tracing::warn!(
                key = %show_key(key),
                %error,
                "cache: a loaded value could not be stored; its callers get it anyway"
            ),
        }
        self.keep_copy(full, stamp, &bytes);
        Flight::Loaded(bytes)
    }

    /// Keeps `value` as the last good copy of `full` (when a stale window is set) unless the
    /// copy already has this stamp: values loaded by another instance are kept too.
    fn keep_copy(&self, full: &[u8], stamp: Stamp, value: &Bytes) {
        // A value written by `set` has no TTL of its own to bound its copy by.
        let Some(copies) = self.inner.copies.as_ref().filter(|_| stamp != Stamp::PLAIN) else {
            return;
        };
        if copies.get(full).is_some_and(|c| c.stamp == stamp) {
            return;
        }
        let value = value.clone();
        copies.insert(full.to_vec(), LastGood { stamp, value });
    }

    /// Forgets the last good copies of keys this handle deleted or overwrote, so that the
    /// fail-safe never brings them back.
    pub(super) fn forget_copy(&self, full: &[u8]) {
        if let Some(copies) = &self.inner.copies {
            copies.remove(full);
        }
    }

    pub(super) fn forget_copies(&self, prefix: &[u8]) {
        if let Some(copies) = &self.inner.copies {
            copies.retain(|k, _| !k.starts_with(prefix));
        }
    }

    fn load_failed(&self, key: &[u8], error: Error) -> Flight {
        self.inner.counters.load_failure();
        tracing::warn!(key = %show_key(key), %error, "cache: a load failed");
        Flight::Failed(error.kind(), error.message().to_owned())
    }

    /// How the load behind `rx` ended, waiting at most `soft` for it.
    async fn outcome(&self, mut rx: watch::Receiver<Flight>, soft: Option<Duration>) -> Outcome {
        let done = async move {
            match rx.wait_for(|f| !matches!(f, Flight::Running)).await {
                Ok(flight) => Some(flight.clone()),
                Err(_) => None,
            }
        };
        let flight = match soft {
            None => done.await,
            Some(limit) => match tokio::time::timeout(limit, done).await {
                Ok(flight) => flight,
                Err(_) => return Outcome::Late,
            },
        };
        match flight {
            Some(Flight::Loaded(bytes)) => Outcome::Loaded(bytes),
            Some(Flight::Failed(kind, message)) => Outcome::Failed(
                Error::new(kind, message)
                    .with_operation("get_or_refresh")
                    .with_backend(self.inner.store.name()),
            ),
            Some(Flight::Running) | None => Outcome::Abandoned,
        }
    }
}
