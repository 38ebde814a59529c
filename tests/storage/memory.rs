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
    corekit::storage::conformance::run_all(storage, &base, crate::http).await;
}
