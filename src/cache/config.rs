//! `CACHE_*` configuration.

use super::AnyStore;
use crate::config::{self as cfg, ConfigIssue, EnvConfig, Secret};
use crate::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// Which store [`Cache::from_env`](super::Cache::from_env) builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    /// [`MemoryStore`](super::MemoryStore) (feature `cache-memory`).
    #[default]
    Memory,
    /// [`RedisStore`](super::RedisStore) (feature `cache-redis`).
    Redis,
    /// [`TieredStore`](super::TieredStore) (features `cache-memory` and `cache-redis`).
    Tiered,
}

/// Cache settings; every field has the default listed in the [module docs](super).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CacheConfig {
    /// `CACHE_BACKEND`; when unset, [`url`](Self::url)'s scheme picks it, else `memory`.
    /// See [`backend()`](Self::backend).
    pub backend: Option<CacheBackend>,
    /// `CACHE_URL`: `memory://`, or a Redis URL (`redis://`, `rediss://`, `redis-cluster://`,
    /// `redis-sentinel://`) that picks the Redis store and is its address. A secret because
    /// it may carry a password.
    pub url: Option<Secret>,
    /// `CACHE_REDIS_URL`: the Redis address when [`url`](Self::url) is not a Redis URL; a
    /// secret because it may carry a password.
    pub redis_url: Secret,
    /// `CACHE_DEFAULT_TTL`; `None` (or `0`) keeps entries until evicted.
    #[serde(with = "cfg::option_duration")]
    pub default_ttl: Option<Duration>,
    /// `CACHE_TTL_JITTER`.
    pub ttl_jitter: f64,
    /// `CACHE_PREFIX`.
    pub prefix: String,
    /// `CACHE_VERSION`.
    pub version: Option<String>,
    /// `CACHE_MAX_ENTRIES`.
    pub max_entries: u64,
    /// `CACHE_MAX_BYTES`.
    #[serde(deserialize_with = "option_size")]
    pub max_bytes: Option<u64>,
    /// `CACHE_MAX_KEY_LEN`.
    pub max_key_len: usize,
    /// `CACHE_MAX_VALUE_SIZE`.
    #[serde(with = "cfg::size")]
    pub max_value_size: u64,
    /// `CACHE_REDIS_CA_FILE`: PEM file of the CA(s) to trust for `rediss://` instead of the
    /// system roots (feature `cache-redis-tls`).
    pub redis_ca_file: Option<String>,
    /// `CACHE_REDIS_POOL_SIZE`.
    pub redis_pool_size: usize,
    /// `CACHE_CONNECT_TIMEOUT`.
    #[serde(with = "cfg::duration")]
    pub connect_timeout: Duration,
    /// `CACHE_COMMAND_TIMEOUT`.
    #[serde(with = "cfg::duration")]
    pub command_timeout: Duration,
    /// `CACHE_NEAR_TTL`.
    #[serde(with = "cfg::duration")]
    pub near_ttl: Duration,
    /// `CACHE_NEAR_MAX_ENTRIES`.
    pub near_max_entries: u64,
    /// `CACHE_INVALIDATION_CHANNEL`.
    pub invalidation_channel: String,
    /// `CACHE_LOADER_TIMEOUT`: bound on one `get_or_set` loader run; `None` (or `0`) for none.
    #[serde(with = "cfg::option_duration")]
    pub loader_timeout: Option<Duration>,
    /// `CACHE_NEAR_TRACKING`: tiered, whether Redis's key tracking invalidates near copies
    /// where the server offers it (see [`Invalidation`](super::Invalidation)).
    pub near_tracking: bool,
    /// `CACHE_REFRESH_AHEAD`: fraction of the TTL after which `get_or_refresh` refreshes in
    /// the background (0: off).
    pub refresh_ahead: f64,
    /// `CACHE_MAX_STALE`: how long past its TTL `get_or_refresh` may return a value.
    #[serde(with = "cfg::duration")]
    pub max_stale: Duration,
    /// `CACHE_SOFT_TIMEOUT`: how long `get_or_refresh` waits for a refresh before returning
    /// the stale value.
    #[serde(with = "cfg::duration")]
    pub soft_timeout: Duration,
    /// `CACHE_FAIL_SAFE_COPIES`: last good values kept in process for when the store fails.
    pub fail_safe_copies: usize,
    /// Which variable each setting came from (filled by the loader), for errors.
    #[serde(skip)]
    pub sources: cfg::Sources,
}

