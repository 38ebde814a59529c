use corekit::storage::{MemoryStorage, Storage};

async fn storage() -> (Storage, String) {
    (
        Storage::new(MemoryStorage::new()),
        crate::support::unique("t"),
    )
}

crate::storage_suite!();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_store() {
    let (storage, base) = storage().await;
    corekit::storage::conformance::run_all(storage.clone(), &base, crate::http).await;
    crate::scratch::discard(storage).await;
}

#[tokio::test]
async fn the_builder_validates_and_scopes() {
    use corekit::storage::{PutOptions, RetryPolicy};
    let e = Storage::builder(MemoryStorage::new())
        .part_size(1024)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::InvalidInput, "{e}");
    let e = Storage::builder(MemoryStorage::new())
        .prefix("a/../b")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::InvalidInput, "{e}");
    let memory = MemoryStorage::new();
    let scoped = Storage::builder(memory.clone())
        .retry(RetryPolicy::default().max_attempts(1))
        .upload_concurrency(2)
        .prefix("tenant")
        .build()
        .unwrap();
    let k = corekit::storage::ObjectPath::new("k").unwrap();
    scoped
        .put(&k, "x".into(), &PutOptions::default())
        .await
        .unwrap();
    let raw = Storage::new(memory);
    let listed = raw.list(None).await.unwrap();
    assert_eq!(listed[0].path.as_str(), "tenant/k");
    assert!(scoped.downcast_ref::<MemoryStorage>().is_some());
}
