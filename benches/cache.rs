//! corekit's cache next to the raw clients, same data, same run.
//!
//! ```sh
//! scripts/services.sh up redis
//! cargo bench --bench cache --features cache-redis
//! ```
//!
//! Memory: `Cache<MemoryStore>` vs raw `quick_cache` vs `moka` (get-hit, set, a Zipf-skewed
//! 90/10 read/write mix; 1 and 2 threads; get-hit over 1,000,000 entries). Redis: `Cache<RedisStore>` (its defaults: 1 s command
//! timeout) vs a raw `fred` pool of the same size with no timeout (get/set; 1 task and 64
//! concurrent tasks).

#[path = "common/tasks.rs"]
mod tasks;

use bytes::Bytes;
use corekit::cache::{Cache, MemoryStore, RedisStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fred::interfaces::{ClientLike, KeysInterface};
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tasks::bench_tasks;

const KEYS: usize = 10_000;
const OPS: usize = 1 << 16;

/// Polls a future that the memory store completes at once, without an executor's overhead.
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("memory store futures complete at once"),
    }
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("user:{i:06}")).collect()
}

/// Key indexes drawn from a Zipf(1.0) distribution, and whether each op is a write (10%).
fn zipf_ops() -> Vec<(usize, bool)> {
    let weights: Vec<f64> = (1..=KEYS).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(KEYS);
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = fastrand::Rng::with_seed(7);
    (0..OPS)
        .map(|_| {
            let u = rng.f64();
            let idx = cdf.partition_point(|&c| c < u).min(KEYS - 1);
            (idx, rng.u8(..10) == 0)
        })
        .collect()
}

trait Target: Clone + Send + Sync + 'static {
    fn get(&self, key: &str) -> Option<Bytes>;
    fn set(&self, key: &str, value: Bytes);
}

#[derive(Clone)]
struct Corekit(Cache<MemoryStore>);
impl Target for Corekit {
    fn get(&self, key: &str) -> Option<Bytes> {
        now(self.0.get_bytes(key)).ok().flatten()
    }
    fn set(&self, key: &str, value: Bytes) {
        let _ = now(self.0.set_bytes(key, value, None));
    }
}

#[derive(Clone)]
struct Quick(Arc<quick_cache::sync::Cache<String, Bytes>>);
impl Target for Quick {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.0.get(key)
    }
    fn set(&self, key: &str, value: Bytes) {
        self.0.insert(key.to_owned(), value);
    }
}

/// quick_cache holding what corekit's memory store holds per entry (value + optional expiry):
/// the like-for-like baseline, since raw quick_cache has no TTL.
#[derive(Clone)]
struct QuickTtl(Arc<quick_cache::sync::Cache<String, (Bytes, Option<Instant>)>>);
impl Target for QuickTtl {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.0.get(key).map(|e| e.0)
    }
    fn set(&self, key: &str, value: Bytes) {
        self.0.insert(key.to_owned(), (value, None));
    }
}

#[derive(Clone)]
struct Moka(moka::sync::Cache<String, Bytes>);
impl Target for Moka {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.0.get(key)
    }
    fn set(&self, key: &str, value: Bytes) {
        self.0.insert(key.to_owned(), value);
    }
}

/// One 100-byte value per key, each in a buffer of its own as in a real cache (one shared
/// buffer would keep its bytes and reference count in the CPU caches, and make threads contend
/// on that count).
fn values(n: usize) -> Vec<Bytes> {
    (0..n).map(|_| Bytes::from(vec![7u8; 100])).collect()
}

fn filled<T: Target>(t: T, keys: &[String], values: &[Bytes]) -> T {
    for (k, v) in keys.iter().zip(values) {
        t.set(k, v.clone());
    }
    t
}

/// Runs `op` `iters` times split over `threads` threads; the wall time of the slowest.
fn on_threads<T: Target>(
    t: &T,
    threads: usize,
    iters: u64,
    op: impl Fn(&T, u64) + Sync,
) -> Duration {
    if threads == 1 {
        let start = Instant::now();
        for i in 0..iters {
            op(t, i);
        }
        return start.elapsed();
    }
    let per = iters / threads as u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            let op = &op;
            s.spawn(move || {
                for i in 0..per {
                    op(t, i * threads as u64 + th as u64);
                }
            });
        }
    });
    start.elapsed()
}