fn option_size<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    cfg::parse_size(&s).map(Some).map_err(D::Error::custom)
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            backend: None,
            url: None,
            redis_url: Secret::new("redis://127.0.0.1:6379"),
            default_ttl: Some(Duration::from_secs(3600)),
            ttl_jitter: 0.0,
            prefix: String::new(),
            version: None,
            max_entries: 10_000,
            max_bytes: None,
            max_key_len: 1024,
            max_value_size: 16 << 20,
            redis_ca_file: None,
            redis_pool_size: 1,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(1),
            near_ttl: Duration::from_secs(60),
            near_max_entries: 10_000,
            invalidation_channel: "corekit:cache:invalidate".into(),
            near_tracking: true,
            loader_timeout: None,
            refresh_ahead: 0.0,
            max_stale: Duration::ZERO,
            soft_timeout: Duration::ZERO,
            fail_safe_copies: 1_000,
            sources: cfg::Sources::default(),
        }
    }
}

impl EnvConfig for CacheConfig {
    const PREFIX: &'static str = "CACHE_";
    const SECRETS: &'static [&'static str] = &["url", "redis_url"];
    const FALLBACKS: &'static [(&'static str, &'static [&'static str])] =
        &[("redis_url", &["REDIS_URL"])];

    fn sources_mut(&mut self) -> Option<&mut cfg::Sources> {
        Some(&mut self.sources)
    }

    fn validate(&self) -> std::result::Result<(), ConfigIssue> {
        if !(0.0..1.0).contains(&self.ttl_jitter) {
            return Err(ConfigIssue::new(
                "ttl_jitter",
                self.ttl_jitter.to_string(),
                "a fraction from 0 up to (not including) 1",
            ));
        }
        if !(0.0..1.0).contains(&self.refresh_ahead) {
            return Err(ConfigIssue::new(
                "refresh_ahead",
                self.refresh_ahead.to_string(),
                "a fraction from 0 (off) up to (not including) 1",
            ));
        }
        let positive: [(&'static str, u64); 5] = [
            ("max_entries", self.max_entries),
            ("max_key_len", self.max_key_len as u64),
            ("max_value_size", self.max_value_size),
            ("redis_pool_size", self.redis_pool_size as u64),
            ("near_max_entries", self.near_max_entries),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigIssue::new(field, "0", "a number above 0"));
        }
        if self.max_bytes == Some(0) {
            return Err(ConfigIssue::new(
                "max_bytes",
                "0",
                "a size above 0, or unset",
            ));
        }
        for (field, d) in [
            ("connect_timeout", self.connect_timeout),
            ("near_ttl", self.near_ttl),
        ] {
            if d.is_zero() {
                return Err(ConfigIssue::new(field, "0s", "a duration above zero"));
            }
        }
        let from_url = self.url_backend()?;
        cfg::check_backend_matches_url(
            self.backend.map(CacheBackend::as_str),
            from_url.map(CacheBackend::as_str),
            "CACHE_URL",
            &[("tiered", "redis")],
        )?;
        if self.backend() != CacheBackend::Memory && !is_redis_url(self.redis_address()) {
            let field = if from_url.is_some() {
                "url"
            } else {
                "redis_url"
            };
            return Err(ConfigIssue::new(
                field,
                self.redis_address(),
                "a URL like redis://[user:password@]host:6379[/db] or rediss://",
            ));
        }
        if self.invalidation_channel.is_empty() {
            return Err(ConfigIssue::new(
                "invalidation_channel",
                "",
                "a channel name",
            ));
        }
        Ok(())
    }
}

fn is_redis_url(url: &str) -> bool {
    [
        "redis://",
        "rediss://",
        "redis-sentinel://",
        "redis-cluster://",
    ]
    .iter()
    .any(|s| url.starts_with(s))
}

impl CacheBackend {
    /// The name `CACHE_BACKEND` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheBackend::Memory => "memory",
            CacheBackend::Redis => "redis",
            CacheBackend::Tiered => "tiered",
        }
    }
}

impl CacheConfig {
    /// The backend [`Cache::from_config`](super::Cache::from_config) builds: `CACHE_BACKEND`,
    /// else the one `CACHE_URL`'s scheme names, else memory.
    pub fn backend(&self) -> CacheBackend {
        self.backend
            .or_else(|| self.url_backend().ok().flatten())
            .unwrap_or_default()
    }

