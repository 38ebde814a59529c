//! Azure Blob against Azurite (it checks the SAS signatures corekit signs).

use crate::support;
use corekit::storage::{AzureStorage, Storage};

async fn storage() -> (Storage, String) {
    let azure = AzureStorage::builder("devstoreaccount1", crate::scratch::bucket_name())
        .development(support::AZURE.require())
        // Small pages, so listings follow continuation markers.
        .page_size(400)
        .build()
        .unwrap();
    azure.ensure_container().await.unwrap();
    (Storage::new(azure), support::unique("t"))
}

crate::storage_suite!();

#[tokio::test]
async fn a_wrong_key_is_permission_denied() {
    let azure = AzureStorage::builder("devstoreaccount1", "corekit-tests")
        .endpoint(support::AZURE.require())
        .access_key("d3Jvbmcga2V5")
        .build()
        .unwrap();
    let e = Storage::new(azure)
        .head(&corekit::storage::ObjectPath::new("x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::PermissionDenied, "{e}");
}

#[tokio::test]
async fn a_connection_string_reaches_azurite() {
    let endpoint = support::AZURE.require();
    let proxy = endpoint.trim_end_matches("/devstoreaccount1");
    let builder = AzureStorage::from_connection_string(
        &format!("UseDevelopmentStorage=true;DevelopmentStorageProxyUri={proxy}"),
        crate::scratch::bucket_name(),
    )
    .unwrap();
    let azure = builder.build().unwrap();
    // The test makes its own container: on a fresh Azurite no other test may have yet.
    azure.ensure_container().await.unwrap();
    let storage = Storage::new(azure);
    storage.ping().await.unwrap();
    crate::scratch::discard(storage).await;
}

#[tokio::test]
async fn metadata_names_must_be_identifiers_on_azure() {
    let (s, base) = storage().await;
    let k = corekit::storage::ObjectPath::new(&format!("{base}/m")).unwrap();
    let options = corekit::storage::PutOptions::default().metadata("x-trace", "1");
    let e = s.put(&k, "x".into(), &options).await.unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::InvalidInput, "{e}");
    assert!(!s.exists(&k).await.unwrap(), "rejected before any request");
    crate::scratch::discard(s).await;
}

#[tokio::test]
async fn from_config_with_a_connection_string_and_a_url() {
    let proxy = support::AZURE.require().replace("/devstoreaccount1", "");
    let (raw, _) = storage().await;
    let container = raw
        .downcast_ref::<AzureStorage>()
        .unwrap()
        .container()
        .to_owned();
    let vars = vec![
        (
            "STORAGE_URL".to_owned(),
            format!("az://{container}/from-config"),
        ),
        (
            "STORAGE_AZURE_CONNECTION_STRING".to_owned(),
            format!("UseDevelopmentStorage=true;DevelopmentStorageProxyUri={proxy}"),
        ),
    ];
    crate::from_config::from_config_is_scoped_by_the_url(vars, raw.clone()).await;
    crate::scratch::discard(raw).await;
}

#[tokio::test]
async fn a_dead_server_fails_within_the_deadline() {
    let dead = format!("http://127.0.0.1:{}/devstoreaccount1", support::free_port());
    let azure = AzureStorage::builder("devstoreaccount1", "corekit-tests")
        .development(dead)
        .build()
        .unwrap();
    corekit::storage::conformance::a_dead_server_fails_within_the_deadline(Storage::new(azure))
        .await;
}

#[tokio::test]
async fn ping_fails_on_a_missing_container() {
    let azure = AzureStorage::builder("devstoreaccount1", "no-such-container")
        .development(support::AZURE.require())
        .build()
        .unwrap();
    let e = Storage::new(azure).ping().await.unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::NotFound, "{e}");
}

#[tokio::test]
async fn presigning_without_the_account_key_says_what_is_missing() {
    let azure = AzureStorage::builder("devstoreaccount1", "corekit-tests")
        .endpoint(support::AZURE.require())
        .sas_token("sv=2022-11-02&sig=unused")
        .build()
        .unwrap();
    let e = Storage::new(azure)
        .presign(
            corekit::storage::PresignMethod::Get,
            &corekit::storage::ObjectPath::new("x").unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("account key"), "{e}");
}
