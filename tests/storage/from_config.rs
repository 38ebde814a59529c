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

/// Set in the child process [`from_env_with_no_variables_warns_that_objects_go_to_a_local_directory`]
/// runs (in a directory of its own, since the default store writes under `./data`).
const CHILD: &str = "COREKIT_STORAGE_FROM_ENV_CHILD";

#[test]
fn from_env_with_no_variables_warns_that_objects_go_to_a_local_directory() {
    if std::env::var_os(CHILD).is_some() {
        let (storage, logs) = crate::support::with_logs(Storage::from_env());
        let warned = logs.contains("no STORAGE_* variable is set") && logs.contains("STORAGE_URL=");
        println!(
            "child: backend={} warned={warned}",
            storage.unwrap().backend_name()
        );
        return;
    }
    let dir = std::env::temp_dir().join(crate::support::unique("storage-from-env"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "from_config::from_env_with_no_variables_warns_that_objects_go_to_a_local_directory",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .current_dir(&dir)
    .env(CHILD, "1");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("STORAGE_") {
            cmd.env_remove(&name);
        }
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(
        stdout.contains("child: backend=local warned=true"),
        "{stdout}"
    );
    assert!(
        dir.join("data").is_dir(),
        "the store it warned about is ./data"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 15: a store that cannot be reached names the bucket, the endpoint and the variables
/// they came from.
#[tokio::test]
async fn an_unreachable_store_is_named_with_its_variables() {
    use corekit::storage::ObjectPath;
    let port = crate::support::free_port();
    let vars = [
        ("STORAGE_URL", "gs://reports/daily".to_owned()),
        ("STORAGE_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("STORAGE_MAX_ATTEMPTS", "1".to_owned()),
        ("STORAGE_ATTEMPT_TIMEOUT", "2s".to_owned()),
    ];
    let config = StorageConfig::from_vars(
        "STORAGE_",
        vars.iter().map(|(k, v)| (k.to_string(), v.clone())),
    )
    .unwrap();
    let storage = Storage::from_config(&config).await.unwrap();
    let e = storage
        .head(&ObjectPath::new("x").unwrap())
        .await
        .expect_err("nothing listens there");
    let text = e.to_string();
    eprintln!("{e}");
    assert!(e.is_retryable(), "{text} ({:?})", e.kind());
    assert!(text.contains("\"reports\""), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(
        text.contains("from STORAGE_ENDPOINT") && text.contains("from STORAGE_URL"),
        "{text}"
    );
}
