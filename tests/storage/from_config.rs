//! `Storage::from_config` on the cloud backends: a store named by URL writes under the URL's
//! path, in the same bucket.

use corekit::config::EnvConfig;
use corekit::storage::{PutOptions, Storage, StorageConfig};

/// `vars` (`STORAGE_*`) name a store by URL with a `from-config` prefix: the store built from
/// them writes under that prefix of the same bucket `raw` sees.
pub async fn from_config_is_scoped_by_the_url(vars: Vec<(String, String)>, raw: Storage) {
    let config = StorageConfig::from_vars("STORAGE_", vars).unwrap();
    let scoped = Storage::from_config(&config).await.unwrap();
    assert_eq!(scoped.backend_name(), raw.backend_name());
    let k = crate::key(&crate::support::unique("k"));
    scoped
        .put(&k, "via config".into(), &PutOptions::default())
        .await
        .unwrap();
    let full = crate::key(&format!("from-config/{k}"));
    assert_eq!(&raw.get(&full).await.unwrap().bytes[..], b"via config");
}
