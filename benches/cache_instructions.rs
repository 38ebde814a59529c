//! Instructions per memory-cache hit, corekit `Cache<MemoryStore>::get_bytes` vs raw
//! `quick_cache` `get` of the same entry (value and expiry, checked), and per overwrite
//! (`corekit-set` / `raw-set`: `set_bytes` vs `insert`), and per near hit of the two-tier store
//! (`tiered`, with `--features cache-redis` and a Redis to build it on), for `valgrind
//! --tool=callgrind` (instruction counts are repeatable on this noisy machine where times are
//! not). Not a criterion bench: a plain `main` doing N lookups.
//!
//! ```sh
//! cargo bench --bench cache_instructions --features cache-memory --no-run   # prints the binary
//! valgrind --tool=callgrind BINARY corekit 1000000   # then 2000000; the difference / 1e6
//! valgrind --tool=callgrind BINARY raw 1000000       # is the cost of one hit
//! ```
//!
//! Same data for both: 10,000 keys `user:000000`.., 100-byte values, no TTL, keys visited in a
//! fixed stride so every lookup hits.

use bytes::Bytes;
use corekit::cache::{Cache, MemoryStore};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future the memory store completes at once, without an executor.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("memory store futures complete at once"),
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let which = args.next().unwrap_or_else(|| "corekit".into());
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    // BENCH_KEYS=1000000: a store too large for the CPU caches (run under cachegrind to count
    // misses).
    let count: usize = std::env::var("BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let capacity = count * 2;
    let keys: Vec<String> = (0..count).map(|i| format!("user:{i:07}")).collect();
    let value = Bytes::from(vec![7u8; 100]);
    // Each key's value in a buffer of its own, as in a real cache (for the hit runs; the set
    // runs write `value`).
    let values: Vec<Bytes> = keys.iter().map(|_| Bytes::from(vec![7u8; 100])).collect();
    // Each side in a function of its own, kept out of line: in one `main`, a change on one side
    // moved the other's inlining and its count by up to 10%.
    match which.as_str() {
        "corekit" => corekit_get(&keys, &values, capacity, n),
        "raw" => raw_get(&keys, &values, capacity, n),
        #[cfg(feature = "cache-redis")]
        "tiered" => tiered_get(&keys, &values, capacity, n),
        "corekit-set" => corekit_set(&keys, &value, capacity, n),
        "raw-set" => raw_set(&keys, &value, capacity, n),
        "sizes" => sizes(&value),
        other => panic!("unknown target {other:?}: corekit, raw, tiered, corekit-set or raw-set"),
    }
    println!("{which}: {n} operations");
}

#[inline(never)]
fn corekit_get(keys: &[String], values: &[Bytes], capacity: usize, n: usize) {
    let cache = Cache::builder(MemoryStore::new(capacity as u64))
        .default_ttl(None)
        .build()
        .expect("cache");
    for (k, v) in keys.iter().zip(values) {
        now(cache.set_bytes(k.as_str(), v.clone(), None)).expect("set");
    }
    for i in 0..n {
        let key = keys[(i * 7919) % keys.len()].as_str();
        black_box(now(cache.get_bytes(key)).expect("get"));
    }
}

#[inline(never)]
fn raw_get(keys: &[String], values: &[Bytes], capacity: usize, n: usize) {
    // The same entry corekit keeps: the value and its expiry, checked on each hit.
    type Entry = (Bytes, Option<std::time::Instant>);
    let q = quick_cache::sync::Cache::<String, Entry>::new(capacity);
    for (k, v) in keys.iter().zip(values) {
        q.insert(k.clone(), (v.clone(), None));
    }
    for i in 0..n {
        let hit = q
            .get(keys[(i * 7919) % keys.len()].as_str())
            .filter(|(_, at)| at.is_none_or(|at| at > std::time::Instant::now()))
            .map(|(v, _)| v);
        black_box(hit);
    }
}

#[cfg(feature = "cache-redis")]
#[inline(never)]
fn tiered_get(keys: &[String], values: &[Bytes], capacity: usize, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url =
        std::env::var("COREKIT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let cache = rt.block_on(async {
        let far = corekit::cache::RedisStore::connect(&url)
            .await
            .expect("redis");
        let store = corekit::cache::TieredStore::builder(MemoryStore::new(capacity as u64), far)
            .build()
            .await
            .expect("tiered");
        // No prefix, as the memory run (a prefix costs an allocation per call); the
        // keys are removed one by one at the end.
        let cache = Cache::builder(store)
            .default_ttl(None)
            .build()
            .expect("cache");
        for (k, v) in keys.iter().zip(values) {
            cache
                .set_bytes(k.as_str(), v.clone(), None)
                .await
                .expect("set");
        }
        // Near copies come from reads (Redis tracking would drop one made by the write
        // when the write's own invalidation arrives): let those arrive, then read.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        for k in keys {
            cache.get_bytes(k.as_str()).await.expect("fill");
        }
        cache
    });
    for i in 0..n {
        let key = keys[(i * 7919) % keys.len()].as_str();
        black_box(now(cache.get_bytes(key)).expect("get"));
    }
    rt.block_on(async { cache.delete_many(keys).await.expect("delete the keys") });
}

#[inline(never)]
fn corekit_set(keys: &[String], value: &Bytes, capacity: usize, n: usize) {
    let cache = Cache::builder(MemoryStore::new(capacity as u64))
        .default_ttl(None)
        .build()
        .expect("cache");
    for i in 0..n {
        let key = keys[(i * 7919) % keys.len()].as_str();
        now(cache.set_bytes(key, value.clone(), None)).expect("set");
    }
}

#[inline(never)]
fn raw_set(keys: &[String], value: &Bytes, capacity: usize, n: usize) {
    type Entry = (Bytes, Option<std::time::Instant>);
    let q = quick_cache::sync::Cache::<String, Entry>::new(capacity);
    for i in 0..n {
        let key = &keys[(i * 7919) % keys.len()];
        q.insert(key.clone(), (value.clone(), None));
    }
}

#[inline(never)]
fn sizes(value: &Bytes) {
    let cache = Cache::builder(MemoryStore::new(16)).build().expect("cache");
    let set = cache.set_bytes("k", value.clone(), None);
    let get = cache.get_bytes("k");
    println!(
        "future sizes: set_bytes {} bytes, get_bytes {} bytes",
        std::mem::size_of_val(&set),
        std::mem::size_of_val(&get)
    );
}
