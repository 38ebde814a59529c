//! `Cache<RedisStore>` next to raw `fred` under concurrency, on one server and on a Redis
//! Cluster: 64 tasks doing an 80/20 get/set mix of 100-byte values over 1,000 keys, and one task
//! doing the same (latency).
//!
//! ```sh
//! scripts/services.sh up redis redis_cluster
//! cargo bench --bench redis_mix --features cache-redis
//! ```
//!
//! Paired rounds, not criterion: on this 2-core machine one side's throughput moved by 2x from
//! one criterion group to the next (a single task's latency flipped between two levels with the
//! same binary), so a ratio of two sequential groups measured the machine, not the code. Each
//! round runs every side once, alternating which goes first, and the ratio is taken within the
//! round; the bench prints the median and range of those ratios.
//!
//! Both sides auto-pipeline on one connection per server (corekit's default pool); corekit keeps
//! its default 1 s command timeout, raw fred runs without one. `BENCH_REDIS_ROUNDS` (default 15)
//! sets the rounds; `BENCH_REDIS_ATTRIBUTION=1` also runs the store alone, with and without its
//! timeout, to show which layer costs what; `BENCH_REDIS_SIDE` (below) runs one side for a count
//! of instructions.

#[path = "common/tasks.rs"]
mod tasks;

use bytes::Bytes;
use corekit::cache::{Cache, CacheStore, RedisStore};
use fred::clients::Pool;
use fred::interfaces::{ClientLike, KeysInterface};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Keys touched; every fifth operation is a set.
const KEYS: u64 = 1_000;

fn env(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

fn key(i: u64) -> String {
    format!("mix:{}", (i.wrapping_mul(2_654_435_761)) % KEYS)
}

type Op = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One side of the comparison: a name and the operation it runs for index `i`.
struct Side {
    name: &'static str,
    op: Op,
}

fn corekit_side(cache: Cache<RedisStore>, value: Bytes) -> Side {
    Side {
        name: "corekit",
        op: Arc::new(move |i| {
            let (cache, value) = (cache.clone(), value.clone());
            Box::pin(async move {
                if i % 5 == 0 {
                    cache.set_bytes(&key(i), value, None).await.unwrap();
                } else {
                    black_box(cache.get_bytes(&key(i)).await.unwrap());
                }
            })
        }),
    }
}

fn store_side(name: &'static str, store: RedisStore, value: Bytes) -> Side {
    Side {
        name,
        op: Arc::new(move |i| {
            let (store, value) = (store.clone(), value.clone());
            Box::pin(async move {
                let k = key(i);
                if i % 5 == 0 {
                    store.set(k.as_bytes(), value, None).await.unwrap();
                } else {
                    black_box(store.get(k.as_bytes()).await.unwrap());
                }
            })
        }),
    }
}

fn fred_side(raw: Pool, value: Bytes) -> Side {
    Side {
        name: "fred",
        op: Arc::new(move |i| {
            let (raw, value) = (raw.clone(), value.clone());
            Box::pin(async move {
                if i % 5 == 0 {
                    let _: () = raw.set(key(i), value, None, None, false).await.unwrap();
                } else {
                    let v: Option<Bytes> = raw.get(key(i)).await.unwrap();
                    black_box(v);
                }
            })
        }),
    }
}

async fn sides(url: &str, value: &Bytes) -> Vec<Side> {
    let store = RedisStore::builder(url).build().await.unwrap();
    let cache = Cache::builder(store).default_ttl(None).build().unwrap();
    let config = fred::types::config::Config::from_url(url).unwrap();
    let raw = fred::types::Builder::from_config(config)
        .build_pool(1)
        .unwrap();
    raw.init().await.unwrap();
    for i in 0..KEYS {
        let _: () = raw
            .set(key(i), value.clone(), None, None, false)
            .await
            .unwrap();
    }
    let mut sides = vec![corekit_side(cache, value.clone())];
    if std::env::var_os("BENCH_REDIS_ATTRIBUTION").is_some() {
        for (name, timeout) in [
            ("store", Duration::from_secs(1)),
            ("store_untimed", Duration::ZERO),
        ] {
            let store = RedisStore::builder(url)
                .command_timeout(timeout)
                .build()
                .await
                .unwrap();
            sides.push(store_side(name, store, value.clone()));
        }
    }
    sides.push(fred_side(raw, value.clone()));
    sides
}

/// `op` as the plain closure `run_tasks` takes.
fn call(
    op: &Op,
) -> impl Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + 'static {
    let op = op.clone();
    move |i| op(i)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `BENCH_REDIS_SIDE=fred BENCH_REDIS_OPS=20000`: only that side, 64 tasks on one server, no
/// warm-up and no output, for `valgrind --tool=callgrind` (instructions per operation: the
/// difference between two op counts, divided by the difference, leaves connecting out).
fn count_one_side(rt: &tokio::runtime::Runtime, url: &str, only: &str, value: &Bytes) {
    let ops: u64 = env("BENCH_REDIS_OPS", "20000").parse().unwrap();
    let sides = rt.block_on(sides(url, value));
    let side = sides
        .iter()
        .find(|s| s.name == only)
        .expect("a side's name");
    rt.block_on(tasks::run_tasks(64, ops, call(&side.op)));
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let rounds: usize = env("BENCH_REDIS_ROUNDS", "15").parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let deployments = [
        (
            "single",
            env("COREKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
        ),
        (
            "cluster",
            env(
                "COREKIT_TEST_REDIS_CLUSTER_URL",
                "redis-cluster://127.0.0.1:7001",
            ),
        ),
    ];
    let value = Bytes::from(vec![7u8; 100]);
    if let Ok(only) = std::env::var("BENCH_REDIS_SIDE") {
        return count_one_side(&rt, &deployments[0].1, &only, &value);
    }
    println!("deployment tasks side: median ops/s | corekit/side per round: median [min, max]");
    for (deployment, url) in deployments {
        let sides = rt.block_on(sides(&url, &value));
        // About a quarter of a second per side and round on this machine.
        for (tasks, ops) in [(64usize, 25_600u64), (1, 2_000)] {
            // Warm-up: one pass of every side.
            for side in &sides {
                rt.block_on(tasks::run_tasks(tasks, ops / 4, call(&side.op)));
            }
            let mut rates = vec![Vec::new(); sides.len()];
            for round in 0..rounds {
                let mut order: Vec<usize> = (0..sides.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for s in order {
                    let took = rt.block_on(tasks::run_tasks(tasks, ops, call(&sides[s].op)));
                    rates[s].push(ops as f64 / took.as_secs_f64());
                }
            }
            for (s, side) in sides.iter().enumerate() {
                let mut ratios: Vec<f64> = rates[0]
                    .iter()
                    .zip(&rates[s])
                    .map(|(c, other)| c / other)
                    .collect();
                let med = median(&mut ratios);
                let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
                let mut r = rates[s].clone();
                println!(
                    "{deployment} {tasks} {}: {:.0} ops/s | {med:.3} [{lo:.3}, {hi:.3}]",
                    side.name,
                    median(&mut r)
                );
            }
        }
    }
}
