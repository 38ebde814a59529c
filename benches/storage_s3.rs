//! corekit's S3 backend next to raw aws-sdk-s3 calls, on the same SeaweedFS server, same client
//! connection pool, same run.
//!
//! ```sh
//! scripts/services.sh up s3 && cargo bench --bench storage_s3 --features storage-s3
//! ```
//!
//! put and get of a 4 KiB object, get of a 1 MiB object, and 16 concurrent 4 KiB gets. The raw
//! calls use the very `aws_sdk_s3::Client` corekit holds (`S3Storage::client`), so the figure is
//! corekit's own cost: validation, the retry/deadline wrapper, the span, metadata mapping.

use bytes::Bytes;
use corekit::storage::{ObjectPath, PutOptions, S3Storage, Storage};
use criterion::{Criterion, criterion_group, criterion_main};

const BUCKET: &str = "corekit-bench";

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let endpoint = std::env::var("COREKIT_TEST_S3_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:8333".into());
    let s3 = rt
        .block_on(
            S3Storage::builder(BUCKET)
                .endpoint(endpoint)
                .credentials("corekit", "corekit-secret")
                .build(),
        )
        .unwrap();
    rt.block_on(s3.ensure_bucket()).unwrap();
    let raw = s3.client().clone();
    let corekit = Storage::new(s3);
    let small = Bytes::from(vec![7u8; 4096]);
    let big = Bytes::from(vec![9u8; 1 << 20]);
    let key = ObjectPath::new("bench/small").unwrap();
    let big_key = ObjectPath::new("bench/big").unwrap();
    rt.block_on(corekit.put(&big_key, big.clone(), &PutOptions::default()))
        .unwrap();
    rt.block_on(corekit.put(&key, small.clone(), &PutOptions::default()))
        .unwrap();

    let raw_put = |body: Bytes| {
        let raw = raw.clone();
        async move {
            raw.put_object()
                .bucket(BUCKET)
                .key("bench/small")
                .body(body.into())
                .send()
                .await
                .unwrap()
        }
    };
    let raw_get = |k: &'static str| {
        let raw = raw.clone();
        async move {
            raw.get_object()
                .bucket(BUCKET)
                .key(k)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
        }
    };

    let mut g = c.benchmark_group("s3/put_4k");
    g.bench_function("corekit", |b| {
        b.iter(|| {
            rt.block_on(corekit.put(&key, small.clone(), &PutOptions::default()))
                .unwrap()
        })
    });
    g.bench_function("aws_sdk_s3", |b| {
        b.iter(|| rt.block_on(raw_put(small.clone())))
    });
    g.finish();

    let mut g = c.benchmark_group("s3/get_4k");
    g.bench_function("corekit", |b| {
        b.iter(|| rt.block_on(corekit.get(&key)).unwrap())
    });
    g.bench_function("aws_sdk_s3", |b| {
        b.iter(|| rt.block_on(raw_get("bench/small")))
    });
    g.finish();

    let mut g = c.benchmark_group("s3/get_1m");
    g.bench_function("corekit", |b| {
        b.iter(|| rt.block_on(corekit.get(&big_key)).unwrap())
    });
    g.bench_function("aws_sdk_s3", |b| {
        b.iter(|| rt.block_on(raw_get("bench/big")))
    });
    g.finish();

    let mut g = c.benchmark_group("s3/get_4k_x16");
    g.bench_function("corekit", |b| {
        b.iter(|| {
            rt.block_on(futures_util::future::join_all(
                (0..16).map(|_| corekit.get(&key)),
            ))
        })
    });
    g.bench_function("aws_sdk_s3", |b| {
        b.iter(|| {
            rt.block_on(futures_util::future::join_all(
                (0..16).map(|_| raw_get("bench/small")),
            ))
        })
    });
    g.finish();
}

criterion_group!(s3_benches, benches);
criterion_main!(s3_benches);
