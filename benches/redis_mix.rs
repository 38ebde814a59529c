//! `Cache<RedisStore>` next to raw `fred` under concurrency, on one server and on a Redis
//! Cluster, same server and same run: 64 tasks doing a 80/20 get/set mix of 100-byte values
//! over 1,000 keys, and one task doing the same (latency).
//!
//! ```sh
//! scripts/services.sh up redis redis_cluster
//! cargo bench --bench redis_mix --features cache-redis
//! ```
//!
//! Both sides auto-pipeline on one connection per server (corekit's default pool); corekit
//! keeps its default 1 s command timeout, raw fred runs without one.

use bytes::Bytes;
#[path = "common/tasks.rs"]
mod tasks;

use corekit::cache::{Cache, CacheStore, RedisStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fred::clients::Pool;
use fred::interfaces::{ClientLike, KeysInterface};
use std::hint::black_box;
use std::time::Duration;
use tasks::bench_tasks;

/// Keys touched; every fifth operation is a set.
const KEYS: u64 = 1_000;

fn url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

fn key(i: u64) -> String {
    format!("mix:{}", (i.wrapping_mul(2_654_435_761)) % KEYS)
}

async fn connect(url: &str) -> (Cache<RedisStore>, Pool) {
    let store = RedisStore::builder(url).build().await.unwrap();
    let cache = Cache::builder(store).default_ttl(None).build().unwrap();
    // BENCH_REDIS_ATTRIBUTION=1: also the store alone, with and without its timeout, to see
    // which layer costs what.
    let config = fred::types::config::Config::from_url(url).unwrap();
    let raw = fred::types::Builder::from_config(config)
        .build_pool(1)
        .unwrap();
    raw.init().await.unwrap();
    let value = Bytes::from(vec![7u8; 100]);
    for i in 0..KEYS {
        let _: () = raw
            .set(key(i), value.clone(), None, None, false)
            .await
            .unwrap();
    }
    (cache, raw)
}

fn mix(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deployments = [
        (
            "single",
            url("COREKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
        ),
        (
            "cluster",
            url(
                "COREKIT_TEST_REDIS_CLUSTER_URL",
                "redis-cluster://127.0.0.1:7001",
            ),
        ),
    ];
    let value = Bytes::from(vec![7u8; 100]);
    for (deployment, url) in deployments {
        let (cache, raw) = rt.block_on(connect(&url));
        for tasks in [64usize, 1] {
            let mut group = c.benchmark_group(format!("redis_mix/{deployment}/{tasks}tasks"));
            group.throughput(Throughput::Elements(1));
            let (c2, v2) = (cache.clone(), value.clone());
            bench_tasks(&mut group, &rt, "corekit", tasks, move |i| {
                let (cache, value) = (c2.clone(), v2.clone());
                async move {
                    if i % 5 == 0 {
                        cache.set_bytes(&key(i), value, None).await.unwrap();
                    } else {
                        black_box(cache.get_bytes(&key(i)).await.unwrap());
                    }
                }
            });
            if std::env::var_os("BENCH_REDIS_ATTRIBUTION").is_some() {
                for (name, timeout) in [
                    ("store", Duration::from_secs(1)),
                    ("store_untimed", Duration::ZERO),
                ] {
                    let store = rt
                        .block_on(
                            RedisStore::builder(url.clone())
                                .command_timeout(timeout)
                                .build(),
                        )
                        .unwrap();
                    let v2 = value.clone();
                    bench_tasks(&mut group, &rt, name, tasks, move |i| {
                        let (store, value) = (store.clone(), v2.clone());
                        async move {
                            let k = key(i);
                            if i % 5 == 0 {
                                store.set(k.as_bytes(), value, None).await.unwrap();
                            } else {
                                black_box(store.get(k.as_bytes()).await.unwrap());
                            }
                        }
                    });
                }
            }
            let (r2, v2) = (raw.clone(), value.clone());
            bench_tasks(&mut group, &rt, "fred", tasks, move |i| {
                let (raw, value) = (r2.clone(), v2.clone());
                async move {
                    if i % 5 == 0 {
                        let _: () = raw.set(key(i), value, None, None, false).await.unwrap();
                    } else {
                        let v: Option<Bytes> = raw.get(key(i)).await.unwrap();
                        black_box(v);
                    }
                }
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = mix
}
criterion_main!(benches);
