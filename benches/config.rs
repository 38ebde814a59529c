//! Loading a config struct: corekit's loader vs raw `envy` on the same variables.
//!
//! ```sh
//! cargo bench --bench config
//! ```

use corekit::config::{self, EnvConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use std::hint::black_box;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Bench {
    #[serde(with = "config::duration")]
    ttl: Duration,
    #[serde(with = "config::size")]
    max_bytes: u64,
    max_entries: u64,
    prefix: String,
}

impl Default for Bench {
    fn default() -> Self {
        Self {
            ttl: Duration::ZERO,
            max_bytes: 0,
            max_entries: 0,
            prefix: String::new(),
        }
    }
}

impl EnvConfig for Bench {
    const PREFIX: &'static str = "CACHE_";
}

fn vars() -> Vec<(String, String)> {
    [
        ("CACHE_TTL", "30s"),
        ("CACHE_MAX_BYTES", "64MiB"),
        ("CACHE_MAX_ENTRIES", "10000"),
        ("CACHE_PREFIX", "app"),
        ("PATH", "/usr/bin"),
        ("HOME", "/home/x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn load(c: &mut Criterion) {
    let vars = vars();
    let mut group = c.benchmark_group("config_load");
    group.bench_function("corekit", |b| {
        b.iter(|| Bench::from_vars("CACHE_", black_box(vars.clone())).map(|c| c.max_entries))
    });
    group.bench_function("raw_envy", |b| {
        b.iter(|| {
            envy::prefixed("CACHE_")
                .from_iter::<_, Bench>(black_box(vars.clone()))
                .map(|c| c.max_entries)
        })
    });
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
