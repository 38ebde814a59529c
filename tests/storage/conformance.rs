//! The behaviour every storage backend must have, written once over `Storage`.

use corekit::ErrorKind;
use corekit::storage::{
    ByteRange, GetOptions, MIN_PART_SIZE, ObjectPath, PresignMethod, PutOptions, Storage,
};
use std::collections::BTreeSet;

pub fn key(s: &str) -> ObjectPath {
    ObjectPath::new(s).unwrap()
}

pub async fn metadata_round_trips(s: Storage, base: &str) {
    let k = key(&format!("{base}/docs/report 100% ✓.pdf"));
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let options = PutOptions::default()
        .content_type("application/pdf")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"r.pdf\"")
        .metadata("owner", "ada")
        .metadata("trace_id", "abc");
    let put = s.put(&k, body.clone().into(), &options).await.unwrap();
    assert_eq!(put.size, 10_000);
    let got = s.get(&k).await.unwrap();
    assert_eq!(&got.bytes[..], &body[..], "bytes exact");
    let head = s.head(&k).await.unwrap();
    for meta in [&got.meta, &head] {
        assert_eq!(meta.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(meta.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(
            meta.content_disposition.as_deref(),
            Some("attachment; filename=\"r.pdf\"")
        );
        assert_eq!(meta.metadata.get("owner").map(String::as_str), Some("ada"));
        assert_eq!(meta.metadata.len(), 2);
        assert_eq!(meta.version, put.version);
        assert_eq!(meta.path, k);
    }
    assert!(s.exists(&k).await.unwrap());
    s.delete(&k).await.unwrap();
    assert!(!s.exists(&k).await.unwrap());
    s.delete(&k).await.expect("deleting what is gone is fine");
    for e in [s.get(&k).await.unwrap_err(), s.head(&k).await.unwrap_err()] {
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
}

pub async fn overwrites_replace_metadata(s: Storage, base: &str) {
    let k = key(&format!("{base}/meta-then-none"));
    let with = PutOptions::default()
        .content_type("text/plain")
        .metadata("owner", "ada");
    s.put(&k, "one".into(), &with).await.unwrap();
    s.put(&k, "two!".into(), &PutOptions::default())
        .await
        .unwrap();
    let head = s.head(&k).await.unwrap();
    assert!(head.metadata.is_empty(), "{:?}", head.metadata);
    assert_ne!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(head.size, 4);
    s.put(&k, "three".into(), &with).await.unwrap();
    let got = s.get(&k).await.unwrap();
    assert_eq!(
        got.meta.metadata.get("owner").map(String::as_str),
        Some("ada")
    );
}

pub async fn ranges(s: Storage, base: &str) {
    let k = key(&format!("{base}/range"));
    s.put(&k, "0123456789".into(), &PutOptions::default())
        .await
        .unwrap();
    let get = |r| {
        let s = s.clone();
        let k = k.clone();
        async move { s.get_with(&k, &GetOptions::range(r)).await }
    };
    assert_eq!(
        &get(ByteRange::Bounded(2, 5)).await.unwrap().bytes[..],
        b"234"
    );
    assert_eq!(&get(ByteRange::Offset(7)).await.unwrap().bytes[..], b"789");
    assert_eq!(&get(ByteRange::Suffix(3)).await.unwrap().bytes[..], b"789");
    let clipped = get(ByteRange::Bounded(8, 100)).await.unwrap();
    assert_eq!(
        (&clipped.bytes[..], clipped.range.clone()),
        (&b"89"[..], 8..10)
    );
    assert_eq!(clipped.meta.size, 10, "meta is the whole object's");
    for bad in [
        ByteRange::Offset(10),
        ByteRange::Bounded(12, 20),
        ByteRange::Bounded(3, 3),
    ] {
        let e = get(bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
}

pub async fn listing(s: Storage, base: &str) {
    let names = [
        "a/1", "a/2", "a/b/3", "a/b/c/4", "a/b-5", "ab/6", "a/ü 7", "a/100%",
    ];
    for n in names {
        s.put(
            &key(&format!("{base}/{n}")),
            n.into(),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let a = key(&format!("{base}/a"));
    let all: Vec<String> = s
        .list(Some(&a))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.path.to_string())
        .collect();
    let mut expected: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("a/"))
        .map(|n| format!("{base}/{n}"))
        .collect();
    expected.sort();
    assert_eq!(
        all, expected,
        "recursive, sorted, and 'ab/' is not under 'a'"
    );
    let after = s
        .list_after(Some(&a), &key(&format!("{base}/a/2")))
        .await
        .unwrap();
    assert!(
        after
            .iter()
            .all(|m| m.path.as_str() > format!("{base}/a/2").as_str())
    );
    assert_eq!(
        after.len(),
        expected
            .iter()
            .filter(|e| e.as_str() > format!("{base}/a/2").as_str())
            .count()
    );
    let level = s.list_with_delimiter(Some(&a)).await.unwrap();
    let objects: BTreeSet<String> = level.objects.iter().map(|m| m.path.to_string()).collect();
    let prefixes: Vec<String> = level
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    let want: BTreeSet<String> = ["a/1", "a/2", "a/b-5", "a/ü 7", "a/100%"]
        .iter()
        .map(|n| format!("{base}/{n}"))
        .collect();
    assert_eq!(objects, want);
    assert_eq!(prefixes, [format!("{base}/a/b")]);
    assert_eq!(
        level
            .objects
            .iter()
            .find(|m| m.path.filename() == "1")
            .unwrap()
            .size,
        3
    );
}

pub async fn many_keys_list_completely(s: Storage, base: &str) {
    let dir = key(&format!("{base}/many"));
    for i in 0..1500 {
        s.put(
            &dir.join(&format!("{i:05}")).unwrap(),
            "x".into(),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let listed = s.list(Some(&dir)).await.unwrap();
    assert_eq!(listed.len(), 1500);
    assert!(
        listed.windows(2).all(|w| w[0].path < w[1].path),
        "in key order"
    );
    use futures_util::TryStreamExt;
    let mut streamed: Vec<ObjectPath> = s
        .list_stream(Some(&dir))
        .map_ok(|m| m.path)
        .try_collect()
        .await
        .unwrap();
    streamed.sort();
    assert_eq!(
        streamed,
        listed.into_iter().map(|m| m.path).collect::<Vec<_>>(),
        "the stream yields every key once"
    );
    // Batches (S3: 1,000 keys a request; the emulators are slow at one-by-one deletes, so
    // they get fewer keys) and absent keys are fine.
    let count = if s.backend_name() == "s3" { 1500 } else { 40 };
    let mut doomed: Vec<ObjectPath> = streamed.into_iter().take(count).collect();
    doomed.push(dir.join("never-existed").unwrap());
    s.delete_many(&doomed).await.unwrap();
    let left = s.list(Some(&dir)).await.unwrap();
    assert_eq!(
        left.len(),
        1500 - count,
        "exactly the {count} named keys deleted"
    );
}

pub async fn copy_and_rename(s: Storage, base: &str) {
    let (a, b, c) = (
        key(&format!("{base}/a")),
        key(&format!("{base}/deep/b")),
        key(&format!("{base}/c")),
    );
    s.put(
        &a,
        "payload".into(),
        &PutOptions::default()
            .content_type("text/plain")
            .metadata("k", "v"),
    )
    .await
    .unwrap();
    s.copy(&a, &b).await.unwrap();
    let copied = s.get(&b).await.unwrap();
    assert_eq!(&copied.bytes[..], b"payload");
    assert_eq!(copied.meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(copied.meta.metadata.get("k").map(String::as_str), Some("v"));
    assert!(s.exists(&a).await.unwrap(), "copy keeps the source");
    s.rename(&a, &c).await.unwrap();
    assert!(!s.exists(&a).await.unwrap(), "rename removes the source");
    let moved = s.get(&c).await.unwrap();
    assert_eq!(
        (
            &moved.bytes[..],
            moved.meta.metadata.get("k").map(String::as_str)
        ),
        (&b"payload"[..], Some("v"))
    );
    let e = s
        .copy(&key(&format!("{base}/missing")), &b)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

pub async fn conditional_operations(s: Storage, base: &str) {
    let k = key(&format!("{base}/cas"));
    let v1 = s
        .put(&k, "one".into(), &PutOptions::create_only())
        .await
        .unwrap()
        .version;
    let e = s
        .put(&k, "two".into(), &PutOptions::create_only())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    // Some backends' versions have coarse clocks: wait a little so v2 differs from v1.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let v2 = s
        .put(&k, "three!".into(), &PutOptions::if_match(v1.clone()))
        .await
        .unwrap()
        .version;
    assert_ne!(v1, v2);
    let e = s
        .put(&k, "stale".into(), &PutOptions::if_match(v1.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert_eq!(
        &s.get(&k).await.unwrap().bytes[..],
        b"three!",
        "the lost race wrote nothing"
    );
    let e = s
        .put(
            &key(&format!("{base}/absent")),
            "x".into(),
            &PutOptions::if_match(v2.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
    let mut get = GetOptions::default();
    get.if_match = Some(v2.clone());
    s.get_with(&k, &get).await.unwrap();
    get.if_match = Some(v1.clone());
    assert_eq!(
        s.get_with(&k, &get).await.unwrap_err().kind(),
        ErrorKind::PreconditionFailed
    );
    let mut get = GetOptions::default();
    get.if_none_match = Some(v2);
    assert_eq!(
        s.get_with(&k, &get).await.unwrap_err().kind(),
        ErrorKind::PreconditionFailed,
        "not modified"
    );
    get.if_none_match = Some(v1);
    s.get_with(&k, &get).await.unwrap();
}

pub async fn one_of_fifty_create_only_writers_wins(s: Storage, base: &str) {
    let k = key(&format!("{base}/race"));
    let writers = (0..50).map(|i| {
        let (s, k) = (s.clone(), k.clone());
        tokio::spawn(async move {
            let body = format!("writer {i} ").repeat(1000);
            (i, s.put(&k, body.into(), &PutOptions::create_only()).await)
        })
    });
    let results = futures_util::future::join_all(writers).await;
    let winners: Vec<usize> = results
        .iter()
        .filter_map(|r| match r.as_ref().unwrap() {
            (i, Ok(_)) => Some(*i),
            (_, Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                None
            }
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one create-only writer wins");
    let stored = s.get(&k).await.unwrap();
    assert_eq!(
        stored.bytes,
        format!("writer {} ", winners[0]).repeat(1000).into_bytes()
    );
}

pub async fn bad_input_is_rejected(s: Storage, base: &str) {
    let k = key(&format!("{base}/x"));
    for options in [
        PutOptions::default().metadata("bad key", "v"),
        PutOptions::default().metadata("k", "line\nbreak"),
        PutOptions::default().content_type("text/plain\r\nX-Evil: 1"),
    ] {
        let e = s.put(&k, "x".into(), &options).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    for bad in ["../etc/passwd", "/abs", "a//b", "a\\b", "nul\0"] {
        assert_eq!(
            ObjectPath::new(bad).unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    // Percent signs are literal: `%2e%2e` is a name, never `..`.
    let literal = key(&format!("{base}/%2e%2e/x"));
    s.put(&literal, "ok".into(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(&s.get(&literal).await.unwrap().bytes[..], b"ok");
}

/// A body of `len` bytes that differs at every offset modulo a prime, so a misplaced part shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

pub async fn streaming_put_and_get(s: Storage, base: &str) {
    use futures_util::StreamExt;
    let s = s.with_part_size(MIN_PART_SIZE).unwrap();
    let k = key(&format!("{base}/big.bin"));
    let body = pattern(2 * MIN_PART_SIZE + 123_457);
    // Odd-sized chunks, so parts are cut across chunk boundaries.
    let chunks: Vec<corekit::Result<bytes::Bytes>> = body
        .chunks(300_007)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let options = PutOptions::default()
        .content_type("application/octet-stream")
        .metadata("parts", "3");
    let put = s
        .put_stream(&k, futures_util::stream::iter(chunks), &options)
        .await
        .unwrap();
    assert_eq!(put.size, body.len() as u64);
    let head = s.head(&k).await.unwrap();
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.metadata.get("parts").map(String::as_str), Some("3"));
    assert_eq!(head.version, put.version);
    let got = s.get(&k).await.unwrap();
    assert!(
        got.bytes[..] == body[..],
        "multipart body read back byte-exact"
    );
    let mut stream = s
        .get_stream(
            &k,
            &GetOptions::range(ByteRange::Offset(MIN_PART_SIZE as u64 - 10)),
        )
        .await
        .unwrap();
    assert_eq!(stream.meta.size, body.len() as u64);
    let mut streamed = Vec::new();
    let mut chunks_seen = 0;
    while let Some(chunk) = stream.stream.next().await {
        streamed.extend_from_slice(&chunk.unwrap());
        chunks_seen += 1;
    }
    assert!(
        streamed[..] == body[MIN_PART_SIZE - 10..],
        "streamed range exact"
    );
    assert!(chunks_seen >= 1);
    // The put's mode holds for multipart bodies too.
    let again = futures_util::stream::iter(vec![Ok(bytes::Bytes::from(body.clone()))]);
    let e = s
        .put_stream(&k, again, &PutOptions::create_only())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let small = s
        .put_reader(
            &key(&format!("{base}/small.txt")),
            &b"tiny body"[..],
            &PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(small.size, 9);
    let failing = futures_util::stream::iter(vec![
        Ok(bytes::Bytes::from(pattern(MIN_PART_SIZE + 1))),
        Err(corekit::Error::new(
            ErrorKind::Unavailable,
            "source went away",
        )),
    ]);
    let broken = key(&format!("{base}/broken.bin"));
    let e = s
        .put_stream(&broken, failing, &PutOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        !s.exists(&broken).await.unwrap(),
        "nothing partial is visible"
    );
}

pub async fn presigned_urls(s: Storage, base: &str) {
    let k = key(&format!("{base}/signed/report 1.txt"));
    let Some(max) = s.capabilities().presign else {
        let e = s
            .presign(PresignMethod::Get, &k, std::time::Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        println!("{}: presigned URLs unsupported (checked)", s.backend_name());
        return;
    };
    let too_long = max + std::time::Duration::from_secs(1);
    let e = s
        .presign(PresignMethod::Get, &k, too_long)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let minute = std::time::Duration::from_secs(60);
    let put = s.presign(PresignMethod::Put, &k, minute).await.unwrap();
    assert_eq!(put.method, PresignMethod::Put);
    let http = reqwest::Client::new();
    let mut request = http.put(&put.url).body("uploaded by URL");
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    let answer = request.send().await.unwrap();
    assert!(answer.status().is_success(), "PUT {}: {answer:?}", put.url);
    assert_eq!(&s.get(&k).await.unwrap().bytes[..], b"uploaded by URL");
    let get_url = s.presign(PresignMethod::Get, &k, minute).await.unwrap().url;
    let answer = http.get(&get_url).send().await.unwrap();
    assert!(answer.status().is_success(), "GET {get_url}: {answer:?}");
    assert_eq!(&answer.bytes().await.unwrap()[..], b"uploaded by URL");
    // A tampered URL is refused (the signature covers the key); fake-gcs-server checks no
    // signatures, so this part runs on the others.
    let tampered = get_url.replace("report%201.txt", "report%202.txt");
    if s.backend_name() != "gcs" {
        assert_ne!(tampered, get_url, "the key appears encoded in {get_url}");
        let status = http.get(&tampered).send().await.unwrap().status();
        assert!(status.is_client_error(), "tampered URL answered {status}");
    }
}

pub async fn scoped_handles_see_only_their_prefix(s: Storage, base: &str) {
    let scope = key(&format!("{base}/tenant-a"));
    let a = s.scoped(&scope).unwrap();
    // Nesting stays inside the outer prefix, or fails: never a prefix of its own at the root.
    let nested = a.scoped(&key("deeper")).unwrap();
    assert_eq!(
        nested.prefix(),
        Some(&key(&format!("{base}/tenant-a/deeper")))
    );
    let long = key(&"x".repeat(corekit::storage::MAX_KEY_LEN - 10));
    assert_eq!(
        a.scoped(&long).unwrap_err().kind(),
        ErrorKind::InvalidInput,
        "a nested prefix past the key limit is refused"
    );
    a.put(&key("docs/x.txt"), "x".into(), &PutOptions::default())
        .await
        .unwrap();
    s.put(
        &key(&format!("{base}/tenant-b/docs/y.txt")),
        "y".into(),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let listed: Vec<String> = a
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.path.to_string())
        .collect();
    assert_eq!(listed, ["docs/x.txt"]);
    let level = a.list_with_delimiter(None).await.unwrap();
    assert_eq!(level.common_prefixes, [key("docs")]);
    assert_eq!(
        a.head(&key("docs/x.txt")).await.unwrap().path,
        key("docs/x.txt")
    );
    assert!(
        s.exists(&key(&format!("{base}/tenant-a/docs/x.txt")))
            .await
            .unwrap()
    );
    a.copy(&key("docs/x.txt"), &key("docs/z.txt"))
        .await
        .unwrap();
    assert!(
        s.exists(&key(&format!("{base}/tenant-a/docs/z.txt")))
            .await
            .unwrap()
    );
    s.ping().await.unwrap();
}

/// `vars` (`STORAGE_*`) name a store by URL with a `from-config` prefix: the store built from
/// them writes under that prefix of the same bucket `raw` sees.
pub async fn from_config_is_scoped_by_the_url(vars: Vec<(String, String)>, raw: Storage) {
    use corekit::config::EnvConfig;
    let config = corekit::storage::StorageConfig::from_vars("STORAGE_", vars).unwrap();
    let scoped = Storage::from_config(&config).await.unwrap();
    assert_eq!(scoped.backend_name(), raw.backend_name());
    let k = key(&crate::support::unique("k"));
    scoped
        .put(&k, "via config".into(), &PutOptions::default())
        .await
        .unwrap();
    let full = key(&format!("from-config/{k}"));
    assert_eq!(&raw.get(&full).await.unwrap().bytes[..], b"via config");
}

/// `s` points at a port nothing listens on: calls fail with a retryable error, after the
/// retries, within the deadline.
pub async fn a_dead_server_fails_within_the_deadline(s: Storage) {
    use corekit::storage::RetryPolicy;
    use std::time::{Duration, Instant};
    let s = s.with_retry(
        RetryPolicy::default()
            .max_attempts(3)
            .attempt_timeout(Duration::from_secs(1))
            .deadline(Duration::from_secs(3))
            .backoff(Duration::from_millis(10), Duration::from_millis(50)),
    );
    let started = Instant::now();
    let e = s.head(&key("x")).await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{e}"
    );
    assert!(e.is_retryable(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let e = s
        .put(&key("x"), "x".into(), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

#[macro_export]
macro_rules! storage_suite {
    () => {
        $crate::storage_suite!(@tests
            metadata_round_trips,
            overwrites_replace_metadata,
            ranges,
            listing,
            many_keys_list_completely,
            copy_and_rename,
            conditional_operations,
            one_of_fifty_create_only_writers_wins,
            bad_input_is_rejected,
            streaming_put_and_get,
            presigned_urls,
            scoped_handles_see_only_their_prefix
        );
    };
    (@tests $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (storage, base) = storage().await;
                $crate::conformance::$name(storage, &base).await
            }
        )*
    };
}