fn memory(c: &mut Criterion) {
    let keys = keys();
    let ops = zipf_ops();
    let values = values(KEYS);
    let corekit = filled(
        Corekit(
            Cache::builder(MemoryStore::new(KEYS as u64 * 2))
                .default_ttl(None)
                .build()
                .unwrap(),
        ),
        &keys,
        &values,
    );
    let quick = filled(
        Quick(Arc::new(quick_cache::sync::Cache::new(KEYS * 2))),
        &keys,
        &values,
    );
    let quick_ttl = filled(
        QuickTtl(Arc::new(quick_cache::sync::Cache::new(KEYS * 2))),
        &keys,
        &values,
    );
    let moka = filled(
        Moka(moka::sync::Cache::new(KEYS as u64 * 2)),
        &keys,
        &values,
    );

    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("memory_get_hit/{threads}t"));
        group.throughput(Throughput::Elements(1));
        macro_rules! bench {
            ($name:literal, $t:expr) => {
                group.bench_function($name, |b| {
                    b.iter_custom(|iters| {
                        on_threads(&$t, threads, iters, |t, i| {
                            black_box(t.get(&keys[(i as usize * 7919) % KEYS]));
                        })
                    })
                });
            };
        }
        bench!("corekit", corekit);
        bench!("quick_cache", quick);
        bench!("quick_cache_ttl_entry", quick_ttl);
        bench!("moka", moka);
        group.finish();

        let mut group = c.benchmark_group(format!("memory_set/{threads}t"));
        group.throughput(Throughput::Elements(1));
        macro_rules! bench_set {
            ($name:literal, $t:expr) => {
                group.bench_function($name, |b| {
                    b.iter_custom(|iters| {
                        on_threads(&$t, threads, iters, |t, i| {
                            let k = (i as usize * 7919) % KEYS;
                            t.set(&keys[k], values[k].clone());
                        })
                    })
                });
            };
        }
        bench_set!("corekit", corekit);
        bench_set!("quick_cache", quick);
        bench_set!("quick_cache_ttl_entry", quick_ttl);
        bench_set!("moka", moka);
        group.finish();

        let mut group = c.benchmark_group(format!("memory_zipf_90_10/{threads}t"));
        group.throughput(Throughput::Elements(1));
        macro_rules! bench_mix {
            ($name:literal, $t:expr) => {
                group.bench_function($name, |b| {
                    b.iter_custom(|iters| {
                        on_threads(&$t, threads, iters, |t, i| {
                            let (k, write) = ops[i as usize % OPS];
                            if write {
                                t.set(&keys[k], values[k].clone());
                            } else {
                                black_box(t.get(&keys[k]));
                            }
                        })
                    })
                });
            };
        }
        bench_mix!("corekit", corekit);
        bench_mix!("quick_cache", quick);
        bench_mix!("quick_cache_ttl_entry", quick_ttl);
        bench_mix!("moka", moka);
        group.finish();
    }
}

