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
    corekit::storage::conformance::run_all(storage.clone(), &base, crate::http).await;
    crate::scratch::discard(storage).await;
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

/// Issue 14 #5: where a file system cannot do what an object store does, the local backend
/// says so with a typed error, and does what it can.
#[tokio::test]
async fn file_system_limits_are_typed_and_long_names_work() {
    let s = Storage::new(LocalStorage::new(root()).unwrap());
    let put = |k: String| {
        let s = s.clone();
        async move {
            s.put(
                &key(&k),
                bytes::Bytes::from_static(b"x"),
                &PutOptions::default(),
            )
            .await
        }
    };
    // A last segment up to 233 bytes works (temporary names no longer lengthen it).
    put(format!("long/{}", "a".repeat(233))).await.unwrap();
    let e = put(format!("long/{}", "b".repeat(234))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    // `a` and `a/b` cannot both exist: a typed Conflict, either way round.
    put("pair/dir".into()).await.unwrap();
    let e = put("pair/dir/child".into()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    put("pair2/dir/child".into()).await.unwrap();
    let e = put("pair2/dir".into()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // Deleting a key that only has keys under it deletes nothing, like any absent key.
    s.delete(&key("pair2/dir")).await.unwrap();
    assert!(s.exists(&key("pair2/dir/child")).await.unwrap());
}

/// Child processes, killed (SIGKILL) and reaped when dropped.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Set in the environment of the child process [`writer_child`] runs in: the root to write to.
const WRITER_ROOT: &str = "COREKIT_LOCAL_WRITER_ROOT";

/// The child half of [`killed_writers_never_leave_bytes_without_their_metadata`]: overwrites
/// one key for ever, each body `n` with metadata `n=<n>`. Does nothing unless spawned by it.
#[test]
fn writer_child() {
    let Some(root) = std::env::var_os(WRITER_ROOT) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = Storage::new(LocalStorage::new(std::path::PathBuf::from(root)).unwrap());
    let start = std::process::id() as u64 * 1_000_000;
    // A parent that died without killing it must not leave it writing for ever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    rt.block_on(async {
        for n in (start..).take_while(|_| std::time::Instant::now() < deadline) {
            let options = PutOptions::default()
                .content_type("text/plain")
                .metadata("n", n.to_string());
            s.put(&key("contended"), n.to_string().into(), &options)
                .await
                .unwrap();
        }
    });
}

/// Issue 14 #11: writers (two processes at once) killed with SIGKILL at random points never
/// leave an object whose bytes lack their metadata, and readers never see such an object
/// while they write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writers_never_leave_bytes_without_their_metadata() {
    let root = root();
    let s = Storage::new(LocalStorage::new(&root).unwrap());
    let check = |got: corekit::storage::GetResult| {
        let body = String::from_utf8(got.bytes.to_vec()).unwrap();
        assert_eq!(
            got.meta.metadata.get("n"),
            Some(&body),
            "bytes {body} with metadata {:?}",
            got.meta.metadata
        );
        assert_eq!(got.meta.content_type.as_deref(), Some("text/plain"));
    };
    let mut reads = 0;
    for round in 0..10 {
        // Killed on drop too, so a failed assertion leaves no writer running.
        let children = Children(
            (0..2)
                .map(|_| {
                    std::process::Command::new(std::env::current_exe().unwrap())
                        .args(["local::writer_child", "--exact", "--test-threads=1"])
                        .env(WRITER_ROOT, &root)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        );
        let until = std::time::Instant::now()
            + std::time::Duration::from_millis(200 + fastrand::u64(..400));
        while std::time::Instant::now() < until {
            if let Ok(got) = s.get(&key("contended")).await {
                check(got);
                reads += 1;
            }
        }
        drop(children); // SIGKILL
        let got = s.get(&key("contended")).await;
        match got {
            Ok(got) => check(got),
            Err(e) => assert!(round == 0 && e.kind() == ErrorKind::NotFound, "{e}"),
        }
    }
    assert!(reads > 0, "readers saw the writers' objects");
    println!("{reads} reads checked while writers ran");
}

/// Issue 14 #11: temporary files of killed writers are removed once stale; sidecars stay.
#[tokio::test]
async fn stale_temporary_files_are_removed() {
    let root = root();
    let local = LocalStorage::new(&root).unwrap();
    let s = Storage::new(local.clone());
    s.put(
        &key("kept"),
        bytes::Bytes::from_static(b"x"),
        &PutOptions::default().metadata("a", "b"),
    )
    .await
    .unwrap();
    let stale = root.join("dir").join(".corekit-tmp-00000000deadbeef");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&stale).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let fresh = root.join(".corekit-tmp-00000000cafebabe");
    std::fs::File::create(&fresh).unwrap();
    // The sweep `new` starts in the background may have got there first.
    let removed = local.remove_stale_temp_files(std::time::Duration::from_secs(3600));
    assert!(removed <= 1, "{removed}");
    assert!(!stale.exists(), "the stale file is gone");
    assert!(fresh.exists(), "a live write's file is kept");
    let head = s.head(&key("kept")).await.unwrap();
    assert_eq!(
        head.metadata.get("a").map(String::as_str),
        Some("b"),
        "sidecar kept"
    );
}
