//! S3 against SeaweedFS (it checks SigV4 and honours conditional requests).

use crate::support;
use corekit::storage::{S3Storage, Storage};

async fn storage() -> (Storage, String) {
    let endpoint = support::S3.require();
    let s3 = S3Storage::builder(crate::scratch::bucket_name())
        .endpoint(endpoint)
        .credentials("corekit", "corekit-secret")
        .build()
        .await
        .unwrap();
    s3.ensure_bucket().await.unwrap();
    (Storage::new(s3), support::unique("t"))
}

crate::storage_suite!();

#[tokio::test]
async fn wrong_credentials_are_permission_denied() {
    let s3 = S3Storage::builder("corekit-tests")
        .endpoint(support::S3.require())
        .credentials("corekit", "wrong")
        .build()
        .await
        .unwrap();
    let e = Storage::new(s3)
        .head(&corekit::storage::ObjectPath::new("x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::PermissionDenied, "{e}");
}

#[tokio::test]
async fn a_dead_server_fails_within_the_deadline() {
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let s3 = S3Storage::builder("corekit-tests")
        .endpoint(dead)
        .credentials("corekit", "corekit-secret")
        .build()
        .await
        .unwrap();
    corekit::storage::conformance::a_dead_server_fails_within_the_deadline(Storage::new(s3)).await;
}

#[tokio::test]
async fn ping_fails_on_a_missing_bucket() {
    let s3 = S3Storage::builder("no-such-bucket-corekit")
        .endpoint(support::S3.require())
        .credentials("corekit", "corekit-secret")
        .build()
        .await
        .unwrap();
    let e = Storage::new(s3).ping().await.unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::NotFound, "{e}");
}