fn redis_url() -> String {
    std::env::var("COREKIT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Connections on both sides (`BENCH_REDIS_POOL`, default 1 as corekit's default).
fn pool_size() -> usize {
    std::env::var("BENCH_REDIS_POOL")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
}

fn redis(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = redis_url();
    let (cache, untimed, raw) = rt.block_on(async {
        let store = RedisStore::builder(url.clone())
            .pool_size(pool_size())
            .build()
            .await
            .unwrap();
        let cache = Cache::builder(store).default_ttl(None).build().unwrap();
        // CACHE_COMMAND_TIMEOUT=0: no bound on a call, to show what the bound costs.
        let store = RedisStore::builder(url.clone())
            .pool_size(pool_size())
            .command_timeout(Duration::ZERO)
            .build()
            .await
            .unwrap();
        let untimed = Cache::builder(store).default_ttl(None).build().unwrap();
        let raw =
            fred::types::Builder::from_config(fred::types::config::Config::from_url(&url).unwrap())
                .build_pool(pool_size())
                .unwrap();
        raw.init().await.unwrap();
        (cache, untimed, raw)
    });
    let value = Bytes::from(vec![7u8; 100]);
    rt.block_on(async {
        for i in 0..1000 {
            let _: () = raw
                .set(format!("bench:{i}"), value.clone(), None, None, false)
                .await
                .unwrap();
        }
    });

    let key = |i: u64| format!("bench:{}", i % 1000);
    for tasks in [1usize, 64] {
        let mut group = c.benchmark_group(format!("redis_get/{tasks}tasks"));
        group.throughput(Throughput::Elements(1));
        for (name, cache) in [("corekit", &cache), ("corekit_timeout_off", &untimed)] {
            let cache = cache.clone();
            bench_tasks(&mut group, &rt, name, tasks, move |i| {
                let cache = cache.clone();
                async move {
                    black_box(cache.get_bytes(&key(i)).await.unwrap());
                }
            });
        }
        let raw_get = raw.clone();
        bench_tasks(&mut group, &rt, "fred", tasks, move |i| {
            let raw = raw_get.clone();
            async move {
                let v: Option<Bytes> = raw.get(key(i)).await.unwrap();
                black_box(v);
            }
        });
        group.finish();

        let mut group = c.benchmark_group(format!("redis_set/{tasks}tasks"));
        group.throughput(Throughput::Elements(1));
        for (name, cache) in [("corekit", &cache), ("corekit_timeout_off", &untimed)] {
            let (cache, value) = (cache.clone(), value.clone());
            bench_tasks(&mut group, &rt, name, tasks, move |i| {
                let (cache, value) = (cache.clone(), value.clone());
                async move {
                    cache.set_bytes(&key(i), value, None).await.unwrap();
                }
            });
        }
        let (raw_set, raw_value) = (raw.clone(), value.clone());
        bench_tasks(&mut group, &rt, "fred", tasks, move |i| {
            let (raw, value) = (raw_set.clone(), raw_value.clone());
            async move {
                let _: () = raw.set(key(i), value, None, None, false).await.unwrap();
            }
        });
        group.finish();
    }
}

/// Get hits over 1,000,000 entries (keys visited in a fixed stride, so most miss the CPU
/// caches): whether corekit's cost per hit grows with the store.
fn memory_large(c: &mut Criterion) {
    const LARGE: usize = 1_000_000;
    let keys: Vec<String> = (0..LARGE).map(|i| format!("user:{i:07}")).collect();
    let values = values(LARGE);
    let corekit = filled(
        Corekit(
            Cache::builder(MemoryStore::new(LARGE as u64 * 2))
                .default_ttl(None)
                .build()
                .unwrap(),
        ),
        &keys,
        &values,
    );
    let quick_ttl = filled(
        QuickTtl(Arc::new(quick_cache::sync::Cache::new(LARGE * 2))),
        &keys,
        &values,
    );
    let moka = filled(
        Moka(moka::sync::Cache::new(LARGE as u64 * 2)),
        &keys,
        &values,
    );
    let mut group = c.benchmark_group("memory_get_hit_1m/1t");
    group.throughput(Throughput::Elements(1));
    macro_rules! bench {
        ($name:literal, $t:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|iters| {
                    on_threads(&$t, 1, iters, |t, i| {
                        black_box(t.get(&keys[(i as usize * 7919) % LARGE]));
                    })
                })
            });
        };
    }
    // BENCH_ORDER=raw_first measures the raw side first (to rule out an order effect).
    if std::env::var("BENCH_ORDER").as_deref() == Ok("raw_first") {
        bench!("quick_cache_ttl_entry", quick_ttl);
        bench!("corekit", corekit);
    } else {
        bench!("corekit", corekit);
        bench!("quick_cache_ttl_entry", quick_ttl);
    }
    bench!("moka", moka);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = memory, memory_large, redis
}
criterion_main!(benches);
