//! Each test's own bucket (or container, or directory), made empty and unique, and removed with
//! everything in it when the test is done, so a run leaves nothing in the emulators.

use corekit::storage::{AzureStorage, GcsStorage, LocalStorage, S3Storage, Storage};

/// A bucket or container name no other test uses (valid on S3, GCS and Azure alike).
pub fn bucket_name() -> String {
    crate::support::unique("ck")
}

/// Deletes every object `storage` holds, then its bucket, container or directory.
pub async fn discard(storage: Storage) {
    let paths: Vec<_> = storage
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.path)
        .collect();
    storage.delete_many(&paths).await.unwrap();
    if let Some(s3) = storage.downcast_ref::<S3Storage>() {
        s3.client()
            .delete_bucket()
            .bucket(s3.bucket())
            .send()
            .await
            .unwrap_or_else(|e| panic!("deleting bucket {}: {e:?}", s3.bucket()));
    } else if let Some(gcs) = storage.downcast_ref::<GcsStorage>() {
        use gcloud_storage::http::buckets::delete::DeleteBucketRequest;
        let req = DeleteBucketRequest {
            bucket: gcs.bucket().to_owned(),
            ..Default::default()
        };
        gcs.client()
            .delete_bucket(&req)
            .await
            .unwrap_or_else(|e| panic!("deleting bucket {}: {e}", gcs.bucket()));
    } else if let Some(azure) = storage.downcast_ref::<AzureStorage>() {
        azure
            .client()
            .delete(None)
            .await
            .unwrap_or_else(|e| panic!("deleting container {}: {e}", azure.container()));
    } else if let Some(local) = storage.downcast_ref::<LocalStorage>() {
        std::fs::remove_dir_all(local.root()).unwrap();
    }
}
