//! Hit rate on a hot key with a short TTL: plain TTL (`get_or_set`) against refresh-ahead
//! (`get_or_refresh` with `refresh_ahead(0.8)`).
//!
//! Four reader tasks read one key every millisecond for `BENCH_REFRESH_SECS` seconds (default
//! 10); its TTL is 200 ms and the loader takes 20 ms (a database query, say). A read is a hit
//! when the value was in the cache (no waiting on a loader); the key is loaded once before the
//! clock starts. Reported per store (memory, and Redis at `COREKIT_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): misses and hit rate, loader runs, read latency p50 / p99 / max.
//!
//! ```sh
//! cargo bench --bench refresh_ahead --features cache-memory,cache-redis
//! ```

use corekit::cache::{Cache, CacheStore, MemoryStore, RedisStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_millis(200);
const LOAD: Duration = Duration::from_millis(20);
const READERS: usize = 4;

#[derive(Clone, Copy)]
enum Mode {
    PlainTtl,
    RefreshAhead,
}

struct Outcome {
    hit_rate: f64,
    misses: u64,
    loads: u64,
    reads: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn run<S: CacheStore>(store: S, mode: Mode, secs: u64) -> Outcome {
    let prefix = format!("bench-refresh-{}", fastrand::u64(..));
    let mut builder = Cache::builder(store).prefix(prefix);
    if let Mode::RefreshAhead = mode {
        builder = builder.refresh_ahead(0.8);
    }
    let cache = builder.build().expect("cache");
    // The first load, before the clock: every figure below is from a warm key.
    let first = || async { Ok::<_, std::io::Error>(42u64) };
    match mode {
        Mode::PlainTtl => cache.get_or_set("hot", Some(TTL), first).await,
        Mode::RefreshAhead => cache.get_or_refresh("hot", Some(TTL), first).await,
    }
    .expect("first load");
    let before = cache.stats();
    let loads = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                let mut took = Vec::new();
                while Instant::now() < end {
                    let loads = loads.clone();
                    let loader = move || async move {
                        loads.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(LOAD).await;
                        Ok::<_, std::io::Error>(42u64)
                    };
                    let started = Instant::now();
                    let value: u64 = match mode {
                        Mode::PlainTtl => cache.get_or_set("hot", Some(TTL), loader).await,
                        Mode::RefreshAhead => cache.get_or_refresh("hot", Some(TTL), loader).await,
                    }
                    .expect("read");
                    took.push(started.elapsed());
                    assert_eq!(value, 42);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                took
            })
        })
        .collect();
    let mut took = Vec::new();
    for r in readers {
        took.extend(r.await.expect("reader"));
    }
    took.sort();
    let stats = cache.stats();
    let (hits, misses) = (stats.hits - before.hits, stats.misses - before.misses);
    let at = |p: f64| took[((took.len() as f64 - 1.0) * p).round() as usize];
    Outcome {
        hit_rate: hits as f64 / (hits + misses) as f64,
        misses,
        loads: loads.load(Ordering::Relaxed),
        reads: took.len(),
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn print(store: &str, mode: &str, o: &Outcome) {
    println!(
        "{store:6} {mode:14} reads {:6}  misses {:4}  hit rate {:7.3}%  loads {:4}  read p50 {:>10.1?}  p99 {:>10.1?}  max {:>10.1?}",
        o.reads,
        o.misses,
        o.hit_rate * 100.0,
        o.loads,
        o.p50,
        o.p99,
        o.max
    );
}

fn main() {
    let secs: u64 = std::env::var("BENCH_REFRESH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let url = std::env::var("COREKIT_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!(
            "hot key, TTL {TTL:?}, loader {LOAD:?}, {READERS} readers every 1 ms, {secs} s each"
        );
        for (mode, name) in [
            (Mode::PlainTtl, "plain TTL"),
            (Mode::RefreshAhead, "refresh-ahead"),
        ] {
            let memory = run(MemoryStore::new(1_000), mode, secs).await;
            print("memory", name, &memory);
            let redis = RedisStore::connect(&url).await.expect("redis");
            let redis = run(redis, mode, secs).await;
            print("redis", name, &redis);
        }
    });
}
