//! GCS against fake-gcs-server (JSON API; it checks no credentials or signatures).

use crate::support;
use corekit::storage::{GcsStorage, Storage};
use std::sync::OnceLock;

/// A throwaway PKCS#8 RSA key to sign URLs with (the emulator does not verify them; the
/// signing code runs all the same).
fn signing_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl (scripts/services.sh installs it)");
        assert!(out.status.success(), "openssl genpkey failed");
        String::from_utf8(out.stdout).unwrap()
    })
}

async fn storage() -> (Storage, String) {
    let gcs = GcsStorage::builder(crate::scratch::bucket_name())
        .endpoint(support::GCS.require())
        .signer("tests@corekit.iam.gserviceaccount.com", signing_key())
        // Small pages, so listings follow page tokens.
        .page_size(400)
        .build()
        .await
        .unwrap();
    gcs.ensure_bucket("corekit").await.unwrap();
    (Storage::new(gcs), support::unique("t"))
}

crate::storage_suite!();

#[tokio::test]
async fn a_missing_bucket_is_not_found() {
    let gcs = GcsStorage::builder("no-such-bucket-corekit")
        .endpoint(support::GCS.require())
        .build()
        .await
        .unwrap();
    let s = Storage::new(gcs);
    let e = s
        .head(&corekit::storage::ObjectPath::new("x").unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::NotFound, "{e}");
    let e = s.ping().await.unwrap_err();
    assert_eq!(e.kind(), corekit::ErrorKind::NotFound, "ping: {e}");
}

#[tokio::test]
async fn from_config_with_an_endpoint_and_a_url() {
    let (raw, _) = storage().await;
    let bucket = raw
        .downcast_ref::<GcsStorage>()
        .unwrap()
        .bucket()
        .to_owned();
    let vars = vec![
        (
            "STORAGE_URL".to_owned(),
            format!("gs://{bucket}/from-config"),
        ),
        ("STORAGE_ENDPOINT".to_owned(), support::GCS.require()),
    ];
    crate::from_config::from_config_is_scoped_by_the_url(vars, raw.clone()).await;
    crate::scratch::discard(raw).await;
}

#[tokio::test]
async fn a_dead_server_fails_within_the_deadline() {
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let gcs = GcsStorage::builder("corekit-tests")
        .endpoint(dead)
        .build()
        .await
        .unwrap();
    corekit::storage::conformance::a_dead_server_fails_within_the_deadline(Storage::new(gcs)).await;
}
