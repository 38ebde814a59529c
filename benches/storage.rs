//! corekit's local storage next to object_store's `LocalFileSystem` and raw `tokio::fs`, same
//! disk, same run.
//!
//! ```sh
//! cargo bench --bench storage --features storage-local
//! ```
//!
//! put and get of 4 KiB and 16 MiB objects, and listing 10,000 keys under a prefix. corekit's put is atomic (temp file + rename); object_store's is too; the raw
//! `tokio::fs::write` is not (a reader can see a partial file): it is the floor, not a peer.

use bytes::Bytes;
use corekit::storage::{LocalStorage, ObjectPath, PutOptions, Storage};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt as _;
use object_store::{ObjectStore as _, ObjectStoreExt as _};
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corekit-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let small = Bytes::from(vec![7u8; 4096]);
    let big = Bytes::from(vec![9u8; 16 << 20]);

    let ck_dir = dir("corekit");
    let corekit = Storage::new(LocalStorage::new(&ck_dir).unwrap());
    let os_dir = dir("object_store");
    let os = object_store::local::LocalFileSystem::new_with_prefix(&os_dir).unwrap();
    let raw_dir = dir("raw");

    let key = ObjectPath::new("bench/small").unwrap();
    let big_key = ObjectPath::new("bench/big").unwrap();
    let os_key = object_store::path::Path::from("bench/small");
    let os_big = object_store::path::Path::from("bench/big");
    rt.block_on(async {
        corekit
            .put(&big_key, big.clone(), &PutOptions::default())
            .await
            .unwrap();
        os.put(&os_big, big.clone().into()).await.unwrap();
        tokio::fs::create_dir_all(raw_dir.join("bench"))
            .await
            .unwrap();
        tokio::fs::write(raw_dir.join("bench/big"), &big)
            .await
            .unwrap();
    });

    // Flush the setup's 48 MiB first: its writeback would otherwise land on whichever
    // benchmark runs next (corekit's, the first of each group).
    let _ = std::process::Command::new("sync").status();

    let mut g = c.benchmark_group("storage/put_4k");
    g.bench_function("corekit", |b| {
        b.iter(|| {
            rt.block_on(corekit.put(&key, small.clone(), &PutOptions::default()))
                .unwrap()
        })
    });
    g.bench_function("object_store", |b| {
        b.iter(|| rt.block_on(os.put(&os_key, small.clone().into())).unwrap())
    });
    g.bench_function("tokio_fs_write", |b| {
        b.iter(|| {
            rt.block_on(tokio::fs::write(raw_dir.join("bench/small"), &small))
                .unwrap()
        })
    });
    g.finish();

    let big_put = ObjectPath::new("bench/big-put").unwrap();
    let os_big_put = object_store::path::Path::from("bench/big-put");
    let mut g = c.benchmark_group("storage/put_16m");
    g.sample_size(20);
    g.bench_function("corekit", |b| {
        b.iter(|| {
            rt.block_on(corekit.put(&big_put, big.clone(), &PutOptions::default()))
                .unwrap()
        })
    });
    g.bench_function("object_store", |b| {
        b.iter(|| {
            rt.block_on(os.put(&os_big_put, big.clone().into()))
                .unwrap()
        })
    });
    g.bench_function("tokio_fs_write", |b| {
        b.iter(|| {
            rt.block_on(tokio::fs::write(raw_dir.join("bench/big-put"), &big))
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("storage/get_4k");
    g.bench_function("corekit", |b| {
        b.iter(|| rt.block_on(corekit.get(&key)).unwrap())
    });
    g.bench_function("object_store", |b| {
        b.iter(|| rt.block_on(async { os.get(&os_key).await.unwrap().bytes().await.unwrap() }))
    });
    g.bench_function("tokio_fs_read", |b| {
        b.iter(|| {
            rt.block_on(tokio::fs::read(raw_dir.join("bench/small")))
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("storage/get_16m");
    g.sample_size(20);
    g.bench_function("corekit", |b| {
        b.iter(|| rt.block_on(corekit.get(&big_key)).unwrap())
    });
    g.bench_function("object_store", |b| {
        b.iter(|| rt.block_on(async { os.get(&os_big).await.unwrap().bytes().await.unwrap() }))
    });
    g.bench_function("tokio_fs_read", |b| {
        b.iter(|| {
            rt.block_on(tokio::fs::read(raw_dir.join("bench/big")))
                .unwrap()
        })
    });
    g.finish();

    rt.block_on(async {
        for i in 0..10_000 {
            let name = format!("many/{:02}/{i:05}", i % 100);
            corekit
                .put(
                    &ObjectPath::new(&name).unwrap(),
                    Bytes::from_static(b"x"),
                    &PutOptions::default(),
                )
                .await
                .unwrap();
            os.put(
                &object_store::path::Path::from(name.as_str()),
                Bytes::from_static(b"x").into(),
            )
            .await
            .unwrap();
        }
    });
    let _ = std::process::Command::new("sync").status();
    let many = ObjectPath::new("many").unwrap();
    let os_many = object_store::path::Path::from("many");
    let mut g = c.benchmark_group("storage/list_10k");
    g.sample_size(10);
    g.bench_function("corekit", |b| {
        b.iter(|| {
            assert_eq!(
                rt.block_on(corekit.list(Some(&many))).unwrap().len(),
                10_000
            )
        })
    });
    g.bench_function("object_store", |b| {
        b.iter(|| {
            let n = rt.block_on(async { os.list(Some(&os_many)).count().await });
            assert_eq!(n, 10_000);
        })
    });
    g.finish();

    for d in [ck_dir, os_dir, raw_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

criterion_group!(storage_benches, benches);
criterion_main!(storage_benches);
