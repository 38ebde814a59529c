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
//! | Redis: one server, a Redis Cluster (`redis-cluster://`) or behind Sentinel (`redis-sentinel://`) | `cache-redis` | [`RedisStore`] |
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
//! # Locks
//!
//! [`Cache::lock`] takes a named lock with a TTL on the same store and returns a [`CacheLock`]
//! guard: a fencing token that grows with every holder, [`extend`](CacheLock::extend) and a
//! background [`keep_alive`](CacheLock::keep_alive), and a release that only removes the
//! holder's own lock (compare and delete), so an expired holder cannot free someone else's.
//!
//! | store | scope | how |
//! |---|---|---|
//! | [`MemoryStore`] | the process only | a map apart from the entries (eviction never drops a lock) |
//! | [`RedisStore`] (one server, Cluster, Sentinel) | every instance | Lua scripts; lock and fence in one Cluster slot; token ≥ the server's clock in µs |
//! | [`TieredStore`] | every instance | in Redis only, never in the near tier |
//!
//! A single Redis is not Redlock: a lock can be lost if the primary dies before its replica
//! copied it, or evicted under an `allkeys-*` `maxmemory` policy. The fencing token is what
//! keeps a protected resource safe then: after a failover the new holder's token is still the
//! larger one (it is at least the promoted server's clock). `tests/cache/redis_cluster.rs`
//! SIGKILLs the primary holding a lock: calls fail retryably until the replica takes over, and
//! the next holder's token is larger (in the runs seen the replica had the lock and its fence;
//! the case where both were lost rests on the clock floor, not on a test).
//!
//! # Tags
//!
//! [`Cache::set_tagged`] stores an entry carrying tags; [`Cache::invalidate_tag`] makes every
//! entry carrying a tag a miss, with one write whatever their number, on every store (memory,
//! Redis on each deployment, tiered). Each tag has a version in the store; a tagged entry keeps
//! the versions it was written with, a read compares them with the current ones (one more
//! round trip on Redis, `MGET` per Cluster slot) and invalidating writes a new version. A write
//! racing an invalidation therefore never survives it. An invalidated entry is a miss for the
//! reads, but it stays in the store until it expires or is overwritten (`exists` and
//! `set_if_absent` still see it). On the tiered store the versions are only ever read from and
//! written to Redis, so another instance's invalidation is seen at once. Tags are 1-200
//! printable ASCII characters without spaces, at most 32 per entry, checked before any call. A
//! tagged entry is stored as an envelope whose first byte is `0xFF` (never the start of JSON): a
//! raw [`set_bytes`](Cache::set_bytes) value starting with the same 8 bytes would be read as
//! one.
//!
//! # Keeping values fresh
//!
//! [`Cache::get_or_refresh`] is [`get_or_set`](Cache::get_or_set) for values that must keep
//! being served through trouble; its loader runs in a task of its own, once at a time per key
//! in the process, so a refresh goes on after the caller that started it returned:
//!
//! | setting (`CACHE_*`) | what it does |
//! |---|---|
//! | [`refresh_ahead`](CacheBuilder::refresh_ahead) (`REFRESH_AHEAD`) | a read after this fraction of the TTL returns the value at once and refreshes it in the background: a hot key does not miss while refreshes end within the rest of the TTL |
//! | [`max_stale`](CacheBuilder::max_stale) (`MAX_STALE`) | values are kept this long past their TTL; a read then returns the stale value while one refresh runs (stale-while-revalidate), and when the loader fails or times out (fail-safe) |
//! | [`soft_timeout`](CacheBuilder::soft_timeout) (`SOFT_TIMEOUT`) | how long a read holding a stale value waits for the refresh first (default 0: not at all) |
//! | [`loader_timeout`](CacheBuilder::loader_timeout) (`LOADER_TIMEOUT`) | hard bound on a load (30 s when unset, for these loads); past it the load fails and a stale value, if any, is returned |
//! | [`fail_safe_copies`](CacheBuilder::fail_safe_copies) (`FAIL_SAFE_COPIES`) | last good values kept in the process, returned within the stale window when the store itself fails (Redis down, or back empty) |
//!
//! Stale values are flagged in [`CacheStats::stale_hits`], loads and failed loads counted in
//! [`CacheStats::loads`] and [`CacheStats::load_failures`], and every failed load is logged.
//! A value is stored with a stamp (an envelope like tags', first byte `0xFF`) saying when to
//! refresh it and when its TTL ends, for `ttl + max_stale`; the plain reads (`get`,
//! `get_many`, `get_or_set`) treat it as missing once its TTL ended, while `exists`, `ttl`
//! and `set_if_absent` see it until the store drops it. Stamps are wall-clock time: instances
//! sharing a store need clocks that agree. Single flight is per [`Cache`] (and its clones):
//! each instance refreshes a hot key once (a refresh first re-reads the store and skips the
//! load when another instance already refreshed it). The last good copies are kept from every
//! value this handle loaded or read through `get_or_refresh`, and dropped when this handle
//! writes or deletes the key (a delete by another instance is not seen by them). A failed
//! refresh is not throttled: while the loader keeps failing, each read past the refresh point
//! starts another load (give the loader its own circuit breaker if that matters).
//!
//! # Near cache
//!
//! [`TieredStore`] serves reads from process memory and keeps those copies honest whoever
//! writes to Redis: with Redis's key tracking ([`Invalidation::Tracking`], Redis 6+, the
//! default) a write, delete, expiry or eviction by any client drops the copy on every instance;
//! corekit's own pub/sub channel is the fallback where the server refuses tracking. On one
//! server, a Cluster (one tracking connection per primary) and Sentinel alike:
//! - a copy filled by a read that raced a change is not kept (a fill checks, after inserting,
//!   that no invalidation of its key arrived since it started);
//! - while a subscriber connection is down, the near tier is cleared and not used; tracking is
//!   re-armed when it is back (a killed connection and a Redis restart leave no stale read:
//!   `tests/cache/tracking.rs`), and messages lost to a slow listener clear the tier too;
//! - give the store the cache's namespace as its tracking prefix (`CACHE_PREFIX` does it for
//!   [`Cache::from_env`]): without one, every change in the database sends every instance a
//!   message;
//! - with Redis ACLs the user needs the `CLIENT` command and the channels
//!   `__redis__:invalidate` and corekit's (`CACHE_INVALIDATION_CHANNEL`). Without `CLIENT` the
//!   store falls back to its channel (tested); a refused channel is not detected (fred 10.1
//!   reports a refused `SUBSCRIBE` as made), so grant it.
//!
//! How long a copy outlives a change made elsewhere is in BENCHMARKS.md ("Near cache").
//!
//! # Configuration
//!
//! [`Cache::from_env`] reads [`CacheConfig`] from `CACHE_*` variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CACHE_URL` | *(none)* | `memory://`, or a Redis URL (`redis://[user:pass@]host:port/db`, `rediss://`, `redis-cluster://`, `redis-sentinel://`): its scheme picks the backend and it is the Redis address |
//! | `CACHE_BACKEND` | from `CACHE_URL`, else `memory` | `memory`, `redis` or `tiered` (tiered takes a Redis `CACHE_URL`); one that contradicts `CACHE_URL` is a `Config` error |
//! | `CACHE_REDIS_URL`, else `REDIS_URL` | `redis://127.0.0.1:6379` | the Redis address when `CACHE_URL` is unset: `redis://[user:pass@]host:port/db`, or `rediss://` for TLS (feature `cache-redis-tls`) |
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
//! | `CACHE_LOADER_TIMEOUT` | *(none)* | bound on one [`get_or_set`](Cache::get_or_set) or `get_or_refresh` loader run: past it the run is dropped and callers get a retryable `Timeout` (or a stale value); `0` for none (`get_or_refresh` then bounds its loads at 30 s) |
//! | `CACHE_REFRESH_AHEAD` | `0` | [`get_or_refresh`](Cache::get_or_refresh): fraction (0..1) of the TTL after which a read refreshes the value in the background; `0` for none |
//! | `CACHE_MAX_STALE` | `0` | `get_or_refresh`: how long past its TTL a value is kept and may be returned (while it is refreshed, or when the loader or the store fails) |
//! | `CACHE_SOFT_TIMEOUT` | `0` | `get_or_refresh`: how long a read holding a stale value waits for the refresh before returning it |
//! | `CACHE_FAIL_SAFE_COPIES` | `1000` | `get_or_refresh` with `CACHE_MAX_STALE`: last good values kept in the process for when the store fails |
//! | `CACHE_NEAR_TRACKING` | `true` | tiered: Redis's key tracking (`CLIENT TRACKING`, `BCAST` over the namespace) drops near copies whoever changes the key; off, or on servers without it (Redis < 6), only writes through corekit do (see [`Invalidation`]) |
//!
//! # Deployments
//!
//! Every call works on each Redis deployment below; the conformance suite runs on all of them
//! against real servers (`scripts/services.sh` starts them):
//!
//! | deployment | URL | tested with | what differs |
//! |---|---|---|---|
//! | one server | `redis://host:6379/0` | redis-server 7.0 | — |
//! | Redis Cluster | `redis-cluster://host:7001` (`?node=host:7002` adds seed nodes) | three primaries; three primaries with a replica each for the kill test | `get_many`/`delete_many` are split by hash slot and run concurrently; `delete_prefix`/`clear` scan every primary; a dead primary's slots fail retryably until its replica takes over (about 2 s with `cluster-node-timeout 1000`), then the same handle serves them; MOVED/ASK redirections are followed (2,000 slots resharded under load: no call failed) |
//! | Sentinel | `redis-sentinel://sentinel:26379/0?sentinelServiceName=NAME&node=sentinel2:26379` | a primary, a replica, three sentinels | after a failover the handle follows the new primary |
//!
//! Measured in `tests/cache/failover.rs` (a primary SIGKILLed under 8 tasks of sets and gets,
//! 500 ms command timeout): every failure retryable and bounded by the timeout, none later
//! than 1 s after the promotion, on the Cluster and on Sentinel alike. The two-tier store's
//! invalidation channel and the rate limiter work unchanged on a Cluster; when the node holding
//! the invalidation subscription dies, the near tier is dropped and not used again until the
//! subscription is back (tested). Redis's key tracking is per node, so on a Cluster the
//! two-tier store keeps one tracking connection per primary and replaces them when the
//! primaries change (a failover: tested).

mod any;
mod builder;
mod codec;
mod config;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod conformance;
mod flight;
mod fresh;
mod handle;
mod keys;
mod limiter;
mod lock;
#[cfg(feature = "cache-memory")]
mod memory;
#[cfg(feature = "cache-redis")]
mod redis;
mod refresh;
mod stats;
mod store;
mod tags;
#[cfg(all(feature = "cache-memory", feature = "cache-redis"))]
mod tiered;

pub use codec::{Codec, Json, Postcard};
pub use config::{CacheBackend, CacheConfig};
pub use limiter::{RateLimit, RateLimiter};
pub use lock::CacheLock;
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
pub use tiered::{Invalidation, TieredStore, TieredStoreBuilder};

pub use any::AnyStore;
pub use builder::CacheBuilder;
pub use handle::Cache;
#[allow(unused_imports)]
pub(crate) use keys::*;
pub use store::{CacheStore, Purge, Ttl};
// The handle's parts the builder and the get future share.
use flight::FlightGuard;
use handle::{Flight, Inner};
