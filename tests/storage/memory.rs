use corekit::storage::{MemoryStorage, Storage};

async fn storage() -> (Storage, String) {
    (
        Storage::new(MemoryStorage::new()),
        crate::support::unique("t"),
    )
}

crate::storage_suite!();
