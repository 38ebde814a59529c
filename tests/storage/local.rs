use crate::key;
use corekit::ErrorKind;
use corekit::storage::{LocalStorage, PutOptions, Storage};

fn root() -> std::path::PathBuf {
    std::env::temp_dir().join(crate::support::unique("corekit-local"))
}

async fn storage() -> (Storage, String) {
    (
        Storage::new(LocalStorage::new(root()).unwrap()),
        "t".to_owned(),
    )
}

crate::storage_suite!();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_store() {
    let (storage, base) = storage().await;
    corekit::storage::conformance::run_all(storage, &base, crate::http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_overwrites_leave_one_complete_object() {
    let s = Storage::new(LocalStorage::new(root()).unwrap());
    let k = key("contended");
    let writers = (0..20).map(|i| {
        let (s, k) = (s.clone(), k.clone());
        tokio::spawn(async move {
            let body = vec![i as u8; 1 << 20];
            s.put(&k, body.into(), &PutOptions::default())
                .await
                .unwrap();
        })
    });
    futures_util::future::join_all(writers).await;
    let got = s.get(&k).await.unwrap();
    assert_eq!(got.bytes.len(), 1 << 20);
    let first = got.bytes[0];
    assert!(
        got.bytes.iter().all(|b| *b == first),
        "one writer's object, whole"
    );
}

#[tokio::test]
async fn nothing_outside_the_root_is_reachable() {
    let dir = root();
    let s = Storage::new(LocalStorage::new(&dir).unwrap());
    let outside = std::env::temp_dir().join(crate::support::unique("outside"));
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "top secret").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
    let e = s.get(&key("link/secret")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = s
        .put(&key("link/new"), "x".into(), &PutOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!outside.join("new").exists());
    // A link as the object itself: reads refuse it, a write replaces the link, not its target.
    std::os::unix::fs::symlink(outside.join("secret"), dir.join("leak")).unwrap();
    let e = s.get(&key("leak")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    s.put(&key("leak"), "mine".into(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).unwrap(),
        "top secret",
        "the target outside the root is untouched"
    );
    assert_eq!(&s.get(&key("leak")).await.unwrap().bytes[..], b"mine");
    s.delete(&key("leak")).await.unwrap();
    let e = s
        .put(&key(".corekit/meta/x"), "x".into(), &PutOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // corekit's own files never show up in listings.
    s.put(
        &key("visible"),
        "x".into(),
        &PutOptions::default().content_type("text/plain"),
    )
    .await
    .unwrap();
    let listed: Vec<String> = s
        .list(None)
        .await
        .unwrap()
        .iter()
        .map(|m| m.path.to_string())
        .collect();
    assert_eq!(listed, ["visible"]);
    std::fs::remove_dir_all(&outside).unwrap();
}

#[tokio::test]
async fn objects_are_plain_files() {
    let dir = root();
    let s = Storage::new(LocalStorage::new(&dir).unwrap());
    s.put(&key("a/b.txt"), "hello".into(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("a/b.txt")).unwrap(),
        "hello"
    );
    s.delete(&key("a/b.txt")).await.unwrap();
    assert!(
        !dir.join("a").exists(),
        "empty directories are removed with their last object"
    );
}

#[tokio::test]
async fn renaming_a_prefix_that_is_no_object_is_not_found() {
    let s = Storage::new(LocalStorage::new(root()).unwrap());
    for k in ["dir/x", "dir/y"] {
        s.put(&key(k), "v".into(), &PutOptions::default())
            .await
            .unwrap();
    }
    let e = s.rename(&key("dir"), &key("moved")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(s.exists(&key("dir/x")).await.unwrap(), "nothing moved");
    assert!(s.list(Some(&key("moved"))).await.unwrap().is_empty());
}

#[tokio::test]
async fn metadata_of_a_key_and_of_keys_under_its_name_do_not_collide() {
    let s = Storage::new(LocalStorage::new(root()).unwrap());
    let typed = PutOptions::default().content_type("text/plain");
    s.put(&key("a"), "a".into(), &typed).await.unwrap();
    s.put(&key("a.json/x"), "x".into(), &typed).await.unwrap();
    s.put(&key("a.corekit/y"), "y".into(), &typed)
        .await
        .unwrap();
    for k in ["a", "a.json/x", "a.corekit/y"] {
        let head = s.head(&key(k)).await.unwrap();
        assert_eq!(head.content_type.as_deref(), Some("text/plain"), "{k}");
    }
}

#[tokio::test]
async fn same_size_writes_in_one_clock_tick_get_different_versions() {
    let s = Storage::new(LocalStorage::new(root()).unwrap());
    let k = key("cas");
    let mut versions = std::collections::HashSet::new();
    for i in 0..50 {
        let meta = s
            .put(&k, format!("{i:04}").into(), &PutOptions::default())
            .await
            .unwrap();
        assert!(versions.insert(meta.version), "write {i} reused a version");
    }
}