    /// The Redis address: `CACHE_URL` when it is a Redis URL, else `CACHE_REDIS_URL`.
    pub fn redis_address(&self) -> &str {
        match &self.url {
            Some(url) if is_redis_url(url.expose()) => url.expose(),
            _ => self.redis_url.expose(),
        }
    }

    /// The backend `CACHE_URL`'s scheme names, if it is set.
    fn url_backend(&self) -> std::result::Result<Option<CacheBackend>, ConfigIssue> {
        let Some(url) = self.url.as_ref().map(Secret::expose) else {
            return Ok(None);
        };
        if url == "memory://" || url == "memory:" {
            Ok(Some(CacheBackend::Memory))
        } else if is_redis_url(url) {
            Ok(Some(CacheBackend::Redis))
        } else {
            Err(ConfigIssue::new(
                "url",
                url,
                "memory:// or a Redis URL (redis://, rediss://, redis-cluster://, redis-sentinel://)",
            ))
        }
    }

    /// Builds the configured store.
    pub(super) async fn connect(&self) -> Result<AnyStore> {
        let backend = self.backend();
        let address = match backend {
            CacheBackend::Memory => "in-process".to_owned(),
            _ => crate::config::redact_url(self.redis_address()),
        };
        tracing::info!(backend = backend.as_str(), %address, "cache: connecting");
        match backend {
            #[cfg(feature = "cache-memory")]
            CacheBackend::Memory => Ok(AnyStore::Memory(self.memory_store(self.max_entries))),
            #[cfg(feature = "cache-redis")]
            CacheBackend::Redis => Ok(AnyStore::Redis(self.redis_store().await?)),
            #[cfg(all(feature = "cache-memory", feature = "cache-redis"))]
            CacheBackend::Tiered => {
                let near = super::MemoryStore::new(self.near_max_entries);
                let far = self.redis_store().await?;
                let mut builder = super::TieredStore::builder(near, far)
                    .near_ttl(self.near_ttl)
                    .channel(self.invalidation_channel.clone())
                    .tracking(self.near_tracking);
                // Track this cache's keys only, not the whole database.
                let version = self.version.as_deref().filter(|v| !v.is_empty());
                let namespace = super::builder::namespace(&self.prefix, version);
                if !namespace.is_empty() {
                    builder = builder.tracking_prefix(namespace);
                }
                let store = builder.build().await?;
                Ok(AnyStore::Tiered(store))
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::config(format!(
                "CACHE_BACKEND={other:?} needs the cargo feature {}",
                match other {
                    CacheBackend::Memory => "cache-memory",
                    CacheBackend::Redis => "cache-redis",
                    CacheBackend::Tiered => "cache-memory and cache-redis",
                }
            ))),
        }
    }

    #[cfg(feature = "cache-memory")]
    fn memory_store(&self, max_entries: u64) -> super::MemoryStore {
        match self.max_bytes {
            Some(bytes) => super::MemoryStore::with_max_bytes(bytes),
            None => super::MemoryStore::new(max_entries),
        }
    }

