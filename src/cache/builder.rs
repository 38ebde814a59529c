//! `CacheBuilder`: the handle's settings, from code or from `CacheConfig`.

use super::stats::Counters;
#[allow(unused_imports)]
use super::*;
use crate::Result;
use crate::config::{ConfigIssue, EnvConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Builds a [`Cache`]; from [`Cache::builder`].
#[must_use]
pub struct CacheBuilder<S, C> {
    pub(super) store: S,
    pub(super) codec: C,
    pub(super) prefix: String,
    pub(super) version: Option<String>,
    pub(super) default_ttl: Option<Duration>,
    pub(super) jitter: f64,
    pub(super) max_key_len: usize,
    pub(super) max_value_size: usize,
    pub(super) loader_timeout: Option<Duration>,
    pub(super) refresh: super::refresh::RefreshSettings,
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

    /// Bound on one [`get_or_set`](Cache::get_or_set) or
    /// [`get_or_refresh`](Cache::get_or_refresh) loader run; `None` (the default) or zero for
    /// none (`get_or_refresh`'s loads, which may run with nobody awaiting them, are then
    /// bounded at 30 s). A loader still running then is dropped (cancelled at its next
    /// `.await`), nothing is stored, the next call loads afresh, and the callers waiting on it
    /// get a retryable [`ErrorKind::Timeout`](crate::ErrorKind::Timeout), or with
    /// `get_or_refresh` the stale value when there is one.
    pub fn loader_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.loader_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// [`get_or_refresh`](Cache::get_or_refresh): a read after this fraction (0 to 1) of a
    /// value's TTL gets it at once and starts one refresh in the background, so a hot key does
    /// not miss as long as the refresh ends before the TTL does. Default 0: no refresh before
    /// the TTL ends.
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        self.refresh.ahead = fraction;
        self
    }

    /// [`get_or_refresh`](Cache::get_or_refresh): how long past its TTL a value is kept and
    /// may still be returned, while one refresh runs or when the loader or the store fails
    /// (fail-safe). Values are then stored for TTL + `max_stale`. Default 0: none.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.refresh.max_stale = max_stale;
        self
    }

    /// [`get_or_refresh`](Cache::get_or_refresh): how long a read holding a stale value waits
    /// for its refresh before returning the stale value (the refresh goes on in the
    /// background). Default 0: the stale value at once (stale-while-revalidate).
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.refresh.soft_timeout = timeout;
        self
    }

    /// [`get_or_refresh`](Cache::get_or_refresh) with a [`max_stale`](Self::max_stale): how
    /// many last good values this process keeps (the least used dropped first) to return when
    /// the store itself fails. Default 1,000; 0 for none (with the memory store they only
    /// duplicate it).
    pub fn fail_safe_copies(mut self, entries: usize) -> Self {
        self.refresh.copies = entries;
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
            loader_timeout: self.loader_timeout,
            refresh: self.refresh,
        }
    }

    pub(super) fn apply(self, config: &CacheConfig) -> Self {
        let mut b = self
            .prefix(config.prefix.clone())
            .default_ttl(config.default_ttl)
            .ttl_jitter(config.ttl_jitter)
            .max_key_len(config.max_key_len)
            .max_value_size(config.max_value_size as usize)
            .loader_timeout(config.loader_timeout)
            .refresh_ahead(config.refresh_ahead)
            .max_stale(config.max_stale)
            .soft_timeout(config.soft_timeout)
            .fail_safe_copies(config.fail_safe_copies);
        b.version = config.version.clone().filter(|v| !v.is_empty());
        b
    }

    /// The cache.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when the jitter or the refresh-ahead
    /// fraction is outside 0..1 or a limit is zero; the same checks
    /// as [`CacheConfig`] from the environment.
    pub fn build(self) -> Result<Cache<S, C>> {
        let issue = if !(0.0..1.0).contains(&self.jitter) {
            Some(ConfigIssue::new(
                "ttl_jitter",
                self.jitter.to_string(),
                "a fraction from 0 up to (not including) 1",
            ))
        } else if !(0.0..1.0).contains(&self.refresh.ahead) {
            Some(ConfigIssue::new(
                "refresh_ahead",
                self.refresh.ahead.to_string(),
                "a fraction from 0 (off) up to (not including) 1",
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

    pub(super) fn build_unchecked(self) -> Cache<S, C> {
        let namespace = namespace(&self.prefix, self.version.as_deref());
        Cache {
            inner: Arc::new(Inner {
                store: self.store,
                codec: self.codec,
                namespace,
                default_ttl: self.default_ttl,
                jitter: self.jitter,
                max_key_len: self.max_key_len,
                max_value_size: self.max_value_size,
                loader_timeout: self.loader_timeout,
                copies: super::refresh::copies(&self.refresh),
                refresh: self.refresh,
                counters: Counters::default(),
                flights: Arc::new(Mutex::new(HashMap::new())),
            }),
        }
    }
}

/// The key prefix of a cache with `prefix` and `version`: `prefix:vVERSION:` (each part only
/// when set).
pub(super) fn namespace(prefix: &str, version: Option<&str>) -> String {
    let mut namespace = String::new();
    if !prefix.is_empty() {
        namespace.push_str(prefix);
        namespace.push(':');
    }
    if let Some(v) = version {
        namespace.push('v');
        namespace.push_str(v);
        namespace.push(':');
    }
    namespace
}
