//! How long a near copy outlives a change made elsewhere: the time from a write's reply (what
//! the writer sees) and from its start to the moment the tiered store's near copy is gone, over
//! `BENCH_INVALIDATION_WRITES` writes (default 1,000) of one key, p50 / p99 / max. A copy
//! already gone when the reply arrives counts as the few hundred nanoseconds of one check.
//!
//! Two writers: a plain fred client (Redis tracking must drop the copy) and a second corekit
//! instance (its invalidation channel and tracking both can). Needs Redis at
//! `COREKIT_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).
//!
//! ```sh
//! cargo bench --bench near_invalidation --features cache-memory,cache-redis
//! ```

use corekit::cache::{Cache, CacheStore, MemoryStore, RedisStore, TieredStore};
use fred::interfaces::{ClientLike, KeysInterface};
use std::time::{Duration, Instant};

async fn tiered(url: &str, prefix: &str) -> Cache<TieredStore> {
    let far = RedisStore::connect(url).await.expect("redis");
    let store = TieredStore::builder(MemoryStore::new(1_000), far)
        .channel(format!("{prefix}:chan"))
        .tracking_prefix(format!("{prefix}:"))
        .build()
        .await
        .expect("tiered");
    Cache::builder(store).prefix(prefix).build().expect("cache")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Fills the near copy of `k`, then times `write` until the copy is gone, `writes` times:
/// (from the reply, from the start), each sorted.
async fn run<F, Fut>(
    cache: &Cache<TieredStore>,
    writes: usize,
    mut write: F,
) -> (Vec<Duration>, Vec<Duration>)
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let key = format!("{}k", cache.namespace());
    let mut took = Vec::with_capacity(writes);
    let mut whole = Vec::with_capacity(writes);
    for i in 0..writes as i64 {
        // A fill is dropped when an invalidation of the key arrives meanwhile: read until held.
        while cache
            .store()
            .near()
            .get_local(key.as_bytes())
            .flatten()
            .is_none()
        {
            cache.get_bytes("k").await.expect("get");
        }
        let started = Instant::now();
        write(i).await;
        let written = Instant::now();
        while cache
            .store()
            .near()
            .get_local(key.as_bytes())
            .flatten()
            .is_some()
        {
            tokio::task::yield_now().await;
        }
        took.push(written.elapsed());
        whole.push(started.elapsed());
    }
    took.sort();
    whole.sort();
    (took, whole)
}

fn report(what: &str, (took, whole): &(Vec<Duration>, Vec<Duration>)) {
    let line = |d: &[Duration]| {
        format!(
            "p50 {:?}, p99 {:?}, max {:?}",
            percentile(d, 0.5),
            percentile(d, 0.99),
            d[d.len() - 1]
        )
    };
    println!("{what}: {} writes", took.len());
    println!("  after the write's reply: {}", line(took));
    println!("  after the write's start: {}", line(whole));
}

fn main() {
    let url =
        std::env::var("COREKIT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let writes: usize = std::env::var("BENCH_INVALIDATION_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let prefix = format!("bench-inv-{}", std::process::id());
        let cache = tiered(&url, &prefix).await;
        cache.set("k", &0_i64).await.expect("set");

        let plain = fred::types::Builder::from_config(
            fred::types::config::Config::from_url(&url).expect("url"),
        )
        .build()
        .expect("client");
        plain.init().await.expect("connect");
        let raw_key = format!("{prefix}:k");
        let took = run(&cache, writes, |i| {
            let plain = &plain;
            let raw_key = &raw_key;
            async move {
                let () = plain
                    .set(raw_key.as_str(), i, None, None, false)
                    .await
                    .expect("plain set");
            }
        })
        .await;
        report("plain fred client writes (Redis tracking)", &took);

        let other = tiered(&url, &prefix).await;
        let took = run(&cache, writes, |i| {
            let other = &other;
            async move { other.set("k", &i).await.expect("corekit set") }
        })
        .await;
        report(
            "another corekit instance writes (tracking + channel)",
            &took,
        );

        let _: i64 = plain.del(raw_key.as_str()).await.expect("cleanup");
        let _ = plain.quit().await;
    });
}