    #[cfg(feature = "cache-redis")]
    async fn redis_store(&self) -> Result<super::RedisStore> {
        #[allow(unused_mut)]
        let mut builder = super::RedisStore::builder(self.redis_address())
            .pool_size(self.redis_pool_size)
            .connect_timeout(self.connect_timeout)
            .command_timeout(self.command_timeout);
        if let Some(path) = self.redis_ca_file.as_deref().filter(|p| !p.is_empty()) {
            #[cfg(feature = "cache-redis-tls")]
            {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::config(format!("CACHE_REDIS_CA_FILE={path:?}: cannot read it: {e}"))
                })?;
                builder = builder.tls_root_ca_pem(pem);
            }
            #[cfg(not(feature = "cache-redis-tls"))]
            return Err(Error::config(format!(
                "CACHE_REDIS_CA_FILE={path:?} needs the cargo feature cache-redis-tls"
            )));
        }
        // Say which variable the address came from, or which one to set.
        let field = match &self.url {
            Some(url) if is_redis_url(url.expose()) => "url",
            _ => "redis_url",
        };
        builder
            .build()
            .await
            .map_err(|e| e.with_context(self.sources.describe(field)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<CacheConfig> {
        CacheConfig::from_vars(
            "CACHE_",
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_validate() {
        let c = load(&[]).unwrap();
        assert_eq!(c.backend(), CacheBackend::Memory);
        assert_eq!(c.default_ttl, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn variables_parse() {
        let c = load(&[
            ("CACHE_BACKEND", "redis"),
            ("CACHE_REDIS_URL", "redis://:pw@127.0.0.1:6379/2"),
            ("CACHE_DEFAULT_TTL", "30s"),
            ("CACHE_TTL_JITTER", "0.1"),
            ("CACHE_MAX_BYTES", "64MiB"),
            ("CACHE_PREFIX", "svc"),
            ("CACHE_VERSION", "3"),
            ("CACHE_NEAR_TRACKING", "false"),
            ("CACHE_LOADER_TIMEOUT", "2s"),
            ("CACHE_REFRESH_AHEAD", "0.8"),
            ("CACHE_MAX_STALE", "10m"),
            ("CACHE_SOFT_TIMEOUT", "100ms"),
            ("CACHE_FAIL_SAFE_COPIES", "50"),
        ])
        .unwrap();
        assert_eq!(c.loader_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.refresh_ahead, 0.8);
        assert_eq!(c.max_stale, Duration::from_secs(600));
        assert_eq!(c.soft_timeout, Duration::from_millis(100));
        assert_eq!(c.fail_safe_copies, 50);
        let e = load(&[("CACHE_REFRESH_AHEAD", "1.5")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("CACHE_REFRESH_AHEAD"), "{e}");
        assert!(!c.near_tracking);
        assert!(load(&[]).unwrap().near_tracking, "on by default");
        assert_eq!(c.backend(), CacheBackend::Redis);
        assert_eq!(c.default_ttl, Some(Duration::from_secs(30)));
        assert_eq!(c.max_bytes, Some(64 << 20));
        assert_eq!(c.version.as_deref(), Some("3"));
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn the_url_scheme_picks_the_backend() {
        let c = load(&[("CACHE_URL", "redis://:pw@10.0.0.1:6380/1")]).unwrap();
        assert_eq!(c.backend(), CacheBackend::Redis);
        assert_eq!(c.redis_address(), "redis://:pw@10.0.0.1:6380/1");
        let c = load(&[
            ("CACHE_URL", "rediss://h:6379"),
            ("CACHE_BACKEND", "tiered"),
        ])
        .unwrap();
        assert_eq!(c.backend(), CacheBackend::Tiered);
        assert_eq!(
            load(&[("CACHE_URL", "memory://")]).unwrap().backend(),
            CacheBackend::Memory
        );
        let e = load(&[("CACHE_URL", "memory://"), ("CACHE_BACKEND", "redis")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("CACHE_BACKEND=\"redis\""), "{e}");
        let e = load(&[("CACHE_URL", "memcached://u:pw@h")])
            .unwrap_err()
            .to_string();
        // Only the password is hidden: the host is what the reader needs.
        assert!(e.contains("CACHE_URL=\"memcached://u:***@h\""), "{e}");
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = load(&[("CACHE_DEFAULT_TTL", "ten")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"invalid configuration: CACHE_DEFAULT_TTL="ten": expected a duration like 30s, 250ms or 5m"#
        );
        let e = load(&[("CACHE_BACKEND", "memcached")])
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"CACHE_BACKEND="memcached""#), "{e}");
        let e = load(&[("CACHE_TTL_JITTER", "1.5")])
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"CACHE_TTL_JITTER="1.5""#), "{e}");
        let e = load(&[("CACHE_MAX_ENTRIES", "0")]).unwrap_err().to_string();
        assert!(e.contains(r#"CACHE_MAX_ENTRIES="0""#), "{e}");
        let e = load(&[
            ("CACHE_BACKEND", "redis"),
            ("CACHE_REDIS_URL", "http://u:pw@h"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(r#"CACHE_REDIS_URL="http://u:***@h""#),
            "password redacted, host shown: {e}"
        );
        // Nor a password or token in the query.
        let e = load(&[
            ("CACHE_BACKEND", "redis"),
            ("CACHE_REDIS_URL", "http://h:1/0?password=hunter2"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains(r#"CACHE_REDIS_URL="http://h:1/0?***""#), "{e}");
    }
}
